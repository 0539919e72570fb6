"""Giving back the RAM that memory-mapped weights took once they have been copied elsewhere.

Weight files are memory-mapped (safetensors, and zip pickles through torch.load(mmap=True)), so
their tensors cost nothing until read; but every page read stays resident while the mapping
lives. Once a tensor has been converted (fp16 file → fp32 layers) or copied (fused q/k/v), its
pages are only a second copy: `release` tells the kernel to drop them. The tensor itself stays
valid (the mapping is private and never written, so a later read just reads the file again).

Only tensors that lie inside a read-only-used file mapping of this process are touched (checked
in /proc/self/maps): anonymous memory given MADV_DONTNEED would be zeroed. Where that check
cannot be made (not Linux), `release` does nothing and the pages go when the mapping does.
"""
import ctypes
import ctypes.util
import logging
import mmap
import sys

log = logging.getLogger(__name__)
MADV_DONTNEED = 4  # Linux: drop the pages; a private file mapping refills them from the file
_libc = None


def _madvise():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return _libc.madvise


def _file_mappings():
    """[(start, end)] of this process's mappings of regular files (inode ≠ 0)."""
    ranges = []
    with open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and fields[4] != "0" and fields[5].startswith("/"):
                start, end = (int(a, 16) for a in fields[0].split("-"))
                ranges.append((start, end))
    return ranges


def release(tensors):
    """Drop the resident pages of `tensors` that are views of a file mapping; returns the bytes released."""
    if not sys.platform.startswith("linux"):
        return 0
    mappings = _file_mappings()
    page = mmap.PAGESIZE
    released = 0
    for tensor in tensors:
        if tensor.device.type != "cpu" or tensor.numel() == 0:
            continue
        start = tensor.data_ptr()
        end = start + tensor.numel() * tensor.element_size()
        if not any(m_start <= start and end <= m_end for m_start, m_end in mappings):
            continue
        first, last = -(-start // page) * page, end // page * page  # whole pages inside the tensor only
        if last > first and _madvise()(first, last - first, MADV_DONTNEED) == 0:
            released += last - first
    return released
