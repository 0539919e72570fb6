"""Matroska/WebM tags: copy a WebM with SimpleTags PROMPT and WORKFLOW added before its clusters.

The ComfyUI frontend reads only the first 2 MiB of a dropped WebM (src/scripts/metadata/ebml.ts),
so the tags go where ffmpeg puts its own: before the first Cluster. That moves the clusters, and
the SeekHead and Cues store positions of level-1 elements (relative to the Segment's data), so
both are rewritten with every position as an 8-byte integer: their sizes no longer depend on the
values, and one layout pass fixes all of them. Cluster bytes are copied unchanged, in pieces.
Element IDs: https://www.matroska.org/technical/elements.html
"""
import os
import re

from .metadata import EmbedError

EBML, SEGMENT, CLUSTER, VOID, CRC32 = 0x1A45DFA3, 0x18538067, 0x1F43B675, 0xEC, 0xBF
SEEK_HEAD, SEEK, SEEK_ID, SEEK_POSITION = 0x114D9B74, 0x4DBB, 0x53AB, 0x53AC
TAGS, TAG, TARGETS, SIMPLE_TAG, TAG_NAME, TAG_STRING = 0x1254C367, 0x7373, 0x63C0, 0x67C8, 0x45A3, 0x4487
CUES, CUE_POINT, CUE_TRACK_POSITIONS, CUE_REFERENCE = 0x1C53BB6B, 0xBB, 0xB7, 0xDB
CUE_POSITIONS = {0xF1, 0x97}  # CueClusterPosition, CueRefCluster
CUE_CODEC_STATE = 0xEA
COPY_PIECE = 1 << 20
MAX_HEADER_ELEMENT = 64 << 20  # any level-1 element but a Cluster is metadata, read whole


def embed_webm(source, target, texts):
    """Write `source` to `target` with `texts` ({key: JSON}) as SimpleTags named KEY (upper case)."""
    with open(source, "rb") as src:
        file_size = os.fstat(src.fileno()).st_size
        ebml_id, _, header_end = _element_at(src, 0, file_size)
        segment_id, segment_data, segment_end = _element_at(src, header_end, file_size)
        if ebml_id != EBML or segment_id != SEGMENT:
            raise EmbedError("not an EBML header followed by a Segment")
        src.seek(0)
        header = src.read(header_end)
        items, tags_index = _plan(src, segment_data, segment_end or file_size, texts)
        offsets, pos = {}, 0
        for item in items:  # layout: sizes are known before any position is
            offsets[item["old"]] = pos
            pos += item["size"]
        offsets["tags"] = offsets[items[tags_index]["old"]]
        with open(target, "wb") as out:
            out.write(header + _id_bytes(SEGMENT) + _size(pos, width=8))
            for item in items:
                if "range" in item:
                    _copy(src, out, *item["range"])
                else:
                    out.write(item["render"](offsets))
    return tags_index


def brace_safe_json(text):
    """The frontend finds a tag's JSON end by counting braces, inside strings too: so braces in
    strings are written as the equivalent escapes \\u007b and \\u007d, which JSON reads back the same."""
    return re.sub(r'"(?:[^"\\]|\\.)*"', lambda m: m.group(0).replace("{", "\\u007b").replace("}", "\\u007d"), text)


def _plan(src, start, end, texts):
    """The Segment's new children: dicts with `old` (old position or a name), `size`, and either
    `range` (copied as is) or `render(offsets)`."""
    items, tags_index, pos = [], None, start
    simple_tags = [_element(TAG_NAME, key.upper().encode()) + _element(TAG_STRING, brace_safe_json(text).encode())
                   for key, text in texts.items()]
    our_tag = _element(TAG, _element(TARGETS, b"") + b"".join(_element(SIMPLE_TAG, t) for t in simple_tags))
    while pos < end:
        element_id, data_start, data_end = _element_at(src, pos, end)
        if data_end is None:
            raise EmbedError("an element of unknown size (a live stream)")
        old = pos - start
        if element_id == CLUSTER:
            if tags_index is None:  # no Tags before the clusters: ours go just before the first
                tags_index = len(items)
                items.append(_fixed("tags", _element(TAGS, our_tag)))
            items.append({"old": old, "size": data_end - pos, "range": (pos, data_end)})
        elif element_id != VOID:  # padding left for the muxer; the rewrite needs none
            if data_end - pos > MAX_HEADER_ELEMENT:
                raise EmbedError(f"a {data_end - pos}-byte level-1 element that is not a Cluster")
            src.seek(data_start)
            payload = src.read(data_end - data_start)
            if element_id == TAGS and tags_index is None:
                tags_index = len(items)
                items.append(_fixed(old, _element(TAGS, _without_crc(payload) + our_tag)))
            elif element_id == SEEK_HEAD:
                items.append(_seek_head(old, payload))
            elif element_id == CUES:
                items.append(_cues(old, payload))
            else:
                src.seek(pos)
                items.append(_fixed(old, src.read(data_end - pos)))
        pos = data_end
    if tags_index is None:
        tags_index = len(items)
        items.append(_fixed("tags", _element(TAGS, our_tag)))
    return items, tags_index


def _fixed(old, data):
    return {"old": old, "size": len(data), "render": lambda offsets: data}


def _seek_head(old, payload):
    """A SeekHead whose positions follow their elements, with a Seek for the Tags if it had none."""
    entries = []
    for element_id, data_start, data_end in _children(payload, 0, len(payload)):
        if element_id != SEEK:
            continue
        fields = {i: payload[s:e] for i, s, e in _children(payload, data_start, data_end)}
        entries.append((fields[SEEK_ID], int.from_bytes(fields[SEEK_POSITION], "big")))
    if _id_bytes(TAGS) not in [seek_id for seek_id, _ in entries]:
        entries.append((_id_bytes(TAGS), "tags"))

    def render(offsets):
        return _element(SEEK_HEAD, b"".join(
            _element(SEEK, _element(SEEK_ID, seek_id) + _element(SEEK_POSITION, _moved(offsets, target)))
            for seek_id, target in entries))
    return {"old": old, "size": len(render(None)), "render": render}


def _cues(old, payload):
    """Cues whose cluster positions follow the clusters; everything else copied."""
    def rewrite(data, start, end, offsets):
        out = b""
        for element_id, data_start, data_end in _children(data, start, end):
            value = data[data_start:data_end]
            if element_id in (CUE_POINT, CUE_TRACK_POSITIONS, CUE_REFERENCE):
                out += _element(element_id, rewrite(data, data_start, data_end, offsets))
            elif element_id in CUE_POSITIONS:
                out += _element(element_id, _moved(offsets, int.from_bytes(value, "big")))
            elif element_id == CUE_CODEC_STATE and int.from_bytes(value, "big"):
                raise EmbedError("Cues with codec-state positions")
            elif element_id != CRC32:  # a checksum of the old bytes would be wrong now
                out += _element(element_id, value)
        return out

    def render(offsets):
        return _element(CUES, rewrite(payload, 0, len(payload), offsets))
    return {"old": old, "size": len(render(None)), "render": render}


def _moved(offsets, old_position):
    """The new position of an element as 8 bytes (offsets None: the sizing pass, any value)."""
    if offsets is None:
        return bytes(8)
    if old_position not in offsets:
        raise EmbedError(f"a SeekHead or Cues position ({old_position}) that is not the start of an element")
    return offsets[old_position].to_bytes(8, "big")


def _without_crc(payload):
    return b"".join(payload[s:e] for i, s, e in _children(payload, 0, len(payload), headers=True) if i != CRC32)


# --- EBML coding ----------------------------------------------------------------------------------

def _vint(data, pos):
    """(value, length) of the variable-size integer at pos; value None is 'unknown size'."""
    first = data[pos]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8 or pos + length > len(data):
        raise EmbedError(f"a malformed EBML number at byte {pos}")
    value = int.from_bytes(data[pos:pos + length], "big") & ((1 << (7 * length)) - 1)
    return (None if value == (1 << (7 * length)) - 1 else value), length


def _element_at(file, pos, end):
    """(id, data start, data end or None) of the element at `pos` of a file."""
    file.seek(pos)
    head = file.read(12)
    if len(head) < 2:
        raise EmbedError(f"the file ends inside an element header at byte {pos}")
    _, id_length = _vint(head, 0)
    size, size_length = _vint(head, id_length)
    data_start = pos + id_length + size_length
    if size is not None and data_start + size > end:
        raise EmbedError(f"an element at byte {pos} runs past its parent")
    return int.from_bytes(head[:id_length], "big"), data_start, (None if size is None else data_start + size)


def _children(data, start, end, headers=False):
    pos = start
    while pos < end:
        _, id_length = _vint(data, pos)
        size, size_length = _vint(data, pos + id_length)
        data_start = pos + id_length + size_length
        if size is None or data_start + size > end:
            raise EmbedError(f"a malformed element at byte {pos} of a header element")
        yield int.from_bytes(data[pos:pos + id_length], "big"), (pos if headers else data_start), data_start + size
        pos = data_start + size


def _id_bytes(element_id):
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")


def _size(value, width=None):
    width = width or next(w for w in range(1, 9) if value < (1 << (7 * w)) - 1)
    return (value | (1 << (7 * width))).to_bytes(width, "big")


def _element(element_id, payload):
    return _id_bytes(element_id) + _size(len(payload)) + payload


def _copy(src, out, start, end):
    src.seek(start)
    while start < end:
        piece = src.read(min(COPY_PIECE, end - start))
        if not piece:
            raise EmbedError("the file ended early")
        out.write(piece)
        start += len(piece)
