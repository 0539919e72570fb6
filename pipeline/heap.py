"""The glibc settings the renderer's own ComfyUI runs with: freed heap pages kept in the process.

ComfyUI's UNet frees and allocates buffers of tens of MB on every call. A thread's allocations come from
64 MB heaps, which glibc unmaps when one empties (while the heap before it has room) and trims when their
free top passes the trim threshold: the buffers come back as fresh pages, a page fault each
(docs/benchmarks.md, "The cause, checked"). A 64 MB top pad (a heap is unmapped only while the one before
it has that much room, which a 64 MB heap never has) and a trim threshold no heap reaches keep those pages;
setting either stops glibc's sliding mmap threshold, so that one is fixed at 32 MB, its maximum and where
it slides to beside a UNet. The same three as `--tuned-heap` of tests/bench_vs_ade.py. The renderer samples
in its main thread, whose heap glibc trims the same way: with them a preview takes half the page faults
(docs/benchmarks.md, "The renderer's own ComfyUI with the kept heap").

glibc reads them once, from the environment, when the process starts: set in os.environ later they do
nothing. The renderer runs ComfyUI in its own process, so it starts that process again with them
(os.execve: the same process id, terminal and arguments) before ComfyUI is imported. mallopt(3) could set
the same values at run time, but only through ctypes, and not in the form a user gives their own ComfyUI
(the launch line in docs/pipelines.md): the environment is what was measured.

Standard library only: render.py loads it with preflight.py, before anything else is imported.
"""
import os
import re
import sys

KEPT_HEAP = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TOP_PAD_": str(64 * 2**20),
             "MALLOC_TRIM_THRESHOLD_": str(4 * 2**30)}
# the same settings as glibc tunables (GLIBC_TUNABLES=glibc.malloc.top_pad=...:...), another way to give them
TUNABLES = {"MALLOC_MMAP_THRESHOLD_": "glibc.malloc.mmap_threshold", "MALLOC_TOP_PAD_": "glibc.malloc.top_pad",
            "MALLOC_TRIM_THRESHOLD_": "glibc.malloc.trim_threshold"}


def as_settings(env):
    """Environment variables as they are typed on a command line: NAME=value NAME=value."""
    return " ".join(f"{name}={value}" for name, value in env.items())


def runs_on_glibc():
    """Whether this Python's C library is glibc (not macOS's, Windows', or musl's, which have no such settings)."""
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError, AttributeError):  # the name is unknown outside glibc (and os.confstr on Windows)
        return False


def users_own(environ):
    """The names of the three settings that `environ` already gives (as variables or glibc tunables)."""
    tunables = environ.get("GLIBC_TUNABLES", "")
    return [name for name, tunable in TUNABLES.items()
            if name in environ or re.search(rf"(^|:){re.escape(tunable)}=", tunables)]


def kept_already(environ):
    """Whether `environ` holds the kept-heap settings as the renderer sets them (a restarted renderer's does)."""
    return all(environ.get(name) == value for name, value in KEPT_HEAP.items())


def settings_to_add(environ, wanted=True):
    """(the settings the renderer adds to `environ`, or {}; why it adds none, or None)."""
    if not wanted:
        return {}, "--no-tuned-heap"
    if not runs_on_glibc():
        return {}, "not glibc"
    own = users_own(environ)
    if own:  # the user tuned the allocator: theirs, as they gave it, with nothing of ours mixed in
        return {}, f"your environment sets {', '.join(own)}"
    return dict(KEPT_HEAP), None


def restart_with(settings):
    """Run this command again, in this process, with `settings` added to its environment (never returns)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    # orig_argv: the command line as typed, interpreter options included (python -X ..., a console script)
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, **settings})
