"""Benchmark (not a test): long text-to-video with context windows, peak RSS and time against frame count.

    python tests/bench_long.py t2v --frames 16 64 128 256 --size 64 --steps 2

Each frame count runs in a fresh process (so peak RSS is that run's own): the full-size SD1.5
stand-in + AnimateLCM motion module, Context Windows 16/4 uniform pyramid with FreeNoise, the
AnimateLCM Sampler at cfg 1 (one UNet pass per window). Reported: the process's peak RSS, the
peak above the loaded model, wall time of sampling, and time per frame relative to 16 frames.
Runs in the registry host (or COMFYUI_PATH), like the tests. Run it under the heavy lock.
"""
import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import PeakRSS  # noqa: E402
import comfy_host  # noqa: E402
import stand_ins  # noqa: E402


def one_run(frames, size, steps):
    host = comfy_host.start()
    import comfy.model_management
    import comfy.sd
    import folder_paths
    pack = host.pack
    ckpt = folder_paths.get_full_path("checkpoints", stand_ins.sd15_checkpoint(host))
    model = comfy.sd.load_checkpoint_guess_config(ckpt, output_vae=False, output_clip=False)[0]
    motion_path = folder_paths.get_full_path("animatediff_models",
                                             stand_ins.motion_module(host, "AnimateLCM_sd15_t2v.safetensors"))
    animated = pack.motion.injection.animate(model, pack.motion.motion_module.load_motion_module(motion_path))
    long_model = pack.nodes.context_nodes.ContextWindows().apply(animated, 16, 4, "uniform", False, "pyramid", True)[0]
    comfy.model_management.load_models_gpu([long_model])
    generator = torch.Generator().manual_seed(0)
    positive = [[torch.randn(1, 77, 768, generator=generator), {}]]
    negative = [[torch.randn(1, 77, 768, generator=generator), {}]]
    latent = {"samples": torch.zeros(frames, 4, size // 8, size // 8)}
    with PeakRSS() as rss, torch.inference_mode():
        start = time.perf_counter()
        pack.samplers.video_sampling.sample_video(long_model, positive, negative, latent, 0, steps, 1.0)
        seconds = time.perf_counter() - start
    return {"frames": frames, "seconds": seconds, "peak_extra_mib": rss.peak / 2**20,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def t2v(frame_counts, size, steps):
    rows = []
    for frames in frame_counts:
        out = subprocess.run([sys.executable, __file__, "one", "--frames", str(frames), "--size", str(size),
                              "--steps", str(steps)], capture_output=True, text=True)
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if out.returncode or not lines:
            sys.exit(f"{frames} frames failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(lines[-1]))
        print(rows[-1], flush=True)
    base = rows[0]
    print(f"\n{size}x{size}, {steps} steps, cfg 1, windows 16/4 uniform pyramid + FreeNoise")
    print("| frames | sampling time | time per frame vs first | peak RSS | vs first | peak above loaded model |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        per_frame = (r["seconds"] / r["frames"]) / (base["seconds"] / base["frames"])
        print(f"| {r['frames']} | {r['seconds']:.1f} s | {per_frame:.2f}x | {r['peak_rss_mib']:.0f} MiB | "
              f"{r['peak_rss_mib'] / base['peak_rss_mib']:.3f}x | {r['peak_extra_mib']:.0f} MiB |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["t2v", "one"])
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 64, 128, 256])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    if args.command == "one":
        print(json.dumps(one_run(args.frames[0], args.size, args.steps)))
    else:
        t2v(args.frames, args.size, args.steps)


if __name__ == "__main__":
    main()
