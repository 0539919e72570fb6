"""LoRA engine: style LoRAs and the AnimateLCM spatial LoRA, mapped and patched through comfy.lora."""
