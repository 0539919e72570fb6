"""The prompt and workflow, written where the ComfyUI frontend looks for them on drag-and-drop.

What the frontend reads (comfyui-frontend-package, src/scripts/metadata/ and pnginfo.ts):
- PNG/APNG: tEXt chunks whose keyword is the key ("prompt", "workflow") and text the JSON;
- WebP: the first IFD of the EXIF chunk, ASCII values "key:JSON" (core SaveAnimatedWEBP's tags:
  0x0110 for the prompt, then 0x010F downwards for the extra keys);
- MP4/MOV: QuickTime metadata in moov/udta/meta: an 'mdta' handler, a 'keys' box naming the
  keys, an 'ilst' whose items are numbered after them and hold 'data' boxes of UTF-8 JSON
  (what ffmpeg writes with -movflags use_metadata_tags);
- WebM: Matroska SimpleTags named PROMPT and WORKFLOW (webm_tags.py);
- GIF: nothing, so the workflow goes into a .json file beside it, which the frontend also loads.
"""
import json
import os
import struct

from PIL import Image

WEBP_PROMPT_TAG = 0x0110  # EXIF "Model"
WEBP_FIRST_EXTRA_TAG = 0x010F  # EXIF "Make", then downwards


class EmbedError(ValueError):
    """The file's layout is not one this module can add metadata to (a sidecar is written instead)."""


def json_texts(metadata):
    """{key: JSON text} of the metadata, ASCII only (non-ASCII escaped) so every container takes it."""
    return {key: json.dumps(value) for key, value in (metadata or {}).items() if value is not None}


def webp_exif(texts):
    """EXIF bytes for a WebP EXIF chunk, laid out like ComfyUI's SaveAnimatedWEBP."""
    if not texts:
        return None
    exif = Image.Exif()
    extra_tag = WEBP_FIRST_EXTRA_TAG
    for key, text in texts.items():
        if key == "prompt":
            exif[WEBP_PROMPT_TAG] = f"prompt:{text}"
        else:
            exif[extra_tag] = f"{key}:{text}"
            extra_tag -= 1
    return exif.tobytes()


def sidecar_path(video_path):
    return os.path.splitext(video_path)[0] + ".json"


def write_sidecar(video_path, metadata):
    """The workflow (or, without one, the API prompt) as a .json file the frontend loads when dropped."""
    document = (metadata or {}).get("workflow") or (metadata or {}).get("prompt")
    if document is None:
        return None
    path = sidecar_path(video_path)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(document, file)
    return path


# --- MP4 ---------------------------------------------------------------------------------------

def _box(kind, payload):
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _boxes(data, start, end):
    """(type, start, end) of the boxes in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
        elif size == 0:
            size = end - pos
        if size < 8 or pos + size > end:
            raise EmbedError(f"a malformed '{kind.decode('latin-1')}' box at byte {pos}")
        yield kind, pos, pos + size
        pos += size


def mp4_metadata_box(texts):
    """moov/udta/meta in the QuickTime 'mdta' form: keys numbered from 1, one UTF-8 item each."""
    keys = [key.encode("utf-8") for key in texts]
    handler = _box(b"hdlr", b"\0" * 8 + b"mdta" + b"\0" * 13)  # version/flags, pre-defined, type, reserved, name
    key_box = _box(b"keys", b"\0" * 4 + struct.pack(">I", len(keys))
                   + b"".join(struct.pack(">I", 8 + len(k)) + b"mdta" + k for k in keys))
    items = b"".join(_box(struct.pack(">I", i), _box(b"data", struct.pack(">II", 1, 0) + text.encode("utf-8")))
                     for i, text in enumerate(texts.values(), start=1))  # data type 1: UTF-8
    return _box(b"meta", b"\0" * 4 + handler + key_box + _box(b"ilst", items))


def embed_mp4(path, texts):
    """Put the metadata into the moov box of an MP4 that ends with it (how ffmpeg, so OpenCV, writes
    one). Growing the last box moves no sample data, so the chunk offsets stay right."""
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        top = [(kind, start, end) for kind, start, end in _boxes(_Header(file), 0, size)]
        if not top or top[-1][0] != b"moov":
            raise EmbedError("the moov box is not the last one in the file")
        moov_start = top[-1][1]
        file.seek(moov_start)
        moov = file.read()
    header = 16 if moov[:4] == b"\0\0\0\1" else 8  # a 64-bit size follows the type
    children, udta_children = [], []
    for kind, start, end in _boxes(moov, header, len(moov)):
        if kind == b"udta":  # keep what it holds except an older metadata box
            udta_children += [moov[s:e] for k, s, e in _boxes(moov, start + 8, end) if k != b"meta"]
        else:
            children.append(moov[start:end])
    udta = _box(b"udta", mp4_metadata_box(texts) + b"".join(udta_children))
    with open(path, "r+b") as file:
        file.seek(moov_start)
        file.write(_box(b"moov", b"".join(children) + udta))
        file.truncate()


class _Header:
    """Lets _boxes walk the top level of a file without reading the sample data into memory."""

    def __init__(self, file):
        self.file = file

    def __getitem__(self, span):
        self.file.seek(span.start)
        return self.file.read(span.stop - span.start)
