"""The quality report's cost per frame, and a sweep's overhead beyond its renders.

    flock /tmp/alcm-heavy.lock python tests/bench_quality.py [--frames 16] [--repeats 3]

(with a test environment's Python). In the test host (tests/comfy_host.py), on one thread:

1. The report of 16 frames at 64x64 and 512x512 (a texture moving half a pixel a frame under noise, like the
   stand-ins' output): the engine alone on uint8 frames (the node's work after its IMAGE -> uint8), and
   --report's whole path on the video Save Video wrote (WebP decode, measures, JSON, plot PNG), per frame,
   medians of --repeats. The share is against a 4-step render of the same frames, taken from
   docs/benchmarks.md's figures on this machine: the sampler alone, 10.44 s for 16 frames at 64x64, and at
   512x512 four times the 256x256 sampler's 123.21 s (a floor: attention grows faster than the pixels), so
   the shares are upper bounds.
2. A 2x2 --sweep through render.main on a graph without a model (Load Video -> Save Video, 8 frames of 128 px,
   what --preview renders), against the same 4 cells as a plain --jobs batch: the overhead is the command's
   time less the cells' graph time, per cell.
"""
import argparse
import importlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_host  # noqa: E402
from fixture_quality import moving  # noqa: E402

RENDER_SECONDS_PER_FRAME = {64: 10.44 / 16, 512: 4 * 123.21 / 16}  # docs/benchmarks.md, see above


def noisy(frames, size):
    generator = np.random.default_rng(0)
    return [np.clip(f + generator.normal(0, 8, f.shape), 0, 255).astype(np.uint8)
            for f in moving(frames, size=size, step=(0.5, 0))]


def median_seconds(function, repeats):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def report_costs(pack, frames, repeats, work):
    report, plot = pack.quality.report, pack.quality.plot
    reports = importlib.import_module(f"{pack.__name__}.pipeline.reports")
    print("| frames | engine, per frame | --report (WebP in, JSON and plot out), per frame | 4-step render per "
          "frame | share |")
    print("|---|---|---|---|---|")
    for size in (64, 512):
        clip = noisy(frames, size)
        video = work / f"bench_{size}.webp"
        pack.video.encode.save_video(torch.from_numpy(np.stack(clip)).float() / 255, str(video), "webp", 8.0)
        engine = median_seconds(lambda: plot.plot(report.measure_video(iter(clip))), repeats) / frames
        whole = median_seconds(lambda: reports.report_video(video, None, 4), repeats) / frames
        render = RENDER_SECONDS_PER_FRAME[size]
        print(f"| {frames} x {size}x{size} | {engine * 1000:.1f} ms | {whole * 1000:.1f} ms | {render:.2f} s | "
              f"{100 * whole / render:.2f}% |")


def sweep_overhead(host, pack, work, repeats):
    render = importlib.import_module(f"{pack.__name__}.pipeline.render")
    clip = noisy(12, 128)
    pack.video.encode.save_video(torch.from_numpy(np.stack(clip)).float() / 255,
                                 str(host.input_dir / "bench_sweep.webp"), "webp", 8.0)
    workflow = work / "sweep.json"
    workflow.write_text(json.dumps({
        "1": {"class_type": "ALCM_LoadVideo", "_meta": {"title": "Load"}, "inputs": {
            "video": "bench_sweep.webp", "frame_cap": 8, "skip_first_frames": 0, "select_every_nth": 1,
            "resize_to_multiple_of_8": True}},
        "2": {"class_type": "ALCM_SaveVideo", "_meta": {"title": "Save"}, "inputs": {
            "images": ["1", 0], "filename_prefix": "bench/sweep", "format": "webp", "frame_rate": 8.0,
            "loop_count": 0, "pingpong": False, "quality": 90}}}))
    cells = [{"Load.skip_first_frames": s, "Save.quality": q} for s in (0, 2) for q in (80, 90)]
    (work / "cells.jsonl").write_text("\n".join(json.dumps(c) for c in cells))
    results = {"sweep": [], "batch": []}
    for n in range(repeats):
        for label, extra in (("sweep", ["--sweep", "Load.skip_first_frames=0,2", "--sweep", "Save.quality=80,90"]),
                             ("batch", ["--jobs", str(work / "cells.jsonl")])):
            manifest = work / f"{label}{n}.manifest.json"
            started = time.perf_counter()
            assert render.main([str(workflow), "--quiet", "--manifest", str(manifest)] + extra) == 0
            wall = time.perf_counter() - started
            graph = sum(job["graph_seconds"] for job in json.loads(manifest.read_text())["jobs"].values())
            results[label].append((wall - graph) / len(cells))
    sweep, batch = statistics.median(results["sweep"]), statistics.median(results["batch"])
    print(f"\n| 4 cells of 8 frames at 128 px | overhead per cell beyond the graphs |\n|---|---|\n"
          f"| plain --jobs batch | {batch * 1000:.0f} ms |\n| --sweep (reports, sheet, table) | {sweep * 1000:.0f} ms |"
          f"\n| the sweep's own part | {(sweep - batch) * 1000:.0f} ms |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    host = comfy_host.start()
    work = Path(tempfile.mkdtemp(prefix="alcm-bench-quality-"))
    report_costs(host.pack, args.frames, args.repeats, work)
    sweep_overhead(host, host.pack, work, args.repeats)


if __name__ == "__main__":
    main()
