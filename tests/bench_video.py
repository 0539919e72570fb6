"""Benchmark (not a test): Save Video's speed per format, and the memory it adds while writing.

    python tests/bench_video.py [--repeats 3] [--frames 32] [--long 256]
    python tests/bench_video.py --sound [--repeats 3] [--long 256]

Speed: frames written per second, 512x512, `--frames` frames, median of `--repeats`. Memory: the
peak RSS (sampled every 2 ms) above the level before the save, while writing `--long` frames of
512x512, next to the size of the float32 frames tensor itself: a saver that converts the whole
video first (core SaveAnimatedWEBP, measured for reference) adds a second copy of it, ours one frame.
--sound: what a stereo 48 kHz track as long as the video (`--long` frames at 8 fps) adds to saving
those frames as mp4: time and peak RSS above the frames and the track already in memory, each save
in a fresh process, medians of `--repeats`, with and without the track alternating.
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
    parser.add_argument("--sound", action="store_true", help="mp4 with a stereo track vs without")
    parser.add_argument("--peak-of", help=argparse.SUPPRESS)  # the child process measuring one saver
    parser.add_argument("--sound-of", help=argparse.SUPPRESS)  # the child process saving with or without sound
    args = parser.parse_args()
    host = comfy_host.start()
    encode = host.pack.video.encode
    with tempfile.TemporaryDirectory(prefix="alcm-bench-video-") as scratch:
        run(args, host, encode, Path(scratch))


def run(args, host, encode, out):
    if args.peak_of:
        print("PEAK", _peak_rss(encode, args.peak_of, moving_frames(args.long), out))
        return
    if args.sound_of:
        print("SOUND", *_save_with_sound(encode, args.sound_of == "with", args.long, out))
        return
    if args.sound:
        _sound_table(args, host)
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


SOUND_RATE = 48000


def _save_with_sound(encode, with_sound, count, out):
    """(seconds, bytes of peak RSS added) of saving `count` frames as mp4, with a stereo track of their length."""
    frames = moving_frames(count)
    seconds = count / 8.0
    t = torch.arange(round(seconds * SOUND_RATE)) / SOUND_RATE
    # made in both runs, so both start from the same heap (freed temporaries are room the encoders reuse)
    audio = {"waveform": torch.stack([torch.sin(2 * math.pi * 440 * t), torch.sin(2 * math.pi * 660 * t)])[None] * 0.5,
             "sample_rate": SOUND_RATE}
    with PeakRSS() as peak:
        start = time.perf_counter()
        encode.save_video(frames, str(out / "sound.mp4"), "mp4", 8.0, audio=audio if with_sound else None)
        elapsed = time.perf_counter() - start
    return elapsed, peak.peak


def _sound_table(args, host):
    runs = {"without": [], "with": []}
    for _ in range(args.repeats):
        for variant in runs:
            result = subprocess.run([sys.executable, __file__, "--sound-of", variant, "--long", str(args.long)],
                                    capture_output=True, text=True, check=True).stdout
            line = next(line for line in result.splitlines() if line.startswith("SOUND"))
            runs[variant].append(tuple(float(v) for v in line.split()[1:]))
            print(f"{variant} sound: {runs[variant][-1][0]:.2f} s, {runs[variant][-1][1] / 2**20:.0f} MiB", flush=True)
    seconds = {v: statistics.median(r[0] for r in runs[v]) for v in runs}
    peak = {v: statistics.median(r[1] for r in runs[v]) / 2**20 for v in runs}
    print(f"\n{host.description}; torch {torch.__version__}; {os.cpu_count()} CPUs\n")
    print(f"| mp4, {args.long} frames of {SIZE}x{SIZE} at 8 fps (median of {args.repeats}) | time | peak RSS added |")
    print("|---|---|---|")
    print(f"| without sound | {seconds['without']:.2f} s | {peak['without']:.0f} MiB |")
    print(f"| with a {args.long / 8:.0f} s stereo 48 kHz track (AAC) | {seconds['with']:.2f} s "
          f"| {peak['with']:.0f} MiB |")
    print(f"| the track's cost | {seconds['with'] - seconds['without']:+.2f} s "
          f"({100 * (seconds['with'] / seconds['without'] - 1):+.1f} %) | {peak['with'] - peak['without']:+.0f} MiB |")
    for codec, container_format in (("aac", "mp4"), ("libopus", "webm")):
        alone = statistics.median(_timed(lambda: _track_alone(host, codec, container_format, args.long))
                                  for _ in range(args.repeats))
        print(f"\nthe {args.long / 8:.0f} s track alone, {codec} into an empty {container_format}, one frame's slice "
              f"at a time: {alone:.2f} s (median of {args.repeats})")


def _track_alone(host, codec, container_format, count):
    import av
    t = torch.arange(round(count / 8.0 * SOUND_RATE)) / SOUND_RATE
    audio = {"waveform": torch.sin(2 * math.pi * 440 * t).expand(1, 2, -1), "sample_rate": SOUND_RATE}
    with tempfile.TemporaryDirectory(prefix="alcm-bench-sound-") as scratch:
        with av.open(os.path.join(scratch, f"track.{container_format}"), "w", format=container_format) as container:
            track = host.pack.video.audio.AudioTrack(container, codec, audio, count / 8.0)
            for frame in range(1, count + 1):
                track.write_until(frame / 8.0)
            track.close()


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
