"""Benchmark (not a test): Save Video's speed per format, and the memory it adds while writing.

    python tests/bench_video.py [--repeats 3] [--frames 32] [--long 256]

Speed: frames written per second, 512x512, `--frames` frames, median of `--repeats`. Memory: the
peak RSS (sampled every 2 ms) above the level before the save, while writing `--long` frames of
512x512, next to the size of the float32 frames tensor itself: a saver that converts the whole
video first (core SaveAnimatedWEBP, measured for reference) adds a second copy of it, ours one frame.
Prints a markdown table. Runs in the registry host (or COMFYUI_PATH), like the tests.
"""
import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_host  # noqa: E402
from bench import PeakRSS  # noqa: E402

SIZE = 512


def moving_frames(count):
    """Detail that moves (so no encoder gets a free ride on repeated or flat frames)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, SIZE), torch.linspace(0, 1, SIZE), indexing="ij")
    frames = torch.empty(count, SIZE, SIZE, 3)
    for i in range(count):
        t = i / 16
        frames[i, ..., 0] = 0.5 + 0.4 * torch.sin(2 * math.pi * (3 * x + t))
        frames[i, ..., 1] = 0.5 + 0.4 * torch.cos(2 * math.pi * (2 * y - t))
        frames[i, ..., 2] = 0.5 + 0.4 * torch.sin(math.pi * 8 * (x * y + t))
    return frames


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--long", type=int, default=256)
    parser.add_argument("--peak-of", help=argparse.SUPPRESS)  # the child process measuring one saver
    args = parser.parse_args()
    host = comfy_host.start()
    encode = host.pack.video.encode
    with tempfile.TemporaryDirectory(prefix="alcm-bench-video-") as scratch:
        run(args, host, encode, Path(scratch))


def run(args, host, encode, out):
    if args.peak_of:
        print("PEAK", _peak_rss(encode, args.peak_of, moving_frames(args.long), out))
        return
    short, rows = moving_frames(args.frames), []
    for name, video_format in encode.FORMATS.items():
        path = out / f"short{video_format.extension}"
        seconds = statistics.median(_timed(lambda: encode.save_video(short, str(path), name, 8.0))
                                    for _ in range(args.repeats))
        rows.append([name, f"{args.frames / seconds:.1f}", f"{os.path.getsize(path) / args.frames / 1024:.0f}"])
    rows.append(["core SaveAnimatedWEBP (reference)", "", ""])
    tensor_mib = args.long * SIZE * SIZE * 3 * 4 / 2**20
    for row in rows:
        peak_mib = _in_fresh_process(row[0].split()[0], args.long) / 2**20
        row += [f"{peak_mib:.0f} MiB", f"{100 * peak_mib / tensor_mib:.1f} %"]
    print(f"\n{host.description}; torch {torch.__version__}; {os.cpu_count()} CPUs\n")
    print(f"| format | frames/s ({SIZE}x{SIZE}, {args.frames} frames, median of {args.repeats}) | KiB per frame "
          f"| peak RSS added writing {args.long} frames | vs the {tensor_mib:.0f} MiB frames tensor |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _peak_rss(encode, saver, frames, out):
    """Bytes of RSS the saver adds above the level with the frames already in memory."""
    if saver == "core":
        import nodes
        core = nodes.NODE_CLASS_MAPPINGS["SaveAnimatedWEBP"]()
        core.output_dir = str(out)
        with PeakRSS() as peak:
            core.save_images(frames, 8.0, "core", False, 90, "default")
        return peak.peak
    with PeakRSS() as peak:
        encode.save_video(frames, str(out / f"long{encode.FORMATS[saver].extension}"), saver, 8.0)
    return peak.peak


def _in_fresh_process(saver, count):
    # a fresh process each: no heap left over from another saver hides (or adds to) this one's
    result = subprocess.run([sys.executable, __file__, "--peak-of", saver, "--long", str(count)],
                            capture_output=True, text=True, check=True).stdout
    return int(next(line for line in result.splitlines() if line.startswith("PEAK")).split()[1])


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
