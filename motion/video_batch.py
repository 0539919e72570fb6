"""How the latent batch of one UNet call splits into videos.

Frames are the latent batch. ComfyUI batches the positive and negative prompts (and any area or
ControlNet chunks) of a step into one UNet call, each chunk a full copy of the frames, and tells
the model wrapper how many chunks there are (`cond_or_uncond`). The wrapper sets that number here
for the duration of the call, so each motion layer attends across the frames of its own video only.
"""
import contextvars
from contextlib import contextmanager

from .errors import FrameCountError

_videos = contextvars.ContextVar("animatelcm_videos_in_batch", default=None)


@contextmanager
def video_layout(videos):
    token = _videos.set(videos)
    try:
        yield
    finally:
        _videos.reset(token)


def videos_in_batch(x):
    videos = _videos.get()
    if videos is None:
        raise RuntimeError(
            "A motion layer ran outside the pack's model wrapper, so it cannot tell where one video "
            "ends and the next begins. A node after 'Apply Motion Module' replaced the model's UNet "
            "function wrapper; apply the motion module after that node.")
    if x.shape[0] % videos:
        raise FrameCountError(f"a batch of {x.shape[0]} latents does not split into {videos} videos")
    return videos
