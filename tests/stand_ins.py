"""Random-weight stand-ins for the model files a test names: the product's (stand_ins/files.py,
what `render.py --stand-ins` makes), linked into the test host's own model folders.

No weights can be downloaded where the suite runs, so files with the real key layouts and sizes
are generated once, kept in CACHE_DIR between runs (never in the repository).
"""
import importlib

import comfy_host


def _product():
    return importlib.import_module(comfy_host.start().pack.__name__ + ".stand_ins.files")


def __getattr__(name):  # CACHE_DIR, SD15_FILE: read from the product once the host runs
    if name in ("CACHE_DIR", "SD15_FILE"):
        return getattr(_product(), name)
    raise AttributeError(name)


def _linked(host, folder, name):
    _product().link(_product().cached_file(folder, name), host.models_dir(folder), name)
    return name


def sd15_checkpoint(host, name=None):
    """A full-size random SD1.5 checkpoint (about 2 GB) in the host's checkpoints folder as `name`."""
    return _linked(host, "checkpoints", name or _product().SD15_FILE)


def narrow_sd15_checkpoint(host, name="sd15_narrow.safetensors"):
    """The narrow SD1.5 checkpoint of fixture_models (450 MB, loads in seconds) in checkpoints as `name`."""
    from fixture_models import NARROW_CHECKPOINT, write_narrow_sd15_checkpoint
    cached = _product().CACHE_DIR / NARROW_CHECKPOINT
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_narrow_sd15_checkpoint(cached)
    _product().link(cached, host.models_dir("checkpoints"), name)
    return name


def motion_module(host, name):
    """A full-size random motion module as `name`: AnimateLCM t2v's (900 MB fp16; a pickle for a .ckpt name), or
    AnimateDiff-Lightning's published layout for a name with "lightning" in it."""
    return _linked(host, "animatediff_models", name)


def make_lora_stand_in(host, name):
    """A random SD1.5 kohya LoRA as `name`: a spatial-LoRA one (no alpha, image layers only) when the
    name mentions AnimateLCM, else a style LoRA (alpha, image layers and text encoder)."""
    return _linked(host, "loras", name)


def motion_lora(host, name):
    """A full-size random AnimateDiff v2 motion LoRA (rank 64, fp32, pickled, like v2_lora_ZoomIn.ckpt) as `name`."""
    return _linked(host, "animatediff_motion_lora", name)


def animatelcm_svd_unet(host, name="AnimateLCM-SVD-xt-1.1.safetensors"):
    """A narrow random AnimateLCM-SVD-xt UNet (diffusers layout, 425 MB fp16) in diffusion_models as `name`."""
    return _linked(host, "diffusion_models", name)


def svd_checkpoint(host, name="svd_xt.safetensors"):
    """A random svd_xt-shaped Image Only checkpoint (narrow UNet, ViT-H CLIP vision, temporal VAE) as `name`."""
    return _linked(host, "checkpoints", name)


def controlnet(host, name="control_v11p_sd15_canny_fp16.safetensors"):
    """A full-size random SD1.5 ControlNet (ControlNet 1.1's layout, 723 MB fp16) in the controlnet folder as `name`."""
    return _linked(host, "controlnet", name)


def sparsectrl(host, name="v3_sd15_sparsectrl_rgb.ckpt"):
    """A full-size random SparseCtrl in the released layout (RGB, or scribble when the name says so; a pickle for a
    .ckpt name; 1 GB fp16) in the controlnet folder as `name`."""
    return _linked(host, "controlnet", name)
