"""Benchmarks (not tests) of motion LoRAs and FreeInit: medians over repeats, ratios taken within one run.

    python tests/bench_motion_lora.py motion-lora   # load + merge of a 77 MB rank-64 v2 motion LoRA (pickled fp32)
                                                    # into the 1.7 GiB fp32 AnimateLCM module: time, peak RSS
    python tests/bench_motion_lora.py freeinit      # FreeInit (3 passes) against the plain sampler, interleaved
    python tests/bench_motion_lora.py freeinit --model tiny --frames 16   # the same on the tests' narrow UNet

Runs in the registry host (or COMFYUI_PATH) on random-weight full-size files in the real layouts.
"""
import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_host  # noqa: E402
import stand_ins  # noqa: E402
from bench import load_models  # noqa: E402

MODULE_FP32 = "animatelcm_t2v_random_v1_fp32.ckpt"  # the layout and dtype of AnimateLCM_sd15_t2v.ckpt (bench.py makes it too)


def _module_fp32():
    path = stand_ins.CACHE_DIR / MODULE_FP32
    if not path.exists():
        from fixture_motion import motion_state_dict
        partial = path.with_name(path.name + ".partial")
        torch.save(motion_state_dict("animatelcm_t2v", dtype=torch.float32), partial)
        partial.replace(path)
    return path


def motion_lora(host, repeats):
    import folder_paths
    lora = Path(folder_paths.get_full_path("animatediff_motion_lora", stand_ins.motion_lora(host, "v2_lora_ZoomIn.ckpt")))
    module = _module_fp32()
    runs = [_merge_in_fresh_process(module, lora) for _ in range(repeats)]
    load, merge, peak, new_bytes = (statistics.median(r[i] for r in runs) for i in range(4))
    size = lora.stat().st_size
    print("| motion LoRA | size | load (median) | merge (median) | peak RSS over the loaded module | new tensors |")
    print(f"| v2 rank 64, fp32 .ckpt, onto AnimateLCM t2v fp32 | {size / 2**20:.0f} MiB | {load:.2f} s | {merge:.2f} s "
          f"| {peak / 2**20:.0f} MiB | {new_bytes / 2**20:.0f} MiB (of a {module.stat().st_size / 2**30:.2f} GiB module) |")


def _merge_in_fresh_process(module, lora):
    # the module is loaded (memory-mapped) before measuring, as it is when the LoRA node runs
    code = ("import sys, time, torch; sys.path.insert(0, sys.argv[3]); import bench, comfy_host; h = comfy_host.start()\n"
            "engine = h.pack.motion.motion_lora\n"
            "m = h.pack.motion.motion_module.load_motion_module(sys.argv[1])\n"
            "with torch.inference_mode(), bench.PeakRSS() as rss:\n"
            "    start = time.perf_counter(); lora = engine.load_motion_lora(sys.argv[2]); loaded = time.perf_counter()\n"
            "    out, _ = engine.apply_motion_lora(m, lora, 1.0); done = time.perf_counter()\n"
            "new = sum(v.numel() * v.element_size() for k, v in out.weights.items() if v is not m.weights[k])\n"
            "print('RESULT', loaded - start, done - loaded, rss.peak, new)")
    out = subprocess.run([sys.executable, "-c", code, str(module), str(lora), str(Path(__file__).parent)],
                         capture_output=True, text=True, check=True).stdout
    _, load, merge, peak, new = next(l for l in out.splitlines() if l.startswith("RESULT")).split()
    return float(load), float(merge), int(peak), int(new)


def _tiny_models(host):
    """The tests' narrow SD1.5-layout UNet (32/64/128 channels) and a matching AnimateLCM module: the
    re-initialisation's share of the time is largest with a small UNet."""
    import tempfile
    from fixture_models import TINY_CHANNELS, tiny_sd15_model
    from fixture_motion import motion_state_dict, save_safetensors
    path = Path(tempfile.mkdtemp()) / "animatelcm_tiny.safetensors"
    save_safetensors(motion_state_dict("animatelcm_t2v", TINY_CHANNELS), path)
    return tiny_sd15_model(), host.pack.motion.motion_module.load_motion_module(str(path))


def freeinit(host, repeats, frames, iterations, model_size):
    import comfy.model_management
    if model_size == "full":
        model, clip, motion = load_models(host)
        cond = clip.encode_from_tokens(clip.tokenize("a lighthouse on a cliff"), return_pooled=True)
        positive = [[cond[0], {"pooled_output": cond[1]}]]
        negative = [[torch.zeros_like(cond[0]), {"pooled_output": cond[1]}]]
        side = 8  # 64x64 pixels
    else:
        model, motion = _tiny_models(host)
        positive, negative = [[torch.randn(1, 77, 768), {}]], [[torch.zeros(1, 77, 768), {}]]
        side = 32  # 256x256 pixels
    animated = host.pack.motion.injection.animate(model, motion)
    latent = {"samples": torch.zeros(frames, 4, side, side)}
    options = host.pack.samplers.freeinit.FreeInit(iterations)
    sample_video = host.pack.samplers.video_sampling.sample_video

    def run(freeinit_options):
        start = time.perf_counter()
        with torch.inference_mode():
            sample_video(animated, positive, negative, latent, 0, 4, 1.5, freeinit=freeinit_options)
        return time.perf_counter() - start

    comfy.model_management.load_models_gpu([animated])
    run(None)  # warm-up
    plain, with_freeinit = [], []
    for _ in range(repeats):  # interleaved, so a busy machine slows both alike
        plain.append(run(None))
        with_freeinit.append(run(options))
    # what FreeInit adds besides the passes: the re-initialisation (3-D FFTs) of a 16-frame 512x512 latent
    engine = host.pack.samplers.freeinit
    x = torch.randn(16, 4, 64, 64)
    lpf = engine.low_pass_filter(16, 64, 64, options)
    start = time.perf_counter()
    for _ in range(10):
        engine.reinitialised_noise(x, x, x, 14.6, lpf)
    reinit = (time.perf_counter() - start) / 10
    tp, tf = statistics.median(plain), statistics.median(with_freeinit)
    what = "SD1.5 + motion module" if model_size == "full" else "narrow SD1.5-layout UNet (32/64/128 ch) + its motion module"
    print(f"| run ({frames} frames, {8 * side}x{8 * side}, 4 steps, cfg 1.5, {what}, CPU) | time (median) |")
    print(f"| AnimateLCM Sampler | {tp:.2f} s |")
    print(f"| with FreeInit, {iterations} passes | {tf:.2f} s |")
    print(f"| ratio (ideal {iterations}.00) | {tf / tp:.2f} |")
    print(f"| one re-initialisation, 16 frames at 512x512 (64x64 latents) | {1000 * reinit:.0f} ms |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["motion-lora", "freeinit"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=4, help="latent batch for the FreeInit comparison")
    parser.add_argument("--iterations", type=int, default=3, help="FreeInit passes")
    parser.add_argument("--model", choices=["full", "tiny"], default="full", help="FreeInit: full-size SD1.5 stand-in "
                        "(64x64 px) or the tests' narrow UNet (256x256 px)")
    args = parser.parse_args()
    host = comfy_host.start()
    if args.what == "motion-lora":
        motion_lora(host, args.repeats)
    else:
        with torch.inference_mode():
            freeinit(host, args.repeats, args.frames, args.iterations, args.model)


if __name__ == "__main__":
    main()
