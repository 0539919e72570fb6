"""Benchmarks (not tests): medians over repeats, ratios taken within one run.

    python tests/bench.py motion-overhead   # one UNet call with / without the temporal layers, 16 frames
    python tests/bench.py motion-load       # load time and peak RSS of a 1.8 GB fp32 .ckpt and 0.9 GB fp16 .safetensors
    python tests/bench.py sampler           # sampler overhead over the model's own time; 4 vs 25 steps

Runs in the registry host (or COMFYUI_PATH) on random-weight full-size files, like the tests.
"""
import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_host  # noqa: E402
import stand_ins  # noqa: E402


class PeakRSS:
    """Peak resident memory above the level at entry, sampled every 2 ms."""

    def __enter__(self):
        self.process, self.base, self.peak, self.running = psutil.Process(), psutil.Process().memory_info().rss, 0, True
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss - self.base)
            time.sleep(0.002)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load_models(host):
    import comfy.sd
    import folder_paths
    ckpt = folder_paths.get_full_path("checkpoints", stand_ins.sd15_checkpoint(host))
    model, clip = comfy.sd.load_checkpoint_guess_config(ckpt, output_vae=False, output_clip=True)[:2]
    motion_path = folder_paths.get_full_path("animatediff_models", stand_ins.motion_module(host, "AnimateLCM_sd15_t2v.safetensors"))
    motion = host.pack.motion.motion_module.load_motion_module(motion_path)
    return model, clip, motion


def motion_overhead(host, repeats):
    import comfy.model_management
    model, _, motion = load_models(host)
    animated = host.pack.motion.injection.animate(model, motion)
    print("| pixels | UNet call, image model | with temporal layers | overhead | peak extra RSS, image | with temporal layers |")
    for pixels in (64, 256):
        x = torch.randn(16, 4, pixels // 8, pixels // 8)
        context = torch.randn(16, 77, 768)
        results = {}
        for name, patcher in (("plain", model), ("motion", animated)):
            comfy.model_management.load_models_gpu([patcher])
            wrapper = patcher.model_options.get("model_function_wrapper")

            def call():
                args = {"input": x, "timestep": torch.full((16,), 14.6), "c": {"c_crossattn": context,
                        "transformer_options": {"cond_or_uncond": [0]}}, "cond_or_uncond": [0]}
                with torch.inference_mode():
                    if wrapper is None:
                        patcher.model.apply_model(args["input"], args["timestep"], **args["c"])
                    else:
                        wrapper(patcher.model.apply_model, args)
            call()  # warm-up
            with PeakRSS() as rss:
                call()
            results[name] = (median_time(call, repeats), rss.peak)
        (tp, mp), (tm, mm) = results["plain"], results["motion"]
        print(f"| {pixels}x{pixels} | {tp:.2f} s | {tm:.2f} s | {100 * (tm / tp - 1):+.0f}% | "
              f"{mp / 2**20:.0f} MiB | {mm / 2**20:.0f} MiB |")


def motion_load(host, repeats):
    import folder_paths
    folder = host.models_dir("animatediff_models")
    fp16 = folder_paths.get_full_path("animatediff_models", stand_ins.motion_module(host, "AnimateLCM_sd15_t2v.safetensors"))
    fp32 = stand_ins.CACHE_DIR / "animatelcm_t2v_random_v1_fp32.ckpt"
    if not fp32.exists():
        from fixture_motion import motion_state_dict
        torch.save(motion_state_dict("animatelcm_t2v", dtype=torch.float32), fp32)
    print("| file | size | load (median) | ready for an fp32 UNet (median) | peak RSS over baseline | peak RSS / file size |")
    for path in (fp32, Path(fp16)):
        runs = [_load_in_fresh_process(path) for _ in range(repeats)]
        seconds, peak, ready = (statistics.median(r[i] for r in runs) for i in range(3))
        size = os.path.getsize(path)
        print(f"| {path.name} | {size / 2**30:.2f} GiB | {seconds:.2f} s | {ready:.2f} s | {peak / 2**30:.2f} GiB | "
              f"{peak / size:.2f} |")
    del folder


def _load_in_fresh_process(path):
    # "ready" = loaded, layers built in the fp32 a CPU UNet uses, and every weight read once, as the
    # first sampling step does: files are memory-mapped, so loading alone reads almost nothing
    code = ("import sys, time, torch; sys.path.insert(0, sys.argv[2]); import bench, comfy_host; h = comfy_host.start()\n"
            "with bench.PeakRSS() as rss:\n"
            "    start = time.perf_counter(); m = h.pack.motion.motion_module.load_motion_module(sys.argv[1])\n"
            "    t = time.perf_counter() - start\n"
            "    layers = m.build_layers(torch.float32)\n"
            "    total = sum(float(p.sum()) for layer in layers.values() for p in layer.parameters())\n"
            "    ready = time.perf_counter() - start\n"
            "print('RESULT', t, rss.peak, ready)")
    out = subprocess.run([sys.executable, "-c", code, str(path), str(Path(__file__).parent)],
                         capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT"))
    _, seconds, peak, ready = line.split()
    return float(seconds), int(peak), float(ready)


def sampler(host, repeats, frames=16):
    import comfy.model_management
    import comfy.sample
    import comfy.samplers
    model, clip, motion = load_models(host)
    animated = host.pack.motion.injection.animate(model, motion)
    tokens = clip.tokenize("a red fox running through snow")
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    positive = [[cond, {"pooled_output": pooled}]]
    negative = [[torch.zeros_like(cond), {"pooled_output": pooled}]]
    latent = {"samples": torch.zeros(frames, 4, 8, 8)}
    unet_seconds = []
    unet = model.model.diffusion_model
    pre = unet.register_forward_pre_hook(lambda *a: unet_seconds.append(-time.perf_counter()))
    post = unet.register_forward_hook(lambda *a: unet_seconds.append(time.perf_counter()))

    def animatelcm():
        with torch.inference_mode():
            host.pack.samplers.video_sampling.sample_video(animated, positive, negative, latent, 0, 4, 1.5)

    def animatediff_25():
        with torch.inference_mode():
            noise = comfy.sample.prepare_noise(latent["samples"], 0)
            comfy.sample.sample(animated, noise, 25, 7.5, "euler", "normal", positive, negative, latent["samples"],
                                disable_pbar=True, seed=0)

    comfy.model_management.load_models_gpu([animated])
    animatelcm()  # warm-up
    totals, overheads, totals_25 = [], [], []
    for _ in range(repeats):  # interleaved, so a busy machine slows both alike
        unet_seconds.clear()
        start = time.perf_counter()
        animatelcm()
        total = time.perf_counter() - start
        totals.append(total)
        overheads.append(total / sum(unet_seconds) - 1)
        totals_25.append(median_time(animatediff_25, 1))
    t4, t25 = statistics.median(totals), statistics.median(totals_25)
    pre.remove()
    post.remove()
    print(f"| run ({frames} frames, 64x64, SD1.5 + motion module, CPU) | time (median) |")
    print(f"| AnimateLCM 4 steps, cfg 1.5 | {t4:.2f} s |")
    print(f"| AnimateDiff-style 25 steps euler, cfg 7.5 | {t25:.2f} s |")
    print(f"| speed-up | {t25 / t4:.1f}x |")
    print(f"| sampler overhead over the UNet's own time | {100 * statistics.median(overheads):.1f}% |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["motion-overhead", "motion-load", "sampler"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=16, help="latent batch for the sampler comparison")
    args = parser.parse_args()
    torch.manual_seed(0)
    host = comfy_host.start()
    with torch.inference_mode():  # as ComfyUI's executor runs node code
        if args.what == "sampler":
            sampler(host, args.repeats, args.frames)
        else:
            {"motion-overhead": motion_overhead, "motion-load": motion_load}[args.what](host, args.repeats)


if __name__ == "__main__":
    main()
