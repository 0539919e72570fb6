"""The one table of video formats: what Save Video writes and what Load Video lists and reads.

A Save -> Load round trip works for every format because both nodes read this table: each
saved extension is listed by Load Video, and decoded by the reader named here.
"""
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class VideoFormat:
    extension: str
    reader: str  # "pillow" (animated images) or "av" (FFmpeg containers, through PyAV)
    workflow: str  # where the prompt and workflow go
    audio: str = None  # the sound encoder (PyAV), None: the format holds no sound


FORMATS = {
    "webp": VideoFormat(".webp", "pillow", "embedded (EXIF, as core Save Animated WEBP)"),
    "webm": VideoFormat(".webm", "av", "embedded (Matroska tags)", audio="libopus"),
    # APNG keeps .png: browsers and the ComfyUI frontend read the workflow from .png files only
    "apng": VideoFormat(".png", "pillow", "embedded (PNG text chunks)"),
    "gif": VideoFormat(".gif", "pillow", "a .json file beside it"),
    "mp4": VideoFormat(".mp4", "av", "embedded (QuickTime metadata)", audio="aac"),
}
# Containers other programs write that Load Video reads as well.
OTHER_READERS = {".mkv": "av", ".mov": "av", ".avi": "av", ".m4v": "av", ".apng": "pillow"}
READERS = {**{f.extension: f.reader for f in FORMATS.values()}, **OTHER_READERS}


def reader_for(path):
    """"av" or "pillow": which library decodes this file (by its extension)."""
    return READERS.get(os.path.splitext(path)[1].lower(), "av")


def is_loadable(path):
    """Whether Load Video lists the file: a video extension, or a .png that is animated (an APNG);
    still PNGs (most of an input folder) stay out of the list."""
    extension = os.path.splitext(path)[1].lower()
    if extension != ".png":
        return extension in READERS
    return _png_is_animated(path)


def _png_is_animated(path):
    """An APNG has an acTL chunk before its first IDAT (APNG specification); walk the chunk headers."""
    try:
        with open(path, "rb") as file:
            if file.read(8) != b"\x89PNG\r\n\x1a\n":
                return False
            while header := file.read(8):
                if len(header) < 8 or header[4:] == b"IDAT":
                    return False
                if header[4:] == b"acTL":
                    return True
                file.seek(int.from_bytes(header[:4], "big") + 4, os.SEEK_CUR)  # data and CRC
    except OSError:
        return False
    return False
