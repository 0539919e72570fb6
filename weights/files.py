"""Reading weight files safely: safetensors, or pickles through a weights-only load.

A plain `torch.load` of a pickle can run any code the file carries; a weights-only load refuses
it. Zip-format pickles are memory-mapped, so a 1.8 GB fp32 checkpoint costs no second copy in RAM
until its tensors are converted.
"""
import json
import os
import pickle

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .errors import WeightFileError


def read_state_dict(path):
    name = os.path.basename(path)
    if os.path.getsize(path) == 0:
        raise WeightFileError(f"'{name}' is empty (0 bytes): the download did not finish. Download it again.")
    if path.lower().endswith((".safetensors", ".sft")):
        try:
            state_dict = load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError) as error:
            raise WeightFileError(f"'{name}' is not a readable safetensors file ({error}); it is corrupt or "
                                  "truncated. Download it again.") from error
    else:
        state_dict = _read_pickle(path, name)
    if isinstance(state_dict, dict) and "state_dict" in state_dict and isinstance(state_dict["state_dict"], dict):
        state_dict = state_dict["state_dict"]
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise WeightFileError(f"'{name}' holds no state dict of tensors.")
    return state_dict


def _read_pickle(path, name):
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except pickle.UnpicklingError as error:
        if "weights only" in str(error).lower() or "weights_only" in str(error):
            raise WeightFileError(
                f"'{name}' was refused: it is a pickle that asks to run code or build objects other than "
                "tensors when loaded, and only weights are loaded here. Use a .safetensors version of "
                "this file.") from error
        raise WeightFileError(f"'{name}' is corrupt or truncated ({error}). Download it again.") from error
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise WeightFileError(f"'{name}' is corrupt or truncated ({error}). Download it again.") from error


def read_sidecar_config(path):
    """config.json beside a diffusers-format file, if there is one."""
    config = os.path.join(os.path.dirname(path), "config.json")
    if not os.path.isfile(config):
        return {}
    with open(config, encoding="utf-8") as f:
        return json.load(f)
