"""Benchmarks (not tests): medians over repeats, ratios taken within one run.

    python tests/bench.py motion-overhead   # one UNet call with / without the temporal layers, 16 frames
    python tests/bench.py motion-load       # load time and peak RSS of a 1.8 GB fp32 .ckpt and 0.9 GB fp16 .safetensors
    python tests/bench.py sampler           # sampler overhead over the model's own time; 4 vs 25 steps
    python tests/bench.py motion-layers     # time in the 21 motion layers per UNet call, 16 frames: ours vs the
                                            # first layer (three q/k/v products, layout copies), interleaved
    python tests/bench.py render-rss        # peak RSS of a 16-frame render in a fresh process, with and without
                                            # the motion module (fp16 file, fp32 CPU UNet)

Runs in the registry host (or COMFYUI_PATH) on random-weight full-size files, like the tests.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import torch
import torch.nn.functional as F

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


def _first_attention(attention, tokens, pe_scale=1.0):
    """The pack's first temporal attention, for comparison: three q/k/v products and einops layouts."""
    from einops import rearrange
    frames, channels = tokens.shape[1], tokens.shape[2]
    tokens = tokens + pe_scale * attention.pos_encoder.encoding(frames, tokens)
    q, k, v = (rearrange(F.linear(tokens, w), "n f (h d) -> n h f d", h=attention.heads)
               for w in attention.to_qkv.weight.split(channels))
    out = F.scaled_dot_product_attention(q, k, v)
    return attention.to_out[0](rearrange(out, "n h f d -> n f (h d)"))


def _first_layer(layer, x, videos):
    from einops import rearrange
    t = layer.temporal_transformer
    height, width = x.shape[-2:]
    tokens = t.proj_in(rearrange(t.norm(x), "(b f) c h w -> (b h w) f c", b=videos))
    block = t.transformer_blocks[0]
    for attention, norm in zip(block.attention_blocks, block.norms):
        tokens = _first_attention(attention, norm(tokens)) + tokens
    tokens = block.ff(block.ff_norm(tokens)) + tokens
    return x + rearrange(t.proj_out(tokens), "(b h w) f c -> (b f) c h w", b=videos, h=height, w=width)


def _level(position):
    kind, index = position.split(".")[:2]
    return 3 if kind == "mid_block" else int(index) if kind == "down_blocks" else 3 - int(index)


def _products_alone(layers, inputs):
    """The floor both versions share: every layer's matrix products (proj_in, q/k/v, out, both feed-forward
    products, proj_out) at the layer's shapes, on ready inputs, with nothing around them."""
    work = []
    for position, layer in layers.items():
        t = layer.temporal_transformer
        block = t.transformer_blocks[0]
        frames_total, channels, height, width = inputs[position].shape
        tokens = torch.randn(frames_total * height * width, channels)
        wide = torch.randn(tokens.shape[0], block.ff.net[2].weight.shape[1])
        work += [(tokens, t.proj_in), (tokens, t.proj_out), (tokens, block.ff.net[0].proj), (wide, block.ff.net[2])]
        work += [(tokens, linear) for attention in block.attention_blocks for linear in (attention.to_qkv, attention.to_out[0])]

    def products():
        for x, linear in work:
            F.linear(x, linear.weight, linear.bias)  # dropped at once, as the layers drop theirs
    return products


def motion_layers(host, repeats, frames=16, sizes=(64, 256)):
    """Time in all motion layers of one UNet call (cfg: 2 videos), ours against the first layer."""
    import folder_paths
    path = folder_paths.get_full_path("animatediff_models", stand_ins.motion_module(host, "AnimateLCM_sd15_t2v.safetensors"))
    layers = host.pack.motion.motion_module.load_motion_module(path).build_layers(torch.float32)
    video_layout = host.pack.motion.video_batch.video_layout
    print("| pixels | motion layers, first version | now | time saved | their matrix products alone | time outside "
          "the products, first / now | peak RSS while running, first / now | max abs difference |")
    for pixels in sizes:
        inputs = {p: torch.randn(2 * frames, layer.temporal_transformer.proj_in.weight.shape[0],
                                 pixels // 8 >> _level(p), pixels // 8 >> _level(p)) for p, layer in layers.items()}

        def ours():
            with video_layout(2):
                return [layer(inputs[p]) for p, layer in layers.items()]

        def first():
            return [_first_layer(layer, inputs[p], 2) for p, layer in layers.items()]
        products = _products_alone(layers, inputs)
        difference = max(float((a - b).abs().max()) for a, b in zip(ours(), first()))
        peaks = {}
        for name, layers_run in (("first", first), ("ours", ours)):
            with PeakRSS() as peak:
                layers_run()
            peaks[name] = peak.peak / 2**20
        times = {"first": [], "ours": [], "products": []}
        for _ in range(repeats):  # interleaved, so a busy machine slows all alike
            times["first"].append(median_time(first, 1))
            times["ours"].append(median_time(ours, 1))
            times["products"].append(median_time(products, 1))
        t_first, t_ours, t_products = (statistics.median(times[k]) for k in ("first", "ours", "products"))
        print(f"| {pixels}x{pixels} | {t_first:.3f} s | {t_ours:.3f} s | {100 * (1 - t_ours / t_first):.0f}% | "
              f"{t_products:.3f} s | {t_first - t_products:.3f} / {t_ours - t_products:.3f} s | "
              f"{peaks['first']:.0f} / {peaks['ours']:.0f} MiB | {difference:.1e} |")
    _precision_error(host, path, layers, frames)


def _precision_error(host, path, layers, frames):
    """How far reduced-precision layers land from fp32: RMS of the difference in what the layers add, ÷ its RMS."""
    module = host.pack.motion.motion_module.load_motion_module(path)
    video_layout = host.pack.motion.video_batch.video_layout
    print("| motion_precision | error of the motion layers' contribution vs fp32 (RMS ratio; median, worst layer) | time |")
    for dtype in (torch.bfloat16, torch.float16):
        reduced, errors = module.build_layers(dtype), []
        start = time.perf_counter()
        for position, layer in layers.items():
            x = torch.randn(2 * frames, layer.temporal_transformer.proj_in.weight.shape[0], 8 >> _level(position),
                            8 >> _level(position), generator=torch.Generator().manual_seed(0))
            with video_layout(2):
                exact, low = layer(x) - x, reduced[position](x) - x
            errors.append(float((low - exact).pow(2).mean().sqrt() / exact.pow(2).mean().sqrt()))
        print(f"| {dtype} | {statistics.median(errors):.2%}, {max(errors):.2%} | {time.perf_counter() - start:.2f} s |")


def render_rss(host, repeats, frames=16, sizes=(64, 128), variants=(False, True)):
    """Peak RSS of a whole render (load, sample, decode) in a fresh process, with and without the module."""
    import folder_paths
    from safetensors.torch import load_file
    checkpoint = stand_ins.sd15_checkpoint(host)
    motion_file = folder_paths.get_full_path("animatediff_models",
                                             stand_ins.motion_module(host, "AnimateLCM_sd15_t2v.safetensors"))
    module_fp32 = sum(t.numel() * 4 for t in load_file(motion_file).values())  # the module in a CPU UNet's dtype
    print(f"| pixels | render peak RSS, image model | with the motion module | added | "
          f"added ÷ module in fp32 ({module_fp32 / 2**30:.2f} GiB) |")
    for pixels in sizes:
        peaks = {False: float("nan")}
        for motion in variants:
            peaks[motion] = statistics.median(_render_in_fresh_process(checkpoint, pixels, frames, motion)
                                              for _ in range(repeats))
        added = peaks[True] - peaks[False]
        print(f"| {pixels}x{pixels} | {peaks[False] / 2**20:.0f} MiB | {peaks[True] / 2**20:.0f} MiB | "
              f"{added / 2**20:.0f} MiB | {added / module_fp32:.2f} |")


def _render_in_fresh_process(checkpoint, pixels, frames, motion):
    code = ("import json, resource, sys, torch; sys.path.insert(0, sys.argv[1]); import comfy_host, stand_ins\n"
            "h = comfy_host.start(); prompt = json.loads(sys.argv[2])\n"
            "stand_ins.sd15_checkpoint(h, prompt['1']['inputs']['ckpt_name'])  # linked into this host's folders\n"
            "stand_ins.motion_module(h, 'AnimateLCM_sd15_t2v.safetensors')\n"
            "h.run(prompt)\n"
            "print('RESULT', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)")
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox running through snow", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": pixels, "height": pixels, "batch_size": frames}},
        "5": {"class_type": "ALCM_Sampler", "inputs": {
            "model": ["7", 0] if motion else ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
            "latent_image": ["4", 0], "seed": 0, "steps": 4, "cfg": 1.5, "denoise": 1.0, "mode": "text-to-video"}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "8": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
    }
    if motion:
        prompt["9"] = {"class_type": "ALCM_LoadMotionModule",
                       "inputs": {"motion_module_name": "AnimateLCM_sd15_t2v.safetensors"}}
        prompt["7"] = {"class_type": "ALCM_ApplyMotionModule",
                       "inputs": {"model": ["1", 0], "motion_module": ["9", 0], "strength": 1.0}}
    run = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), json.dumps(prompt)],
                         capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"the render failed:\n{run.stderr[-3000:]}")
    peak = int(next(line for line in run.stdout.splitlines() if line.startswith("RESULT")).split()[1])
    return peak


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["motion-overhead", "motion-load", "sampler", "motion-layers", "render-rss"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=16, help="latent batch for the sampler comparison")
    parser.add_argument("--sizes", help="frame sizes in pixels, e.g. 64,128 (render-rss: 64,128; motion-layers: 64,256)")
    parser.add_argument("--motion-only", action="store_true", help="render-rss: only the renders with the module")
    args = parser.parse_args()
    torch.manual_seed(0)
    host = comfy_host.start()
    with torch.inference_mode():  # as ComfyUI's executor runs node code
        if args.what == "sampler":
            sampler(host, args.repeats, args.frames)
        elif args.what == "render-rss":
            render_rss(host, args.repeats, sizes=[int(p) for p in (args.sizes or "64,128").split(",")],
                       variants=(True,) if args.motion_only else (False, True))
        elif args.what == "motion-layers":
            motion_layers(host, args.repeats, sizes=[int(p) for p in (args.sizes or "64,256").split(",")])
        else:
            {"motion-overhead": motion_overhead, "motion-load": motion_load}[args.what](host, args.repeats)


if __name__ == "__main__":
    main()
