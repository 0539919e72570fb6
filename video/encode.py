"""IMAGE frames to a video file, one frame at a time, with the workflow where the frontend finds it.

The file is written under a hidden temporary name and renamed when complete, so a failed or
cancelled save leaves no half-written video behind.
"""
import logging
import os
from dataclasses import dataclass

from .frames import frame_uint8, play_order
from .image_containers import ApngWriter, GifWriter, VideoFormatError, WebPWriter
from .metadata import EmbedError, embed_mp4, json_texts, webp_exif, write_sidecar
from .opencv_writer import OpenCVWriter
from .webm_tags import embed_webm

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoFormat:
    extension: str
    plays_in_browsers: bool  # and in the ComfyUI frontend's node preview
    workflow: str  # where the prompt and workflow go


FORMATS = {
    "webp": VideoFormat(".webp", True, "embedded (EXIF)"),
    "webm": VideoFormat(".webm", True, "embedded (Matroska tags)"),
    "apng": VideoFormat(".png", True, "embedded (PNG text chunks)"),
    "gif": VideoFormat(".gif", True, "a .json file beside it"),
    "mp4": VideoFormat(".mp4", False, "embedded (QuickTime metadata)"),
}
PREVIEW_QUALITY = 80


class OutputPathError(ValueError):
    """The filename prefix would put the file outside the output folder."""


@dataclass
class SavedVideo:
    path: str
    frame_count: int
    sidecar: str = None  # the .json holding the workflow, where the container could not
    preview: str = None  # the animated WebP shown in the node, for formats the frontend cannot play


def check_prefix(prefix, output_dir):
    """Refuse a prefix that is empty, absolute, or climbs out of the output folder ("../x", "a/../../b")."""
    if not prefix or not prefix.strip():
        raise OutputPathError("the filename prefix is empty: give a name such as 'AnimateLCM/video'.")
    if os.path.isabs(prefix) or os.path.splitdrive(prefix)[0] or prefix.startswith(("/", "\\")):
        raise OutputPathError(f"the filename prefix '{prefix}' is an absolute path; files can only be saved inside "
                              "the output folder: use a relative prefix such as 'AnimateLCM/video'.")
    root = os.path.abspath(output_dir)
    target = os.path.abspath(os.path.join(root, prefix.replace("\\", "/")))
    if target == root or os.path.commonpath([root, target]) != root:
        raise OutputPathError(f"the filename prefix '{prefix}' points outside the output folder ({root}): remove the "
                              "'..' parts, e.g. 'AnimateLCM/video'.")


def save_video(images, path, format_name, fps, loop_count=0, pingpong=False, quality=90, metadata=None,
               preview_path=None, progress=None):
    """Write IMAGE frames ([N, H, W, C] float 0-1) to `path` in FORMATS[format_name].

    metadata: {"prompt": ..., "workflow": ...} to embed (None: none). preview_path: also write an
    animated WebP there for the node preview. progress(done, total) is called after each frame.
    """
    if images.shape[0] == 0:
        raise ValueError("there are no frames to save (the IMAGE batch is empty).")
    if format_name not in FORMATS:
        raise VideoFormatError(f"unknown video format '{format_name}': pick one of {', '.join(FORMATS)}.")
    video_format = FORMATS[format_name]
    height, width = images.shape[1:3]
    order = play_order(images.shape[0], pingpong)
    texts = json_texts(metadata)
    folder, name = os.path.split(path)
    partial = os.path.join(folder, f".{name}.partial{video_format.extension}")  # OpenCV goes by the extension
    writers = []
    try:
        writers.append(_open(format_name, partial, width, height, len(order), fps, loop_count, quality, texts))
        if preview_path:
            writers.append(WebPWriter(preview_path, width, height, len(order), fps, loop_count, PREVIEW_QUALITY,
                                      method=0))
        for done, index in enumerate(order, start=1):
            frame = frame_uint8(images, index)  # the only converted copy: one frame
            for writer in writers:
                writer.write(frame)
            if progress is not None:
                progress(done, len(order))
        for writer in writers:
            writer.close()
        sidecar = _finish(format_name, partial, path, texts, metadata)
    except BaseException:  # cancelled too: leave nothing half-written
        for writer in writers:
            writer.abort()
        for leftover in (partial, partial + ".tags", preview_path):
            if leftover and os.path.exists(leftover):
                os.remove(leftover)
        raise
    return SavedVideo(path, len(order), sidecar, preview_path)


def _open(format_name, path, width, height, frame_count, fps, loop_count, quality, texts):
    if format_name == "webp":
        return WebPWriter(path, width, height, frame_count, fps, loop_count, quality, exif=webp_exif(texts))
    if format_name == "gif":
        return GifWriter(path, width, height, frame_count, fps, loop_count)
    if format_name == "apng":
        return ApngWriter(path, width, height, frame_count, fps, loop_count, text=texts)
    return OpenCVWriter(path, width, height, fps, "vp9" if format_name == "webm" else "mp4v")


def _finish(format_name, partial, path, texts, metadata):
    """Add the metadata the writer could not, move the file into place; returns the sidecar's path or None."""
    embedded = format_name in ("webp", "apng")  # their writers embedded it
    if texts and format_name in ("webm", "mp4"):
        try:
            if format_name == "webm":
                embed_webm(partial, partial + ".tags", texts)
                os.replace(partial + ".tags", partial)
            else:
                embed_mp4(partial, texts)
            embedded = True
        except EmbedError as error:  # a layout another FFmpeg wrote: keep the video, put the workflow beside it
            log.warning("could not embed the workflow in %s (%s); it goes into a .json file beside it", path, error)
    os.replace(partial, path)
    return write_sidecar(path, metadata) if texts and not embedded else None
