"""The renderer on a batch: serial in one process vs Ray workers, and its own overhead per job.

    flock /tmp/alcm-heavy.lock python tests/bench_pipeline.py [--jobs 8] [--frames 2] [--size 64] [--workers 2]
    python tests/bench_pipeline.py --light     (no model: 32 frames of 256 px encoded per job, a few seconds)

Each run is the real command (`python pipeline/render.py ... --jobs`) in a fresh process, on the
shipped text-to-video workflow with the full-size random-weight stand-ins, one seed per job. Jobs/min
counts the whole command (ComfyUI start and model loading included) and, apart, the jobs alone
(first job started to last job finished, from the manifest). The overhead per job is the renderer's
time around the executor (overrides, file checks, output listing, the manifest write) over the graph's
execution time, from the serial run's manifest.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "workflows" / "animatelcm_t2v.json"


LIGHT = {  # Empty Image -> Save Video (AnimateLCM), in API format: the renderer's cost with almost no graph
    "1": {"class_type": "EmptyImage", "inputs": {"width": 256, "height": 256, "batch_size": 32, "color": 0},
          "_meta": {"title": "Canvas"}},
    "2": {"class_type": "ALCM_SaveVideo", "inputs": {"images": ["1", 0], "filename_prefix": "bench/light",
          "format": "webp", "frame_rate": 8.0, "loop_count": 0, "pingpong": False, "quality": 90}}}


def run(label, args, work, extra):
    manifest = work / f"{label}.manifest.json"
    if args.light:
        workflow, sizes = work / "light.json", []
    else:
        workflow, sizes = WORKFLOW, ["--stand-ins", "--frames", str(args.frames), "--size", str(args.size)]
    command = [sys.executable, str(REPO / "pipeline" / "render.py"), str(workflow), "--quiet",
               "--jobs", str(work / "jobs.jsonl"), "--manifest", str(manifest), "--output-dir", str(work / label)
               ] + sizes + extra
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    jobs = json.loads(manifest.read_text())["jobs"].values()
    return wall, list(jobs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--light", action="store_true", help="a modelless graph instead of t2v")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="alcm-bench-pipeline-"))
    if args.light:
        (work / "light.json").write_text(json.dumps(LIGHT))
        jobs = [{"id": f"seed{i}", "Canvas.color": i} for i in range(args.jobs)]
        print(f"{args.jobs} jobs: 32 frames of 256 px written as WebP, no model, on {os.cpu_count()} CPU cores")
    else:
        jobs = [{"id": f"seed{i}", "AnimateLCM Sampler.seed": i} for i in range(args.jobs)]
        print(f"{args.jobs} jobs: t2v, {args.frames} frames at {args.size} px, 4 steps, on {os.cpu_count()} CPU cores")
    (work / "jobs.jsonl").write_text("\n".join(json.dumps(job) for job in jobs))
    results = {}
    for label, extra in (("serial", []), ("ray", ["--ray", "--workers", str(args.workers)])):
        wall, jobs = run(label, args, work, extra)
        assert all(job["status"] == "done" for job in jobs), jobs
        job_time = max(j["finished_at"] for j in jobs) - min(j["finished_at"] - j["seconds"] for j in jobs)
        results[label] = (wall, jobs)
        print(f"{label:>6}: {wall:6.1f} s for the command = {60 * args.jobs / wall:5.2f} jobs/min; "
              f"jobs alone {60 * args.jobs / job_time:5.2f} jobs/min")
    serial_jobs = results["serial"][1]
    steady = serial_jobs[1:]  # the first job also loads the models
    overhead = [(job["seconds"] - job["graph_seconds"]) / job["graph_seconds"] for job in steady]
    print(f"renderer overhead per job (serial, jobs 2-{args.jobs}): median {100 * statistics.median(overhead):.2f}% "
          f"of the graph's time ({statistics.median(j['seconds'] - j['graph_seconds'] for j in steady) * 1000:.0f} ms; "
          f"graph median {statistics.median(j['graph_seconds'] for j in steady):.2f} s)")
    by_job = {json.dumps(j["overrides"], sort_keys=True): j for j in results["ray"][1]}
    same = all(Path(j["outputs"][0]).read_bytes() ==
               Path(by_job[json.dumps(j["overrides"], sort_keys=True)]["outputs"][0]).read_bytes() for j in serial_jobs)
    print(f"ray outputs identical to serial: {same}")


if __name__ == "__main__":
    main()
