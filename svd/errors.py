"""What the AnimateLCM-SVD-xt loader refuses; each message says what the file is and what to pick."""


class SVDModelFileError(ValueError):
    """Not an AnimateLCM-SVD-xt (or other Stable Video Diffusion) UNet file."""
