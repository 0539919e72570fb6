"""Benchmark (not a test): an image-to-video render against the same text-to-video render.

    python tests/bench_i2v.py [--frames 8] [--size 64] [--repeats 3] [--windows 16/4]

One MODEL (full-size random SD1.5 + the AnimateLCM-I2V motion-module stand-in), one prompt and
seed, the AnimateLCM Sampler at 4 steps, cfg 1 (the official I2V setting); the I2V run adds the
image encoder's features, computed once per run. With --windows both MODELs sample through Context
Windows (uniform, pyramid, FreeNoise), each window's calls getting its own frames' features. Runs are interleaved so a busy machine slows both
alike; medians over repeats. Peak RSS is measured above the level before each sampling run.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_host  # noqa: E402
import stand_ins  # noqa: E402
from bench import PeakRSS  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64, help="width and height in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--windows", default=None, help="context_length/overlap, e.g. 16/4 (default: no windows)")
    args = parser.parse_args()
    host = comfy_host.start()
    import comfy.model_management
    import comfy.sd
    import folder_paths
    pack = host.pack
    ckpt = folder_paths.get_full_path("checkpoints", stand_ins.sd15_checkpoint(host))
    with torch.inference_mode():  # as ComfyUI's executor runs node code
        model, clip, vae = comfy.sd.load_checkpoint_guess_config(ckpt, output_vae=True, output_clip=True)[:3]
    motion_path = folder_paths.get_full_path("animatediff_models", stand_ins.motion_module(host, "AnimateLCM_sd15_i2v.ckpt"))
    motion = pack.motion.motion_module.load_motion_module(motion_path)
    with torch.inference_mode():
        cond, pooled = clip.encode_from_tokens(clip.tokenize("a red fox in the snow"), return_pooled=True)
        positive = negative = [[cond, {"pooled_output": pooled}]]
        image = torch.rand(1, args.size * 3 // 2, args.size * 2, 3, generator=torch.Generator().manual_seed(0))
        t2v = pack.motion.injection.animate(model, motion)
        t2v_latent = {"samples": torch.zeros(args.frames, 4, args.size // 8, args.size // 8)}
        start = time.perf_counter()
        i2v, i2v_latent = pack.nodes.i2v_nodes.ImageToVideo().apply(
            model, motion, image, vae, args.size, args.size, args.frames, 0.8)
        node_seconds = time.perf_counter() - start
    label = ""
    if args.windows:
        length, overlap = (int(n) for n in args.windows.split("/"))
        windows = pack.nodes.context_nodes.ContextWindows()
        t2v, i2v = (windows.apply(m, length, overlap, "uniform", False, "pyramid", True)[0] for m in (t2v, i2v))
        label = f", windows {length}/{overlap}"

    def render(patched, latent):
        with torch.inference_mode():
            pack.samplers.video_sampling.sample_video(patched, positive, negative, latent, 0, 4, 1.0)

    runs = {"t2v": (t2v, t2v_latent), "i2v": (i2v, i2v_latent)}
    times, peaks = {k: [] for k in runs}, {k: [] for k in runs}
    for name, (patched, latent) in runs.items():  # warm-up: weights loaded and paged in for both
        comfy.model_management.load_models_gpu([patched])
        render(patched, latent)
    for _ in range(args.repeats):
        for name, (patched, latent) in runs.items():
            comfy.model_management.load_models_gpu([patched])
            with PeakRSS() as rss:
                start = time.perf_counter()
                render(patched, latent)
                times[name].append(time.perf_counter() - start)
            peaks[name].append(rss.peak)
            print(f"{name}: {times[name][-1]:.2f} s", flush=True)  # as it goes: a long run stopped early still tells
    # the encoder's own cost, timed alone (the render-vs-render difference drowns in a busy machine's noise)
    wrapper = i2v.model_options["model_function_wrapper"]
    encoder_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        with torch.inference_mode():
            wrapper.conditioning.features(args.frames)
        encoder_times.append(time.perf_counter() - start)
    t, i = statistics.median(times["t2v"]), statistics.median(times["i2v"])
    mt, mi = statistics.median(peaks["t2v"]), statistics.median(peaks["i2v"])
    print(f"| render ({args.frames} frames{label}, {args.size}x{args.size}, 4 steps, cfg 1, CPU) | time (median of "
          f"{args.repeats}) | peak extra RSS while sampling |")
    print(f"| text-to-video | {t:.2f} s | {mt / 2**20:.0f} MiB |")
    print(f"| image-to-video | {i:.2f} s | {mi / 2**20:.0f} MiB |")
    print(f"| I2V extra | {100 * (i / t - 1):+.1f}% | {(mi - mt) / 2**20:+.0f} MiB |")
    for name in runs:
        print(f"{name}: times {', '.join(f'{x:.3f}' for x in times[name])} s; "
              f"peaks {', '.join(f'{x / 2**20:.0f}' for x in peaks[name])} MiB")
    encoder = statistics.median(encoder_times)
    print(f"| the image encoder, once per run (timed alone) | {encoder:.3f} s = {100 * encoder / t:.2f}% of the "
          f"text-to-video render | |")
    print(f"| the I2V node itself (image encoder built, start image VAE-encoded) | {node_seconds:.2f} s | |")


if __name__ == "__main__":
    main()
