"""The model folders the pack reads, registered with ComfyUI's folder_paths.

The names are AnimateDiff-Evolved's, so files users already keep there just work, and both
packs can be installed side by side: a folder another pack registered first is kept as it is.
LoRAs come from ComfyUI's own `loras` folder. UNet-only files (AnimateLCM-SVD-xt) come from
ComfyUI's `diffusion_models` folder (models/diffusion_models and models/unet); ComfyUIs before mid-2024
call it `unet` and list models/unet only, so there it is registered with both folders.
"""
import os

import folder_paths

MOTION_MODULES = "animatediff_models"
MOTION_LORAS = "animatediff_motion_lora"
DIFFUSION_MODELS = "diffusion_models"


def register_model_folders():
    for name in (MOTION_MODULES, MOTION_LORAS):
        if name in folder_paths.folder_names_and_paths:
            continue
        default = os.path.join(folder_paths.models_dir, name)
        folder_paths.folder_names_and_paths[name] = ([default], set(folder_paths.supported_pt_extensions))
    if DIFFUSION_MODELS not in folder_paths.folder_names_and_paths:
        unet_folders = folder_paths.folder_names_and_paths.get("unet", ([], None))[0]
        folders = list(dict.fromkeys(unet_folders + [os.path.join(folder_paths.models_dir, name)
                                                     for name in ("unet", DIFFUSION_MODELS)]))
        folder_paths.folder_names_and_paths[DIFFUSION_MODELS] = (folders, set(folder_paths.supported_pt_extensions))


def full_path(folder, filename):
    """Path of `filename` in a registered folder, or a FileNotFoundError that names the folder."""
    path = folder_paths.get_full_path(folder, filename)
    if path is None or not os.path.isfile(path):
        searched = ", ".join(folder_paths.get_folder_paths(folder))
        raise FileNotFoundError(f"'{filename}' is not in the {folder} folder (searched: {searched}).")
    return path
