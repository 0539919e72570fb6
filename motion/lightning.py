"""Which motion modules are AnimateDiff-Lightning's (ByteDance, arXiv 2403.12706), and for how many steps.

ByteDance publishes four step counts (1, 2, 4, 8) in two forms each (huggingface.co/ByteDance/AnimateDiff-Lightning):
`animatediff_lightning_{N}step_comfyui.safetensors`, AnimateDiff v2's original naming with its two 32-frame
position tables per layer (908,929,664 bytes), and `animatediff_lightning_{N}step_diffusers.safetensors`,
diffusers' MotionAdapter naming with one table per layer (907,702,248 bytes); fp16, no metadata. All eight
have AnimateDiff v2's layout (they are distilled from it): the four step counts share every key and shape,
with each other and with an fp16 mm_sd_v15_v2. So the weights' layout cannot tell a Lightning file or its
step count. What can:
- the name, as published or as users rename it ("animatediff-lightning-4steps-1.5.safetensors"): "lightning"
  and "<N>step(s)" (a name with "lightning" and no count: Lightning, step count unknown);
- under any name, the bytes: a file of exactly one of the two published sizes is hashed (SHA-256, about two
  seconds per 900 MB on one CPU core) and looked up among the published files' hashes (their Git LFS
  pointers' oids on the model repository).
A Lightning file re-saved under another name (in fp32, merged with something) is none of these: it loads as
AnimateDiff v2, and the AnimateLCM Sampler's mode "AnimateDiff-Lightning" samples it with Lightning's recipe.
"""
import dataclasses
import hashlib
import logging
import os
import re

log = logging.getLogger(__name__)

LIGHTNING_FAMILY = "AnimateDiff-Lightning"
LIGHTNING_NAME = re.compile(r"lightning", re.IGNORECASE)
STEPS_IN_NAME = re.compile(r"(?<![0-9])([1-9][0-9]?)[ _-]?steps?(?![a-z])", re.IGNORECASE)
# (size in bytes, SHA-256) of each published file: (steps, form)
PUBLISHED = {
    (908929664, "5f45da3a6ffa5edbc868f577a875a0e0d6cdc6f8048dbbd17a13bc93ccf34393"): (1, "comfyui"),
    (908929664, "29b4879520056657b897f48821760285b3eef371576e80c86c2ef1fdf95f6c1d"): (2, "comfyui"),
    (908929664, "aeb66ae8ff4a868d31379c3bde3e5e7e510a4d4b565a06ee4f1297e93a561dc5"): (4, "comfyui"),
    (908929664, "5173ea8209053dd5de9b973baefac1801fbe7a433d07fa0122664121751885cf"): (8, "comfyui"),
    (907702248, "ca4ea6e68f4634d72c222de2b0187c3a31f00278a55868420b4e66b987bb7ccb"): (1, "diffusers"),
    (907702248, "fbd62904484d3e0842aa6c2f12d919ef91bacac45d36b1a13ae1ba10b5da4fdd"): (2, "diffusers"),
    (907702248, "8f3330914edd8fc2ee5659e6944323858feb0ec21cc913789202d043f69b5e17"): (4, "diffusers"),
    (907702248, "849e93641e2ae7dde37fb312747a5e8671920bddf5a8d27757ac7b1699571a96"): (8, "diffusers"),
}
LIGHTNING_FRAMES = 32  # AnimateDiff v2's position tables


def recognise(path, motion_format, image_encoder=None, published=None):
    """`motion_format` as read from the weights, made AnimateDiff-Lightning's (with its step count, where
    known) when the file at `path` is one of Lightning's."""
    v2_layout = motion_format.has_mid_block and motion_format.max_frames == LIGHTNING_FRAMES and not image_encoder
    if not v2_layout:  # the only layout Lightning ships in
        return motion_format
    is_lightning, steps = lightning_steps(path, published)
    if not is_lightning:
        return motion_format
    return dataclasses.replace(motion_format, family=LIGHTNING_FAMILY, distilled_steps=steps)


def sha256_of(path, chunk=2**20):
    digest, buffer = hashlib.sha256(), bytearray(chunk)
    view = memoryview(buffer)
    with open(path, "rb") as file:
        while read := file.readinto(buffer):
            digest.update(view[:read])
    return digest.hexdigest()


def lightning_steps(path, published=None):
    """(is Lightning, step count or None) of the motion-module file at `path`, from its name or its bytes."""
    published = PUBLISHED if published is None else published
    name = os.path.basename(path)
    if LIGHTNING_NAME.search(name):
        steps = STEPS_IN_NAME.search(name)
        return True, int(steps.group(1)) if steps else None
    size = os.path.getsize(path)
    if not any(size == published_size for published_size, _ in published):
        return False, None
    log.info("'%s' has the size of a published AnimateDiff-Lightning file: comparing its SHA-256", name)
    match = published.get((size, sha256_of(path)))
    if match is None:
        return False, None
    log.info("'%s' is ByteDance's animatediff_lightning_%dstep_%s.safetensors, renamed", name, *match)
    return True, match[0]
