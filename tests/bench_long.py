"""Benchmark (not a test): long text-to-video with context windows, peak RSS and time against frame count.

    python tests/bench_long.py t2v --frames 16 64 128 256 --size 64 --steps 2
    python tests/bench_long.py v2v --frames 256 --size 128    # video in and out, streamed vs as IMAGE

Each frame count runs in a fresh process (so peak RSS is that run's own): the full-size SD1.5
stand-in + AnimateLCM motion module, Context Windows 16/4 uniform pyramid with FreeNoise, the
AnimateLCM Sampler at cfg 1 (one UNet pass per window). Reported: the process's peak RSS, the
peak above the loaded model, wall time of sampling, and time per frame relative to 16 frames.
v2v: the video side of video-to-video on a 256-frame input (sampling is the same either way):
"image" loads the video as IMAGE, VAE Encode, VAE Decode, Save Video; "streamed" is Load Video with
a VAE and Save Video with LATENT + VAE. Each in a fresh process; peak RSS above the loaded VAE.
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


def one_v2v(variant, frames, size):
    host = comfy_host.start()
    import comfy.sd
    import folder_paths
    import nodes
    pack = host.pack
    ckpt = folder_paths.get_full_path("checkpoints", stand_ins.sd15_checkpoint(host))
    vae = comfy.sd.load_checkpoint_guess_config(ckpt, output_vae=True, output_clip=False, output_model=False)[2]
    path = host.input_dir / "bench_input.webm"
    t = (torch.arange(frames) / frames).view(frames, 1, 1)
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    pack.video.encode.save_video(torch.stack([(x + t) % 1, y.expand(frames, -1, -1), (1 - x * y + t) % 1], -1),
                                 str(path), "webm", 8.0)
    load, save = pack.nodes.video_nodes.LoadVideo(), pack.nodes.video_nodes.SaveVideo()
    options = {"frame_cap": 0, "skip_first_frames": 0, "select_every_nth": 1, "resize_to_multiple_of_8": True}
    save_options = {"format": "webm", "frame_rate": 8.0, "loop_count": 0, "pingpong": False, "quality": 90}
    with PeakRSS() as rss, torch.inference_mode():
        start = time.perf_counter()
        if variant == "image":
            images = load.load(path.name, **options)[0]
            latent = nodes.VAEEncode().encode(vae, images)[0]
            del images
            save.save(images=nodes.VAEDecode().decode(vae, latent)[0], filename_prefix="bench/v2v", **save_options)
        else:
            latent = load.load(path.name, vae=vae, **options)[3]
            save.save(filename_prefix="bench/v2v", latent=latent, vae=vae, **save_options)
        seconds = time.perf_counter() - start
    return {"variant": variant, "seconds": seconds, "peak_extra_mib": rss.peak / 2**20}


def v2v(frames, size):
    rows = []
    for variant in ("image", "streamed"):
        out = subprocess.run([sys.executable, __file__, "one-v2v", variant, "--frames", str(frames), "--size", str(size)],
                             capture_output=True, text=True)
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if out.returncode or not lines:
            sys.exit(f"{variant} failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(lines[-1]))
        print(rows[-1], flush=True)
    print(f"\n{frames} frames of {size}x{size}: Load Video → VAE encode → VAE decode → Save Video (webm)")
    print("| path | time | peak RSS above the loaded VAE |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['seconds']:.1f} s | {r['peak_extra_mib']:.0f} MiB |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["t2v", "one", "v2v", "one-v2v"])
    parser.add_argument("variant", nargs="?", choices=["image", "streamed"])
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 64, 128, 256])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    if args.command == "one":
        print(json.dumps(one_run(args.frames[0], args.size, args.steps)))
    elif args.command == "one-v2v":
        print(json.dumps(one_v2v(args.variant, args.frames[0], args.size)))
    elif args.command == "v2v":
        v2v(args.frames[0], args.size)
    else:
        t2v(args.frames, args.size, args.steps)


if __name__ == "__main__":
    main()
