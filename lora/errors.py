"""What the LoRA engine refuses; each message names the file and what it appears to be."""


class LoRAMatchError(ValueError):
    pass
