"""Run a command and report the peak memory of its whole process tree (pytest, ComfyUI's server and
Chromium together), sampled twice a second, with the wall time. How the suite's figures in
docs/benchmarks.md were taken:

    ~/.cache/animatelcm-fast/venv-0.3.75-*/bin/python tests/peak_rss.py bash .ci/run

Needs psutil: run it with a test environment's python (they have it; the system python may not).
"""
import subprocess
import sys
import time

import psutil


def tree_rss(process):
    total = 0
    for p in [process] + process.children(recursive=True):
        try:
            total += p.memory_info().rss
        except psutil.Error:  # it ended between listing and reading
            pass
    return total


def main(command):
    started = time.monotonic()
    child = subprocess.Popen(command)
    watched = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        try:
            peak = max(peak, tree_rss(watched))
        except psutil.Error:
            pass
        time.sleep(0.5)
    minutes = (time.monotonic() - started) / 60
    print(f"== peak RSS of the process tree: {peak / 2**30:.2f} GiB; wall time {minutes:.1f} min; "
          f"exit {child.returncode}", flush=True)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
