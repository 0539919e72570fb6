"""Random-weight stand-ins for the model files and input videos a workflow names, made only when the
user asks (`--stand-ins`), only for files that are missing, and never inside the user's folders.

Each file is generated once into CACHE_DIR (keyed by a version, so a generator change makes a new
file) and linked under the name the workflow asks for into CACHE_DIR/stand-ins/<model folder>,
which is added *after* ComfyUI's own folders for this process only: a file the user has always wins.
"""
import contextlib
import logging
import os
from pathlib import Path

from . import random_sparsectrl, random_svd, random_weights

CACHE_DIR = Path(os.environ.get("ANIMATELCM_CACHE") or os.environ.get("ALCM_TEST_CACHE")
                 or Path.home() / ".cache" / "animatelcm-fast")
SD15_FILE = "sd15_random_v1.safetensors"
MOTION_FILE = "animatelcm_t2v_random_v1"  # + .safetensors or .ckpt
MOTION_I2V_FILE = "animatelcm_i2v_random_v1"  # a name that mentions i2v: the same plus the image encoder
SVD_UNET_FILE = "animatelcm_svd_xt_narrow_random_v1.safetensors"  # diffusers layout, as released
SVD_CHECKPOINT_FILE = "svd_xt_narrow_random_v1.safetensors"  # Image Only checkpoint: UNet, CLIP vision, VAE
SAFETENSORS = (".safetensors", ".sft")
WEIGHT_EXTENSIONS = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin")
STAND_IN_VIDEO_FRAMES = 16
log = logging.getLogger("animatelcm.render")


class StandInError(ValueError):
    """A missing file that no stand-in can be made for; the message names it and the fix."""


def model_folder(input_name):
    """The ComfyUI model folder an input's file name is looked up in, when we can stand in for it."""
    if input_name == "ckpt_name":
        return "checkpoints"
    if input_name == "motion_module_name":
        return "animatediff_models"
    if input_name == "unet_name":
        return "diffusion_models"
    if input_name == "motion_lora_name":
        return "animatediff_motion_lora"
    if input_name in ("control_net_name", "sparsectrl_name"):  # SparseCtrl files live with ControlNets
        return "controlnet"
    if "lora" in input_name:
        return "loras"
    return None


def model_files(prompt):
    """[(node id, input, folder, file name)] of every model file the prompt names that we know the folder of."""
    out = []
    for node_id, node in prompt.items():
        for name, value in node["inputs"].items():
            folder = model_folder(name)
            if folder and isinstance(value, str) and value.lower().endswith(WEIGHT_EXTENSIONS):
                out.append((node_id, name, folder, value))
    return out


def missing_model_files(prompt):
    import folder_paths
    forget_file_lists()
    return [entry for entry in model_files(prompt) if folder_paths.get_full_path(entry[2], entry[3]) is None]


def _atomic(path, write):
    path.parent.mkdir(parents=True, exist_ok=True)
    # written whole, then renamed: a killed run leaves no half file, two workers making it at once no mix
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        write(partial)
        partial.replace(path)
    finally:  # a failed write, or Ctrl-C while the file is made, leaves no half file behind
        with contextlib.suppress(OSError):
            partial.unlink()
    return path


def cached_file(folder, name):
    """The cached random-weight file standing in for `name` in `folder` (made on first use)."""
    import torch
    from safetensors.torch import save_file
    if folder == "checkpoints":
        if not name.lower().endswith(SAFETENSORS):
            # ComfyUI reads any other extension as a pickle; a linked safetensors file would not load
            raise StandInError(f"no stand-in can be made for checkpoint '{name}' (only for .safetensors names): "
                               "put the file in ComfyUI's models/checkpoints")
        if "svd" in name.lower():  # svd_xt.safetensors and its kin: Stable Video Diffusion's Image Only checkpoint
            return _svd_file(SVD_CHECKPOINT_FILE, random_svd.svd_image_only_checkpoint,
                             "Stable Video Diffusion checkpoint (narrow UNet, full CLIP vision and VAE: 1.9 GB")
        path = CACHE_DIR / SD15_FILE
        if not path.exists():
            log.info("making a random-weight SD1.5 checkpoint (2 GB, once: a minute or so; the first preview render, "
                     "this included, peaks at up to 7.3 GiB of RAM)")
            _atomic(path, random_weights.write_sd15_checkpoint)
        return path
    if folder == "animatediff_models" and "lightning" in name.lower():
        return _lightning_file(name)
    if folder == "animatediff_models":
        # the released AnimateLCM_sd15_t2v.ckpt is a pickle: a .ckpt name gets one, so the real load path runs
        as_pickle = not name.lower().endswith(SAFETENSORS)
        i2v = "i2v" in name.lower()
        path = CACHE_DIR / ((MOTION_I2V_FILE if i2v else MOTION_FILE) + (".ckpt" if as_pickle else ".safetensors"))
        if not path.exists():
            log.info("making a random-weight AnimateLCM%s motion module (%s MB, once)", "-I2V" if i2v else "",
                     1060 if i2v else 900)
            sd = random_weights.animatelcm_motion_module()
            if i2v:
                sd.update(random_weights.animatelcm_i2v_image_encoder())
            _atomic(path, (lambda p: torch.save(sd, p)) if as_pickle else
                    (lambda p: save_file({k: v.contiguous() for k, v in sd.items()}, str(p))))
        return path
    if folder == "animatediff_motion_lora":
        # the released motion LoRAs (v2_lora_ZoomIn.ckpt, ...) are fp32 pickles
        path = CACHE_DIR / "motion_lora_v2_rank64_random_v1.ckpt"
        if not path.exists():
            log.info("making a random-weight AnimateDiff v2 motion LoRA (77 MB, once)")
            sd = random_weights.animatediff_motion_lora()
            _atomic(path, lambda p: torch.save(sd, p))
        return path
    if folder == "loras":
        # AnimateLCM's spatial LoRA stores no alpha and skips the text encoder; style LoRAs usually have both
        spatial = "animatelcm" in name.lower()
        path = CACHE_DIR / ("animatelcm_lora_random_v1.safetensors" if spatial else "style_lora_random_v1.safetensors")
        if not path.exists():
            sd = (random_weights.kohya_lora(rank=64, alpha=None, text_encoder=False) if spatial
                  else random_weights.kohya_lora(rank=8, alpha=4.0, text_encoder=True))
            _atomic(path, lambda p: save_file(sd, str(p)))
        return path
    if folder == "controlnet" and "sparsectrl" in name.lower():
        # the released v3_sd15_sparsectrl_{rgb,scribble}.ckpt are pickles: a .ckpt name gets one, a .safetensors
        # name the same keys as safetensors (fp16 here: 1 GB each instead of the releases' 2 GB in fp32)
        as_pickle = not name.lower().endswith(SAFETENSORS)
        kind = "scribble" if "scribble" in name.lower() else "rgb"
        path = CACHE_DIR / f"sparsectrl_{kind}_random_v1{'.ckpt' if as_pickle else '.safetensors'}"
        if not path.exists():
            log.info("making a random-weight %s SparseCtrl (1 GB, once)", kind)
            sd = random_sparsectrl.sparsectrl_state_dict(kind)
            _atomic(path, (lambda p: torch.save(sd, p)) if as_pickle else (lambda p: save_file(sd, str(p))))
        return path
    if folder == "controlnet":
        # the fp16 .safetensors conversions hold the ControlNet's keys bare, lllyasviel's .pth releases (pickles)
        # under control_model.: ComfyUI reads both
        as_pickle = not name.lower().endswith(SAFETENSORS)
        path = CACHE_DIR / ("sd15_controlnet_random_v1" + (".pth" if as_pickle else ".safetensors"))
        if not path.exists():
            log.info("making a random-weight SD1.5 ControlNet (720 MB, once)")
            sd = random_weights.sd15_controlnet(prefix="control_model." if as_pickle else "")
            _atomic(path, (lambda p: torch.save(sd, p)) if as_pickle else (lambda p: save_file(sd, str(p))))
        return path
    if folder == "diffusion_models" and "svd" in name.lower() and name.lower().endswith(SAFETENSORS):
        return _svd_file(SVD_UNET_FILE, random_svd.animatelcm_svd_unet,
                         "AnimateLCM-SVD-xt UNet in the released diffusers layout (narrow: 425 MB")
    raise StandInError(f"no stand-in can be made for '{name}' in {folder}")


def _lightning_file(name):
    """An AnimateDiff-Lightning stand-in: the published layout its name asks for (diffusers' or the ComfyUI one),
    one file per layout; the name it is linked under tells the loader its step count, as the real file's does."""
    from safetensors.torch import save_file
    if not name.lower().endswith(SAFETENSORS):
        raise StandInError(f"no stand-in can be made for '{name}': AnimateDiff-Lightning is published as .safetensors "
                           "(animatediff_lightning_4step_comfyui.safetensors): rename it in the workflow")
    form = "diffusers" if "diffusers" in name.lower() else "comfyui"
    path = CACHE_DIR / f"animatediff_lightning_{form}_random_v1.safetensors"
    if not path.exists():
        log.info("making a random-weight AnimateDiff-Lightning motion module (%s layout, 909 MB, once)", form)
        _atomic(path, lambda p: save_file(random_weights.lightning_motion_module(form), str(p)))
    return path


def _svd_file(file_name, make, what):
    """A Stable Video Diffusion stand-in. Full size would be 6 GB per UNet: its UNets are NARROW_SVD (320
    channels at every level), which ComfyUI still detects as SVD_img2vid (stand_ins/random_svd.py)."""
    from safetensors.torch import save_file
    path = CACHE_DIR / file_name
    if not path.exists():
        log.info("making a random-weight %s, once)", what)
        _atomic(path, lambda p: save_file(make(), str(p)))
    return path


def link(cached, folder_dir, name):
    """Symlink `cached` into `folder_dir` as `name` (which may hold a subfolder, as ComfyUI allows)."""
    target = Path(folder_dir) / name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():  # a dangling link from a cache that was emptied
            target.unlink()
        try:
            target.symlink_to(cached)
        except FileExistsError:  # another worker (Ray) linked it a moment ago
            pass
    return target


def forget_file_lists():
    import folder_paths
    cache = getattr(folder_paths, "filename_list_cache", None)
    if isinstance(cache, dict):
        cache.clear()


def provide_model_files(prompt):
    """Stand-ins for the model files the prompt names that ComfyUI cannot find; returns what was stood in for."""
    import folder_paths
    made = []
    for node_id, input_name, folder, name in missing_model_files(prompt):
        folder_dir = CACHE_DIR / "stand-ins" / folder
        if str(folder_dir) not in folder_paths.get_folder_paths(folder):
            folder_paths.add_model_folder_path(folder, str(folder_dir))  # appended: real files come first
        link(cached_file(folder, name), folder_dir, name)
        log.warning("node %s %s: '%s' is not in ComfyUI's %s folder: using RANDOM WEIGHTS in its place "
                    "(the video shows noise, not the prompt)", node_id, input_name, name, folder)
        made.append(name)
    forget_file_lists()
    return made


def provide_input_videos(prompt, size=None):
    """A moving-gradient video for each Load Video node whose file is not in the input folder, written to
    ComfyUI's temp folder and named with ComfyUI's "[temp]" annotation (the input folder is left alone)."""
    import folder_paths
    from ..video import encode
    by_extension = {f.extension: name for name, f in encode.FORMATS.items()}
    for node_id, node in prompt.items():
        inputs = node["inputs"]
        if node["class_type"] != "ALCM_LoadVideo" or not isinstance(inputs.get("video"), str):
            continue
        if folder_paths.exists_annotated_filepath(inputs["video"]):
            continue
        name = Path(inputs["video"]).name
        extension = Path(name).suffix.lower()
        if extension not in by_extension:
            raise StandInError(f"node {node_id}: no stand-in can be made for '{inputs['video']}' (only for "
                               f"{', '.join(sorted(by_extension))}): put the video in {folder_paths.get_input_directory()}")
        cap = inputs.get("frame_cap") or STAND_IN_VIDEO_FRAMES
        count = inputs.get("skip_first_frames", 0) + cap * inputs.get("select_every_nth", 1)
        path = Path(folder_paths.get_temp_directory()) / name
        write_video(path, count, size or 512)
        inputs["video"] = f"{name} [temp]"
        log.warning("node %s: '%s' is not in the input folder: using a %d-frame %d px moving-gradient stand-in",
                    node_id, name, count, size or 512)


def write_video(path, frames, side):
    """A `frames`-long moving gradient of `side` px, in the format its extension names."""
    import torch
    from ..video import encode
    by_extension = {f.extension: name for name, f in encode.FORMATS.items()}
    y, x = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    t = (torch.arange(frames) / frames).view(frames, 1, 1)
    gradient = torch.stack([(x + t) % 1, y.expand(frames, -1, -1), (1 - x * y + t) % 1], dim=-1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encode.save_video(gradient, str(path), by_extension[path.suffix.lower()], 8.0)
    return path


def provide_input_images(prompt, size=None):
    """A gradient picture (3:2 landscape, so a square video crops it) for each Load Image node whose file
    is not in the input folder, written to ComfyUI's temp folder and named with the "[temp]" annotation."""
    import folder_paths
    for node_id, node in prompt.items():
        inputs = node["inputs"]
        if node["class_type"] != "LoadImage" or not isinstance(inputs.get("image"), str):
            continue
        if folder_paths.exists_annotated_filepath(inputs["image"]):
            continue
        name = Path(inputs["image"]).with_suffix(".png").name
        side = size or 512
        write_image(Path(folder_paths.get_temp_directory()) / name, side)
        inputs["image"] = f"{name} [temp]"
        log.warning("node %s: '%s' is not in the input folder: using a %d×%d gradient picture", node_id, name,
                    side * 3 // 2, side)


def write_image(path, side):
    """A gradient picture `side` px high, 3:2 landscape (so a square video crops it), as PNG."""
    import numpy as np
    from PIL import Image
    y, x = np.mgrid[0:side, 0:side * 3 // 2] / side
    pixels = np.stack([x / 1.5, y, 1 - x * y / 1.5], axis=-1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((pixels * 255).astype(np.uint8)).save(path)
    return path
