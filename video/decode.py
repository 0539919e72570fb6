"""Video files to IMAGE frames ([N, H, W, 3] float32 0-1), decoded one at a time into one tensor.

Videos go through PyAV (FFmpeg: MP4, WebM, MKV, MOV, AVI), which gives the exact frame rate and,
from the container, the frame count; animated WebP, GIF and APNG through Pillow, whose readers
know those formats' frame timing. OpenCV resizes. The size of the result is known before decoding
starts, so a video that would not fit in RAM is refused up front instead of exhausting it halfway.
"""
import os
from contextlib import contextmanager

import av
from av.error import FFmpegError
import cv2
import numpy as np
import psutil
import torch
from PIL import Image

from .errors import VideoFileError
from .formats import reader_for
from .latent_frames import CHUNK_FRAMES, encode_frames

DEFAULT_FPS = 8.0  # for files that do not say
# What Pillow raises on a damaged or hostile file: its own DecompressionBombError is none of the usual ones.
PILLOW_ERRORS = (OSError, ValueError, EOFError, SyntaxError, IndexError, Image.DecompressionBombError)


def available_memory():
    """Bytes of RAM that new allocations can take now."""
    return psutil.virtual_memory().available


def load_video(path, frame_cap=0, skip_first_frames=0, select_every_nth=1, multiple_of=8, progress=None):
    """(frames, fps) of a video file. fps is the file's rate divided by select_every_nth."""
    frames, _, fps = _load(path, frame_cap, skip_first_frames, select_every_nth, multiple_of, progress)
    return frames, fps


def load_video_latent(path, vae, frame_cap=0, skip_first_frames=0, select_every_nth=1, multiple_of=8, progress=None,
                      keep_frames=False):
    """(latent samples, frames as IMAGE, fps) of a video file, encoded by `vae` CHUNK_FRAMES frames at a time as
    they are decoded. The IMAGE is the first frame only, so the frames never exist all at once at full
    resolution; with `keep_frames`, every frame (for a graph that also needs them, a ControlNet's hints):
    the VAE still encodes a chunk at a time, never the whole video at once."""
    return _load(path, frame_cap, skip_first_frames, select_every_nth, multiple_of, progress, vae, keep_frames)


def _load(path, frame_cap, skip_first_frames, select_every_nth, multiple_of, progress, vae=None, keep_frames=False):
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise VideoFileError(f"'{name}' does not exist (looked for {path}).")
    if os.path.getsize(path) == 0:
        raise VideoFileError(f"'{name}' is empty (0 bytes): the upload or copy did not finish. Copy it again.")
    opener = _pillow_source if reader_for(path) == "pillow" else _av_source
    decoded = 0
    try:
        with opener(path, name) as source:
            indices = select_frames(name, source.frame_count, frame_cap, skip_first_frames, select_every_nth)
            height, width = target_size(source.height, source.width, multiple_of)
            chunk = min(CHUNK_FRAMES, len(indices))  # frames encoded at once
            held = len(indices) if vae is None or keep_frames else chunk  # frames in RAM at once
            check_memory(name, held, height, width)
            frames = torch.empty((held, height, width, 3), dtype=torch.float32)
            latents = []

            def encode(count):  # the last `count` frames decoded
                start = decoded - count if held > chunk else 0
                latents.append(encode_frames(vae, frames[start:start + count] / 255))
            for frame in source.read(indices):
                if frame.shape[:2] != (height, width):
                    shrink = height * width < frame.shape[0] * frame.shape[1]
                    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
                    frame = cv2.resize(frame, (width, height), interpolation=interpolation)
                frames[decoded % held].copy_(torch.from_numpy(frame))  # uint8 to float32 in place, no temporary
                decoded += 1
                if vae is not None and decoded == 1:
                    first = frames[:1] / 255
                if vae is not None and decoded % chunk == 0:
                    encode(chunk)
                if progress is not None:
                    progress(decoded, len(indices))
            fps = source.fps
            if vae is not None and decoded % chunk:
                encode(decoded % chunk)
    except VideoFileError:
        raise
    except (FFmpegError, cv2.error, *PILLOW_ERRORS) as error:  # the decoders' own, named after the file
        raise VideoFileError(f"'{name}' could not be decoded after {decoded} frames ({type(error).__name__}: "
                             f"{error}): the file is damaged or truncated.") from error
    if decoded < len(indices):  # the header promised more frames than the file holds
        if decoded == 0:
            raise VideoFileError(f"'{name}' has no frame that can be decoded: the file is damaged.")
        if frame_cap:
            raise VideoFileError(f"'{name}' holds only {decoded} decodable frames of the {len(indices)} asked for "
                                 f"(its header claims {source.frame_count}): set frame_cap to {decoded} or less.")
        frames = frames[:decoded]
    if vae is not None:
        return torch.cat(latents), frames[:decoded].div_(255) if keep_frames else first, fps / select_every_nth
    return frames.div_(255), None, fps / select_every_nth


def select_frames(name, frame_count, frame_cap, skip_first_frames, select_every_nth):
    """The frame indices to load; asking for more frames than there are is an error that gives the count."""
    if frame_count <= 0:
        raise VideoFileError(f"'{name}' holds no frames.")
    available = range(skip_first_frames, frame_count, max(1, select_every_nth))
    if len(available) == 0:
        raise VideoFileError(f"'{name}' has {frame_count} frames, and skip_first_frames={skip_first_frames} skips "
                             f"them all: skip fewer than {frame_count}.")
    if frame_cap > len(available):
        raise VideoFileError(f"'{name}' has {frame_count} frames ({len(available)} after skip_first_frames="
                             f"{skip_first_frames} and select_every_nth={select_every_nth}), fewer than frame_cap="
                             f"{frame_cap}. Set frame_cap to {len(available)} or less (0 loads them all).")
    return list(available[:frame_cap] if frame_cap else available)


def target_size(height, width, multiple_of):
    """The size frames are loaded at: the nearest multiple of `multiple_of` (the VAE needs 8), or as is."""
    if not multiple_of:
        return height, width
    return tuple(max(multiple_of, round(side / multiple_of) * multiple_of) for side in (height, width))


def check_memory(name, frame_count, height, width):
    needed = frame_count * height * width * 3 * 4  # float32 RGB, what IMAGE holds
    available = available_memory()
    if needed > available:
        raise VideoFileError(
            f"'{name}': {frame_count} frames of {width}x{height} need {_bytes(needed)} as IMAGE frames "
            f"({frame_count}x{height}x{width}x3x4 bytes), but only {_bytes(available)} of RAM is available. "
            "Load fewer frames (frame_cap, select_every_nth, skip_first_frames) or a smaller video.")


def _bytes(count):
    return f"{count / 2**30:.2f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


class _Source:
    """What load_video needs of a file: frame_count, height, width, fps, and read(indices)."""
    frame_count = height = width = 0
    fps = DEFAULT_FPS


@contextmanager
def _av_source(path, name):
    try:
        container = av.open(path)
    except FFmpegError as error:
        raise VideoFileError(f"'{name}' is not a video FFmpeg can read ({error}): the file is damaged, or not a "
                             "video.") from error
    with container:
        if not container.streams.video:
            raise VideoFileError(f"'{name}' holds no video stream (only {len(container.streams)} other streams).")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # decode on every core
        source = _Source()
        source.width, source.height = stream.codec_context.width, stream.codec_context.height
        rate = stream.average_rate or stream.guessed_rate
        source.fps = float(rate) if rate else DEFAULT_FPS
        # MP4 and MOV store the count; Matroska/WebM do not: count the packets (no decoding)
        source.frame_count = stream.frames
        if not source.frame_count:
            source.frame_count = sum(1 for packet in container.demux(stream) if packet.size)
            container.seek(0)

        def read(indices):
            wanted = set(indices)
            for index, frame in enumerate(container.decode(stream)):
                if index in wanted:  # frames skipped are decoded (codecs need them) but not converted
                    yield frame.to_ndarray(format="rgb24")
                if index == indices[-1]:
                    return
        source.read = read
        yield source


@contextmanager
def _pillow_source(path, name):
    try:
        image = Image.open(path)
    except PILLOW_ERRORS as error:  # UnidentifiedImageError is an OSError
        raise VideoFileError(f"'{name}' is not an animation Pillow can read ({type(error).__name__}: {error}): the "
                             "file is damaged, or not what its extension says.") from error
    try:
        source = _Source()
        source.frame_count = getattr(image, "n_frames", 1)
        source.width, source.height = image.size

        def read(indices):
            wanted, total_ms = set(indices), 0
            for index in range(indices[-1] + 1):
                image.seek(index)
                total_ms += image.info.get("duration") or 0
                if index in wanted:
                    yield np.array(image.convert("RGB"))  # writable, as torch.from_numpy wants
            # the frame rate these frames were shown at (GIF's 1/100 s delays alternate, e.g. 12, 13)
            source.fps = 1000 * (indices[-1] + 1) / total_ms if total_ms else DEFAULT_FPS
        source.read = read
        yield source
    finally:
        image.close()


def read_frames(path):
    """Every frame of a video file as uint8 RGB [H, W, 3], one at a time, at the file's own size: for
    measuring a video (quality reports) without holding it whole."""
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise VideoFileError(f"'{name}' does not exist (looked for {path}).")
    opener = _pillow_source if reader_for(path) == "pillow" else _av_source
    decoded = 0
    try:
        with opener(path, name) as source:
            for frame in source.read(select_frames(name, source.frame_count, 0, 0, 1)):
                yield frame
                decoded += 1
    except VideoFileError:
        raise
    except (FFmpegError, *PILLOW_ERRORS) as error:
        raise VideoFileError(f"'{name}' could not be decoded after {decoded} frames ({type(error).__name__}: "
                             f"{error}): the file is damaged or truncated.") from error
