"""Animated WebP, GIF and APNG, written one frame at a time.

Pillow's own multi-frame savers first gather every frame as a Pillow image (a second copy of the
video), so instead Pillow encodes each frame alone and the animation container is assembled here
from those single-frame files: the formats are simple chunk lists, and only one frame is ever held.
"""
import io
import struct
import zlib

from PIL import Image, features

from .frames import durations


class VideoFormatError(ValueError):
    """This format cannot be written here (a missing codec); the message says which to pick instead."""


class _Writer:
    """Common life cycle: the file is opened at once and finished by close(); abort() leaves it unfinished."""

    def __init__(self, path, width, height, frame_count, fps, loop_count):
        self.path, self.width, self.height = path, width, height
        self.frame_count, self.loop_count, self.written = frame_count, loop_count, 0
        self.file = open(path, "wb")

    def abort(self):
        self.file.close()


class WebPWriter(_Writer):
    """Animated WebP (RIFF: VP8X, ANIM, one ANMF per frame, EXIF); every browser plays it.

    Container layout: https://developers.google.com/speed/webp/docs/riff_container
    """

    def __init__(self, path, width, height, frame_count, fps, loop_count, quality=90, exif=None, method=4):
        if not features.check("webp"):
            raise VideoFormatError("this Pillow was built without WebP support: pick gif, apng or webm.")
        if max(width, height) > 16383:
            raise VideoFormatError(f"WebP frames are at most 16383 px a side; these are {width}x{height}: "
                                   "pick webm or mp4, or scale the frames down.")
        super().__init__(path, width, height, frame_count, fps, loop_count)
        self.quality, self.method, self.exif = quality, method, exif
        self.durations = durations(frame_count, fps, 1000)
        flags = 0x02 | (0x08 if exif else 0)  # animation, EXIF present
        self.file.write(b"RIFF\0\0\0\0WEBP")  # the RIFF size is filled in by close()
        self._chunk(b"VP8X", bytes([flags, 0, 0, 0]) + _u24(width - 1) + _u24(height - 1))
        # white opaque background (libwebp's default); loop count 0 = forever
        self._chunk(b"ANIM", b"\xff\xff\xff\xff" + struct.pack("<H", min(loop_count, 0xFFFF)))

    def write(self, frame):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, "WEBP", quality=self.quality, method=self.method)
        bitstream = b"".join(_riff_chunks(buffer.getvalue(), skip=(b"VP8X",)))
        header = _u24(0) + _u24(0) + _u24(self.width - 1) + _u24(self.height - 1)
        duration = min(self.durations[self.written], 0xFFFFFF)
        self._chunk(b"ANMF", header + _u24(duration) + b"\x02" + bitstream)  # 0x02: replace, don't blend
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
    """GIF89a, each frame with its own 256-colour palette (a local colour table), delays in 1/100 s.

    Layout: https://www.w3.org/Graphics/GIF/spec-gif89a.txt (sections 18-23, and the NETSCAPE2.0
    application extension for the loop count).
    """

    def __init__(self, path, width, height, frame_count, fps, loop_count):
        if max(width, height) > 0xFFFF:
            raise VideoFormatError(f"GIF frames are at most 65535 px a side; these are {width}x{height}.")
        super().__init__(path, width, height, frame_count, fps, loop_count)
        self.delays = durations(frame_count, fps, 100)
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
        buffer = io.BytesIO()
        image.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(buffer, "GIF", interlace=False)
        left, top, width, height, flags, palette, image_data = _gif_image(buffer.getvalue())
        delay = min(self.delays[self.written], 0xFFFF)
        # graphic control: disposal 1 (leave the frame in place), the delay, no transparency
        self.file.write(b"\x21\xf9\x04\x04" + struct.pack("<H", delay) + b"\0\0")
        self.file.write(b"\x2c" + struct.pack("<HHHHB", left, top, width, height, 0x80 | flags))
        self.file.write(palette + image_data)
        self.written += 1

    def close(self):
        self.file.write(b"\x3b")
        self.file.close()


class ApngWriter(_Writer):
    """Animated PNG: lossless; every current browser plays it, and tEXt chunks carry the workflow.

    Layout: https://wiki.mozilla.org/APNG_Specification (acTL, then fcTL + IDAT/fdAT per frame).
    """

    def __init__(self, path, width, height, frame_count, fps, loop_count, text=None, compress_level=4):
        super().__init__(path, width, height, frame_count, fps, loop_count)
        self.delays, self.text, self.compress_level = durations(frame_count, fps, 1000), text or {}, compress_level
        self.sequence = 0

    def write(self, frame):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, "PNG", compress_level=self.compress_level)
        chunks = list(_png_chunks(buffer.getvalue()))
        if self.written == 0:
            self.file.write(b"\x89PNG\r\n\x1a\n")
            self._chunk(b"IHDR", next(data for kind, data in chunks if kind == b"IHDR"))
            self._chunk(b"acTL", struct.pack(">II", self.frame_count, min(self.loop_count, 0x7FFFFFFF)))
            for keyword, value in self.text.items():  # keywords are 1-79 Latin-1 characters; the JSON is ASCII
                self._chunk(b"tEXt", keyword.encode("latin-1", "replace")[:79] + b"\0" + value.encode("latin-1"))
        # 0, 0 offset; delay in ms as a fraction; dispose none; blend source (replace)
        control = struct.pack(">IIIIIHHBB", self.sequence, self.width, self.height, 0, 0,
                              self.delays[self.written], 1000, 0, 0)
        self._chunk(b"fcTL", control)
        self.sequence += 1
        for kind, data in chunks:
            if kind != b"IDAT":
                continue
            if self.written == 0:  # the first frame is also the still image non-APNG viewers show
                self._chunk(b"IDAT", data)
            else:
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


def _riff_chunks(data, skip=()):
    """The chunks (header included) of a RIFF/WEBP file, padding kept."""
    pos = 12
    while pos + 8 <= len(data):
        kind, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        end = pos + 8 + size + size % 2
        if kind not in skip:
            yield data[pos:end]
        pos = end


def _png_chunks(data):
    pos = 8
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        yield kind, data[pos + 8:pos + 8 + size]
        pos += 12 + size


def _gif_image(data):
    """(left, top, width, height, flags, palette, LZW data) of a one-frame GIF; flags keep the
    interlace bit and the palette size, for an image descriptor with that palette as a local one."""
    packed = data[10]
    pos = 13
    palette_bits, palette = packed & 7, b""
    if packed & 0x80:  # global colour table
        palette = data[pos:pos + (3 << (palette_bits + 1))]
        pos += len(palette)
    while data[pos] == 0x21:  # extensions: label, then data sub-blocks up to a zero-length one
        pos += 2
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    if data[pos] != 0x2C:
        raise ValueError("Pillow wrote a GIF without an image descriptor")
    left, top, width, height, image_packed = struct.unpack("<HHHHB", data[pos + 1:pos + 10])
    pos += 10
    if image_packed & 0x80:  # local colour table
        palette_bits = image_packed & 7
        palette = data[pos:pos + (3 << (palette_bits + 1))]
        pos += len(palette)
    start = pos
    pos += 1  # LZW minimum code size
    while data[pos]:
        pos += data[pos] + 1
    return left, top, width, height, (image_packed & 0x40) | palette_bits, palette, data[start:pos + 1]
