"""WebM (VP9) and MP4 (H.264) through PyAV, the FFmpeg binding ComfyUI's own video nodes use.

The prompt and workflow are container metadata: FFmpeg's Matroska muxer writes them as SimpleTags
(named PROMPT, WORKFLOW) before the first cluster, where the frontend reads a WebM's first 2 MiB;
the MP4 muxer writes them as QuickTime 'mdta' keys with `use_metadata_tags`, and `faststart` moves
that header to the front of the file, inside the first 64 MiB the newest frontends read (and so
browsers start playing before the download ends). 4:2:0 chroma needs even sizes, so an odd width
or height loses its last pixel. A sound track (audio.py) goes beside the frames: after each frame,
the sound up to that frame's end.
"""
import contextlib
import logging
from fractions import Fraction

import av
from av.error import FFmpegError
import numpy as np

from .audio import AudioTrack
from .errors import VideoFormatError
from .formats import FORMATS

log = logging.getLogger(__name__)

# encoder, container, encoder options. crf 19 is near-transparent H.264 (VideoHelperSuite's default;
# preset veryfast: files 5% larger than preset fast's here, in less time). VP9's crf scale is
# longer (0-63). cpu-used 4 with row threads is libvpx's advice for speed at good quality: its
# default (0) is several times slower for a barely visible gain.
CODECS = {
    "webm": ("libvpx-vp9", "webm", {"crf": "30", "b": "0", "cpu-used": "4", "row-mt": "1"}),
    "mp4": ("libx264", "mp4", {"crf": "19", "preset": "veryfast"}),
}


class AVWriter:
    def __init__(self, path, format_name, width, height, fps, texts, audio=None, frame_count=0):
        encoder, container_format, options = CODECS[format_name]
        try:
            av.codec.Codec(encoder, "w")
        except ValueError as error:  # UnknownCodecError: a PyAV built without it
            raise VideoFormatError(
                f"this PyAV ({av.__version__}) has no {encoder} encoder, which {format_name} needs: install the PyPI "
                "wheel (`pip install --force-reinstall av`, it carries libx264 and libvpx), or pick webp, gif or "
                "apng.") from error
        self.width, self.height = width - width % 2, height - height % 2
        if self.width < 2 or self.height < 2:
            raise VideoFormatError(f"{width}x{height} frames are too small for {format_name}: pick webp, gif or apng.")
        if (self.width, self.height) != (width, height):
            log.warning("%s: %dx%d frames are written as %dx%d (4:2:0 video needs even sizes)",
                        format_name, width, height, self.width, self.height)
        mux_options = {"movflags": "use_metadata_tags+faststart"} if container_format == "mp4" else {}
        self.container = av.open(path, "w", format=container_format, options=mux_options)
        try:
            for key, text in texts.items():
                self.container.metadata[key] = text
            self.rate = Fraction(round(fps * 1000), 1000)
            self.stream = self.container.add_stream(encoder, rate=self.rate)
            self.stream.width, self.stream.height, self.stream.pix_fmt = self.width, self.height, "yuv420p"
            self.stream.options = options
            self.frames = 0
            self.sound = None if audio is None else AudioTrack(self.container, FORMATS[format_name].audio, audio,
                                                               frame_count / self.rate)
        except BaseException:
            self.container.close()
            raise

    def write(self, frame):
        if frame.shape[:2] != (self.height, self.width):
            frame = np.ascontiguousarray(frame[:self.height, :self.width])
        picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
        self.container.mux(self.stream.encode(picture))  # the encoder converts to yuv420p
        self.frames += 1
        if self.sound is not None:
            self.sound.write_until(self.frames / self.rate)

    def close(self):
        if self.sound is not None:
            self.sound.close()
        self.container.mux(self.stream.encode(None))  # flush the frames the encoder holds back
        self.container.close()

    def abort(self):
        # the save already failed (or was cancelled) and the file is deleted next: an encoder error while
        # closing must not hide the first one
        with contextlib.suppress(FFmpegError):
            self.container.close()
