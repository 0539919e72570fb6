"""The random-weight SD1.5 checkpoint layout, from the product (stand_ins/random_weights.py: the
renderer's --stand-ins makes the same files)."""
import importlib

import comfy_host

_weights = importlib.import_module(comfy_host.start().pack.__name__ + ".stand_ins.random_weights")
UNET_CHANNELS, TEXT_WIDTH = _weights.UNET_CHANNELS, _weights.TEXT_WIDTH
unet_shapes, vae_shapes, clip_shapes, sd15_shapes = (_weights.unet_shapes, _weights.vae_shapes,
                                                     _weights.clip_shapes, _weights.sd15_shapes)
random_tensor, write_sd15_checkpoint = _weights.random_tensor, _weights.write_sd15_checkpoint
