"""Animated WebP, GIF and APNG, written one frame at a time.

Pillow's multi-frame savers gather every frame before writing (a second copy of the video), so
Pillow encodes each frame alone and the container is assembled here: the three formats are
simple lists of chunks, and only one frame is ever held.
"""
import io
import struct
import zlib

from PIL import GifImagePlugin, Image, features

from .errors import VideoFormatError
from .frames import durations


class _Writer:
    """Opens the file at once; close() finishes it, abort() leaves it unfinished (the caller deletes it)."""

    def __init__(self, path, frame_count, fps, unit):
        self.file, self.written = open(path, "wb"), 0
        self.delays = durations(frame_count, fps, unit)

    def abort(self):
        self.file.close()


class WebPWriter(_Writer):
    """Animated WebP: RIFF with VP8X, ANIM, one ANMF per frame, then EXIF
    (https://developers.google.com/speed/webp/docs/riff_container)."""

    def __init__(self, path, width, height, frame_count, fps, loop_count, quality=90, exif=None):
        if not features.check("webp"):
            raise VideoFormatError("this Pillow was built without WebP support: pick gif, apng, webm or mp4.")
        if max(width, height) > 16383:
            raise VideoFormatError(f"WebP frames are at most 16383 px a side; these are {width}x{height}: "
                                   "pick webm or mp4, or scale the frames down.")
        super().__init__(path, frame_count, fps, 1000)
        self.size, self.quality, self.exif = _u24(width - 1) + _u24(height - 1), quality, exif
        self.file.write(b"RIFF\0\0\0\0WEBP")  # the RIFF size is filled in by close()
        self._chunk(b"VP8X", bytes([0x02 | (0x08 if exif else 0), 0, 0, 0]) + self.size)  # animation, EXIF
        # white opaque background (libwebp's default); loop count 0 = forever
        self._chunk(b"ANIM", b"\xff\xff\xff\xff" + struct.pack("<H", min(loop_count, 0xFFFF)))

    def write(self, frame):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, "WEBP", quality=self.quality, method=4)
        bitstream = buffer.getvalue()[12:]  # a still WebP is RIFF + its VP8/VP8L chunk(s): keep the chunks
        if bitstream[:4] == b"VP8X":  # an extended still (some Pillow builds mux every file): drop its header
            bitstream = bitstream[18:]
        timing = _u24(min(self.delays[self.written], 0xFFFFFF)) + b"\x02"  # duration; replace, don't blend
        self._chunk(b"ANMF", _u24(0) + _u24(0) + self.size + timing + bitstream)
        self.written += 1

    def close(self):
        if self.exif:
            self._chunk(b"EXIF", self.exif)
        size = self.file.tell() - 8
        self.file.seek(4)
        self.file.write(struct.pack("<I", size))
        self.file.close()

    def _chunk(self, kind, payload):
        self.file.write(kind + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) % 2))


class GifWriter(_Writer):
    """GIF89a, each frame with its own 256-colour palette, delays in 1/100 s
    (https://www.w3.org/Graphics/GIF/spec-gif89a.txt; NETSCAPE2.0 extension for the loop count)."""

    def __init__(self, path, width, height, frame_count, fps, loop_count):
        if max(width, height) > 0xFFFF:
            raise VideoFormatError(f"GIF frames are at most 65535 px a side; these are {width}x{height}.")
        super().__init__(path, frame_count, fps, 100)
        self.file.write(b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0))  # no global palette
        # Browsers read the NETSCAPE2.0 count as repeats after the first play (0: forever), and
        # play a GIF without it once: so N plays are N - 1 repeats.
        if loop_count != 1:
            repeats = 0 if loop_count == 0 else min(loop_count - 1, 0xFFFF)
            self.file.write(b"\x21\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", repeats) + b"\0")

    def write(self, frame):
        # Octree finds the frame's palette in milliseconds (median cut takes 70x longer for no
        # better result); Floyd-Steinberg dithering then hides the banding 256 colours leave.
        image = Image.fromarray(frame)
        palette = image.quantize(256, method=Image.Quantize.FASTOCTREE)
        image = image.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
        # Pillow's frame writer: graphic control (delay, disposal 1: leave in place), descriptor,
        # local palette, LZW data. It takes the delay in ms and stores ms // 10.
        delay = 10 * min(self.delays[self.written], 0xFFFF)
        self.file.write(b"".join(GifImagePlugin.getdata(image, duration=delay, disposal=1, include_color_table=True)))
        self.written += 1

    def close(self):
        self.file.write(b"\x3b")
        self.file.close()


class ApngWriter(_Writer):
    """Animated PNG, lossless, with the workflow in tEXt chunks: acTL, then fcTL + IDAT/fdAT per
    frame (https://wiki.mozilla.org/APNG_Specification)."""

    def __init__(self, path, width, height, frame_count, fps, loop_count, text=None):
        super().__init__(path, frame_count, fps, 1000)
        self.header = (frame_count, loop_count, text or {})
        self.size, self.sequence = struct.pack(">II", width, height), 0

    def write(self, frame):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, "PNG", compress_level=4)
        chunks = list(_png_chunks(buffer.getvalue()))
        if self.written == 0:
            frame_count, loop_count, text = self.header
            self.file.write(b"\x89PNG\r\n\x1a\n")
            self._chunk(b"IHDR", chunks[0][1])
            self._chunk(b"acTL", struct.pack(">II", frame_count, min(loop_count, 0x7FFFFFFF)))
            for keyword, value in text.items():  # keywords are 1-79 Latin-1 characters; the JSON is ASCII
                self._chunk(b"tEXt", keyword.encode("latin-1", "replace")[:79] + b"\0" + value.encode("latin-1"))
        # offset 0, 0; delay in ms as a fraction; dispose none; blend source (replace)
        self._chunk(b"fcTL", struct.pack(">I", self.sequence) + self.size
                    + struct.pack(">IIHHBB", 0, 0, self.delays[self.written], 1000, 0, 0))
        self.sequence += 1
        for kind, data in chunks:
            if kind == b"IDAT" and self.written == 0:  # the first frame is also what still-PNG viewers show
                self._chunk(b"IDAT", data)
            elif kind == b"IDAT":
                self._chunk(b"fdAT", struct.pack(">I", self.sequence) + data)
                self.sequence += 1
        self.written += 1

    def close(self):
        self._chunk(b"IEND", b"")
        self.file.close()

    def _chunk(self, kind, data):
        self.file.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data)))


def _u24(value):
    return struct.pack("<I", value)[:3]


def _png_chunks(data):
    pos = 8
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        yield kind, data[pos + 8:pos + 8 + size]
        pos += 12 + size
