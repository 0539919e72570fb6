"""IMAGE frames to a video file, one frame at a time, with the workflow where the frontend finds it.

The file is written under a short hidden temporary name in the same folder and renamed when
complete, so a failed or cancelled save leaves no half-written video behind, and any name the
output folder takes for the video fits the temporary one too.
"""
import os
import uuid
from dataclasses import dataclass

from .av_writer import AVWriter
from .errors import OutputPathError, VideoFormatError
from .formats import FORMATS
from .frames import frame_uint8, play_order
from .image_containers import ApngWriter, GifWriter, WebPWriter
from .metadata import json_texts, webp_exif, write_sidecar


@dataclass
class SavedVideo:
    path: str
    frame_count: int
    sidecar: str = None  # the .json holding the workflow, for a container that cannot


def check_prefix(prefix, output_dir):
    """Refuse a prefix that is empty, holds a NUL, is absolute, or climbs out of the output folder."""
    if not prefix or not prefix.strip():
        raise OutputPathError("filename_prefix is empty: give a name such as 'AnimateLCM/video'.")
    if "\0" in prefix:
        raise OutputPathError(f"filename_prefix {prefix!r} contains a NUL character, which no file name can hold: "
                              "remove it.")
    if os.path.isabs(prefix) or os.path.splitdrive(prefix)[0] or prefix.startswith(("/", "\\")):
        raise OutputPathError(f"filename_prefix '{prefix}' is an absolute path; files can only be saved inside "
                              "the output folder: use a relative prefix such as 'AnimateLCM/video'.")
    root = os.path.abspath(output_dir)
    target = os.path.abspath(os.path.join(root, prefix.replace("\\", "/")))
    if target == root or os.path.commonpath([root, target]) != root:
        raise OutputPathError(f"filename_prefix '{prefix}' points outside the output folder ({root}): remove the "
                              "'..' parts, e.g. 'AnimateLCM/video'.")


def save_video(images, path, format_name, fps, loop_count=0, pingpong=False, quality=90, metadata=None,
               progress=None, audio=None):
    """Write IMAGE frames ([N, H, W, C] float 0-1) to `path` in FORMATS[format_name].

    metadata: {"prompt": ..., "workflow": ...} to embed (None: none). progress(done, total) is
    called after each frame. audio: an AUDIO (checked by audio.check_audio) laid under the video from
    its first frame, cut or padded with silence to the frames written (pingpong: to the way back too);
    only for formats whose FORMATS entry names a sound encoder.
    """
    if images.shape[0] == 0:
        raise VideoFormatError("there are no frames to save (the IMAGE batch is empty).")
    if format_name not in FORMATS:
        raise VideoFormatError(f"unknown video format '{format_name}': pick one of {', '.join(FORMATS)}.")
    if audio is not None and FORMATS[format_name].audio is None:
        raise VideoFormatError(f"{format_name} holds no sound: pick mp4 or webm for a video with audio.")
    order = play_order(images.shape[0], pingpong)
    texts = json_texts(metadata)
    # short, so any name that fits the folder fits this one too (issue 15: long prefixes)
    partial = os.path.join(os.path.dirname(path), f".alcm-{uuid.uuid4().hex[:12]}{FORMATS[format_name].extension}")
    writer = None
    try:
        writer = _open(format_name, partial, images.shape[2], images.shape[1], len(order), fps, loop_count,
                       quality, texts, audio)
        for done, index in enumerate(order, start=1):
            writer.write(frame_uint8(images, index))  # the only converted copy: one frame
            if progress is not None:
                progress(done, len(order))
        writer.close()
        os.replace(partial, path)
    except BaseException:  # cancelled too: leave nothing half-written
        if writer is not None:
            writer.abort()
        if os.path.exists(partial):
            os.remove(partial)
        raise
    sidecar = write_sidecar(path, metadata) if texts and format_name == "gif" else None
    return SavedVideo(path, len(order), sidecar)


def _open(format_name, path, width, height, frame_count, fps, loop_count, quality, texts, audio):
    if format_name == "webp":
        return WebPWriter(path, width, height, frame_count, fps, loop_count, quality, exif=webp_exif(texts))
    if format_name == "gif":
        return GifWriter(path, width, height, frame_count, fps, loop_count)
    if format_name == "apng":
        return ApngWriter(path, width, height, frame_count, fps, loop_count, text=texts)
    return AVWriter(path, format_name, width, height, fps, texts, audio, frame_count)
