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


SDXL_TEXT_WIDTH = 2048  # SDXL's cross-attention reads CLIP-L and OpenCLIP bigG features joined (768 + 1280)
_SECOND_TRANSFORMER = re.compile(r"transformer_blocks[._]([1-9]\d*)[._]")


def sdxl_signs(state_dict):
    """What marks a (normalised) LoRA file as made for SDXL, in words; empty for any other file.

    Some layers of an SDXL LoRA fit SD1.5 by chance (`lora_te1_*` is CLIP-L in both, and some
    UNet widths agree), so the file is recognised by what it is, not by what fails to match.
    """
    keys = list(state_dict)
    signs = []
    if any(k.startswith(("lora_te2_", "text_encoder_2.")) for k in keys):
        signs.append("weights for SDXL's second text encoder (lora_te2_*)")
    if any("attn2" in k and ("to_k" in k or "to_v" in k) and v.ndim == 2 and v.shape[-1] == SDXL_TEXT_WIDTH
           for k, v in state_dict.items()):
        signs.append(f"{SDXL_TEXT_WIDTH}-wide cross-attention (SD1.5's is 768)")
    if any(_SECOND_TRANSFORMER.search(k) for k in keys):
        signs.append("attention blocks several transformer layers deep, the SDXL UNet layout (SD1.5 has one)")
    return signs


def describe(state_dict):
    """What a file that patched nothing in an SD1.5 model appears to be."""
    keys = list(state_dict)
    if not lora_modules(state_dict):
        return "not a LoRA (it has no lora_up/lora_down, lora_A/lora_B or LyCORIS weights)"
    if any("motion_modules" in k for k in keys):
        return ("an AnimateDiff motion LoRA (it patches motion-module layers, which style LoRAs never touch); "
                "it belongs in models/animatediff_motion_lora")
    return "a LoRA for another model family: none of its layers exist in this SD1.5 model"
