"""Latents to frames and frames to latents a few at a time, so a long video never exists as one IMAGE.

A 256-frame video is 16 MB of latents at 512x512 but 768 MB as IMAGE (1.7 GB at 1024x576), plus
the copies a graph makes of it. Save Video takes LATENT + VAE and writes frames decoded a chunk at a
time (DecodedFrames stands where the IMAGE would, and the writer asks it for one frame after
another); Load Video with a VAE encodes each chunk of decoded frames as it comes (encode_frames).
The SD1.5 VAE works on each frame alone, so chunking changes nothing in the frames or latents.
"""
import torch

from .errors import VideoFormatError

CHUNK_FRAMES = 8  # frames decoded or encoded at once: a few MB at 512x512, and enough for the VAE to batch


class DecodedFrames:
    """An IMAGE-shaped view ([N, H, W, 3] float 0-1) of latents, decoded by the VAE one chunk at a time.

    Indexing with a frame number (images[i] or images[i, :, :, :3]) decodes that frame's chunk if it is
    not the one held; only one chunk of frames is ever in memory. Frames are asked for in order when
    a video is written, so each chunk is decoded once (twice for pingpong, on the way back).
    """

    def __init__(self, vae, samples, chunk_frames=CHUNK_FRAMES, progress=None):
        if samples.shape[0] == 0:
            raise ValueError("the LATENT holds no frames: there is nothing to decode.")
        self.vae, self.samples, self.chunk_frames, self.progress = vae, samples, chunk_frames, progress
        self._start, self._frames = None, None
        first = self._chunk(0)
        self.shape = torch.Size((samples.shape[0], *first.shape[1:]))
        self.dtype = first.dtype

    def __len__(self):
        return self.shape[0]

    def _chunk(self, index):
        start = index - index % self.chunk_frames
        if start != self._start:
            _stop_if_cancelled()
            self._frames = None  # let the previous chunk go before the next one is decoded
            self._frames = self.vae.decode(self.samples[start:start + self.chunk_frames])
            self._start = start
            if self.progress is not None:
                self.progress(min(start + self.chunk_frames, self.samples.shape[0]), self.samples.shape[0])
        return self._frames

    def __getitem__(self, key):
        index, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if not isinstance(index, int):
            raise TypeError("DecodedFrames is read one frame at a time (an integer frame index first)")
        if index < 0:
            index += self.shape[0]
        frame = self._chunk(index)[index - self._start]
        return frame[rest] if rest else frame


def encode_frames(vae, images):
    """LATENT samples of IMAGE frames, cropped to whole latents the way VAE Encode crops them."""
    _stop_if_cancelled()
    ratio = 8
    height, width = (images.shape[1] // ratio) * ratio, (images.shape[2] // ratio) * ratio
    top, left = (images.shape[1] % ratio) // 2, (images.shape[2] % ratio) // 2
    return vae.encode(images[:, top:top + height, left:left + width, :3])


def _stop_if_cancelled():
    import comfy.model_management  # ComfyUI's, imported when a node runs: the video engine imports without it
    comfy.model_management.throw_exception_if_processing_interrupted()


def frames_to_save(images, latent, vae):
    """What Save Video writes: the IMAGE it was given, or the LATENT decoded a chunk at a time by the VAE."""
    if images is not None and latent is not None:
        raise VideoFormatError("Save Video got both images and latent: connect one of them (latent with vae for "
                               "long videos), not both.")
    if images is not None:
        return images
    if latent is None:
        raise VideoFormatError("Save Video has nothing to save: connect images (VAE Decode's output), or latent "
                               "(the sampler's output) and vae.")
    if vae is None:
        raise VideoFormatError("Save Video got a latent but no vae to decode it: connect the checkpoint's VAE to "
                               "its vae input.")
    return DecodedFrames(vae, latent["samples"])
