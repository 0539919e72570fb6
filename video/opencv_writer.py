"""WebM (VP9) and MP4 (MPEG-4 Part 2, "mp4v") through OpenCV's bundled FFmpeg.

OpenCV's PyPI wheels carry FFmpeg with libvpx but no H.264 encoder, so the MP4 is mp4v: editors
and players such as VLC read it, browsers do not. Their encoder settings are OpenCV's (no quality
control), and 4:2:0 chroma needs even sizes, so an odd width or height loses its last pixel.
"""
import logging

import cv2

from .image_containers import VideoFormatError

log = logging.getLogger(__name__)
FOURCC = {"vp9": "VP90", "mp4v": "mp4v"}


class OpenCVWriter:
    def __init__(self, path, width, height, fps, codec):
        self.path, self.written = path, 0
        self.width, self.height = width - width % 2, height - height % 2
        if (self.width, self.height) != (width, height):
            log.warning("%s: %dx%d frames are written as %dx%d (the codec needs even sizes)",
                        codec, width, height, self.width, self.height)
        if self.width < 2 or self.height < 2:
            raise VideoFormatError(f"{width}x{height} frames are too small for {codec}: pick webp, gif or apng.")
        fourcc = cv2.VideoWriter_fourcc(*FOURCC[codec])
        self.writer = cv2.VideoWriter(path, cv2.CAP_FFMPEG, fourcc, float(fps), (self.width, self.height))
        if not self.writer.isOpened():
            raise VideoFormatError(f"this OpenCV ({cv2.__version__}) cannot write {codec} video (its FFmpeg lacks "
                                   "the encoder): pick webp, gif or apng, or install the opencv-python wheel "
                                   "from PyPI.")

    def write(self, frame):
        frame = frame[:self.height, :self.width]
        self.writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.written += 1

    def close(self):
        self.writer.release()

    abort = close
