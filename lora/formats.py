"""What a LoRA file is, and its keys in a naming both supported ComfyUI versions map.

comfy.lora maps kohya names (`lora_unet_*`, `lora_te_*`), diffusers attention-processor names and
LyCORIS (LoCon, LoHa, LoKr) in every version we support; PEFT names (`unet.<path>.lora_A.weight`,
`text_encoder.<path>.lora_B.weight`) only in newer ones. So PEFT keys are renamed to kohya's here,
and comfy.lora does the mapping and patching.
"""
import re

MODULE = re.compile(r"^(.+?)\.(lora_down|lora_up|lora_A|lora_B|lora_mid|lora\.down|lora\.up|alpha|dora_scale|"
                    r"hada_\w+|lokr_\w+|diff|diff_b|w_norm|b_norm|on_input)(\.|$)")
_PEFT = {"lora_A": "lora_down", "lora_B": "lora_up"}
_PEFT_PREFIXES = {"unet.": "lora_unet_", "text_encoder.": "lora_te_"}


def module_of(key):
    match = MODULE.match(key)
    return match.group(1) if match else None


def lora_modules(state_dict):
    """{module name: {"rank": r, "alpha": a or None}} for every patched layer in the file."""
    modules = {}
    for key, value in state_dict.items():
        match = MODULE.match(key)
        if not match:
            continue
        info = modules.setdefault(match.group(1), {"rank": None, "alpha": None})
        if match.group(2) in ("lora_down", "lora_A", "lora.down") and value.ndim >= 2:
            info["rank"] = value.shape[0]
        elif match.group(2) == "alpha":
            info["alpha"] = float(value)
    return modules


def normalise(state_dict):
    """PEFT/diffusers `lora_A`/`lora_B` keys → kohya names; other keys unchanged."""
    out = {}
    for key, value in state_dict.items():
        match = re.match(r"^(unet\.|text_encoder\.)(.+)\.(lora_A|lora_B)\.weight$", key)
        if match and ".processor." not in key:
            prefix, path, part = match.groups()
            key = f"{_PEFT_PREFIXES[prefix]}{path.replace('.', '_')}.{_PEFT[part]}.weight"
        out[key] = value
    return out


def describe(state_dict):
    """What a file that patched nothing in an SD1.5 model appears to be."""
    keys = list(state_dict)
    if not lora_modules(state_dict):
        return "not a LoRA (it has no lora_up/lora_down, lora_A/lora_B or LyCORIS weights)"
    if any("motion_modules" in k for k in keys):
        return ("an AnimateDiff motion LoRA (it patches motion-module layers, which style LoRAs never touch); "
                "it belongs in models/animatediff_motion_lora")
    if any(k.startswith(("lora_te2_", "lora_te1_")) or "text_encoder_2" in k for k in keys) or any(
            "attn2" in k and ("to_k" in k or "to_v" in k) and v.ndim == 2 and v.shape[-1] == 2048
            for k, v in state_dict.items()):
        return "an SDXL LoRA (this model is SD1.5): pick an SD1.5 LoRA"
    return "a LoRA for another model family: none of its layers exist in this SD1.5 model"
