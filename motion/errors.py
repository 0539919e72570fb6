"""What the motion engine refuses; each message names the file or input and the fix."""


class MotionModuleError(ValueError):
    """Not a motion module this pack can use; the message says what the file is and what to do."""


class FrameCountError(ValueError):
    pass


class MotionLoRAError(ValueError):
    """Not a motion LoRA this motion module can take; the message says what the file is and what to do."""
