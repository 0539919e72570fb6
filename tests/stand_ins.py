"""Random-weight stand-ins for the model files a test or a rendered workflow names.

No weights can be downloaded where the suite runs, so files with the real key layouts and sizes
are generated once, kept in CACHE_DIR between runs (never in the repository), and linked into the
host's model folders under whatever name the graph asks for.
"""
import os
from pathlib import Path

# Keyed by a version so a generator change makes a new file instead of reusing a stale one.
CACHE_DIR = Path(os.environ.get("ALCM_TEST_CACHE", Path.home() / ".cache" / "animatelcm-fast"))
SD15_FILE = "sd15_random_v1.safetensors"
MOTION_FILE = "animatelcm_t2v_random_v1"  # + .safetensors or .ckpt
SAFETENSORS = (".safetensors", ".sft")


def _link(cached, folder, name):
    """Symlink `cached` into `folder` as `name` (which may hold a subfolder, as ComfyUI allows)."""
    target = folder / name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(cached)
    return name


def sd15_checkpoint(host, name=SD15_FILE):
    """A full-size random SD1.5 checkpoint (about 2 GB) in the host's checkpoints folder as `name`."""
    if not name.lower().endswith(SAFETENSORS):
        # ComfyUI reads any other extension as a pickle; a linked safetensors file would not load.
        raise ValueError(f"no stand-in for checkpoint '{name}': only .safetensors names can be stood in for")
    from fixture_sd15 import write_sd15_checkpoint
    cached = CACHE_DIR / SD15_FILE
    if not cached.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        write_sd15_checkpoint(cached)
    return _link(cached, host.models_dir("checkpoints"), name)


def narrow_sd15_checkpoint(host, name="sd15_narrow.safetensors"):
    """The narrow SD1.5 checkpoint of fixture_models (450 MB, loads in seconds) in checkpoints as `name`."""
    from fixture_models import NARROW_CHECKPOINT, write_narrow_sd15_checkpoint
    cached = CACHE_DIR / NARROW_CHECKPOINT
    if not cached.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        write_narrow_sd15_checkpoint(cached)
    return _link(cached, host.models_dir("checkpoints"), name)


def motion_module(host, name):
    """A full-size random AnimateLCM t2v motion module (about 900 MB fp16) in animatediff_models as `name`.

    The released AnimateLCM_sd15_t2v.ckpt is a pickle, so a `.ckpt` (or other pickle) name gets a
    torch.save file: the loader's pickle path is what such a graph really exercises.
    """
    import torch
    from safetensors.torch import load_file
    from fixture_motion import motion_state_dict, save_pickle, save_safetensors
    as_pickle = not name.lower().endswith(SAFETENSORS)
    cached = CACHE_DIR / (MOTION_FILE + (".ckpt" if as_pickle else ".safetensors"))
    if not cached.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        other = cached.with_suffix(".safetensors" if as_pickle else ".ckpt")
        if other.exists():  # the same weights in the other form: convert rather than regenerate
            sd = load_file(str(other)) if as_pickle else torch.load(other, map_location="cpu", weights_only=True)
        else:
            sd = motion_state_dict("animatelcm_t2v", dtype=torch.float16)
        partial = cached.with_name(cached.name + ".partial")  # written whole, then renamed
        (save_pickle if as_pickle else save_safetensors)(sd, partial)
        partial.replace(cached)
    return _link(cached, host.models_dir("animatediff_models"), name)


def make_lora_stand_in(host, name):
    """A random SD1.5 LoRA in the kohya layout in the host's loras folder as `name`.

    A name that mentions AnimateLCM gets a spatial-LoRA stand-in (image layers only, no alpha,
    like the released file); any other name a style LoRA (image layers and text encoder, alpha).
    """
    from fixture_lora import write_kohya_lora
    spatial = "animatelcm" in name.lower()
    cached = CACHE_DIR / ("animatelcm_lora_random_v1.safetensors" if spatial else "style_lora_random_v1.safetensors")
    if not cached.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(cached.name + ".partial")
        if spatial:
            write_kohya_lora(partial, rank=64, alpha=None, text_encoder=False)
        else:
            write_kohya_lora(partial, rank=8, alpha=4.0, text_encoder=True)
        partial.replace(cached)
    return _link(cached, host.models_dir("loras"), name)


MOTION_LORA_FILE = "motion_lora_v2_rank64_random_v1.ckpt"


def motion_lora(host, name):
    """A full-size random AnimateDiff v2 motion LoRA (rank 64, fp32, pickled: 77 MB, like v2_lora_ZoomIn.ckpt)
    in animatediff_motion_lora as `name`."""
    import torch
    from fixture_motion import motion_lora_state_dict
    cached = CACHE_DIR / MOTION_LORA_FILE
    if not cached.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(cached.name + ".partial")
        torch.save(motion_lora_state_dict(rank=64), partial)
        partial.replace(cached)
    return _link(cached, host.models_dir("animatediff_motion_lora"), name)
