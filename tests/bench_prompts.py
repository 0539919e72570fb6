"""Benchmark (not a test): prompt travel's cost. Prints markdown table rows.

    python tests/bench_prompts.py                      # everything below
    python tests/bench_prompts.py --per-frame 32       # time 32 one-per-frame encodes and scale to 256

1. Encoding a 256-frame schedule with 8 prompts (a keyframe every 32 frames) with the Prompt Schedule (each
   distinct prompt encoded once, then blends) against 8 plain CLIP encodes and against one CLIP encode per
   frame (what a per-frame prompt list costs); medians of 3 (the per-frame encodes: once).
2. The CONDITIONING's memory for 256 and 1,024 frames (its tensors' bytes).
3. A 64-frame render, 64x64 px, 4 steps, cfg 1.5, Context Windows 16/4 uniform pyramid + FreeNoise: a 4-keyframe
   schedule against one prompt (CLIP Text Encode), runs interleaved (ABBAAB), medians of 3; the time includes
   the prompts' encoding.
The full-size SD1.5 stand-in (its CLIP-L and UNet) and the AnimateLCM t2v motion module stand-in, in the
registry host (or COMFYUI_PATH), like the tests.
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

STORY = ["a red fox sleeping in the snow", "a red fox waking up", "a red fox stretching", "a red fox walking",
         "a red fox running through snow", "a red fox jumping over a log", "a red fox in a pine forest",
         "a red fox at sunset on a hill"]


def timed(run):
    start = time.perf_counter()
    out = run()
    return time.perf_counter() - start, out


def median_of(repeats, run):
    return statistics.median(timed(run)[0] for _ in range(repeats))


def load(host):
    import comfy.sd
    import folder_paths
    path = folder_paths.get_full_path("checkpoints", stand_ins.sd15_checkpoint(host))
    model, clip, _, _ = comfy.sd.load_checkpoint_guess_config(path, output_vae=False, output_clip=True)
    return model, clip


def encoding(pack, clip, per_frame, repeats):
    conditioning = pack.prompts.conditioning
    text = "\n".join(f"{32 * k}: {prompt}" for k, prompt in enumerate(STORY))
    conditioning.encode(clip, "warm-up")
    ours = median_of(repeats, lambda: conditioning.schedule_conditioning(clip, text, 256))
    eight = median_of(repeats, lambda: [conditioning.encode(clip, p) for p in STORY])
    seconds, _ = timed(lambda: [conditioning.encode(clip, STORY[f * 8 // 256] + f", frame {f}")
                                for f in range(per_frame)])
    every_frame = seconds * 256 / per_frame
    how = "" if per_frame == 256 else f" (measured on {per_frame}, scaled)"
    print("\n| encoding a 256-frame schedule, 8 prompts | time | vs Prompt Schedule |")
    print("|---|---|---|")
    print(f"| Prompt Schedule (8 encodes + per-frame blends) | {ours:.2f} s | 1.00x |")
    print(f"| 8 CLIP Text Encodes alone | {eight:.2f} s | {eight / ours:.2f}x |")
    print(f"| one CLIP encode per frame (256){how} | {every_frame:.1f} s | {every_frame / ours:.1f}x |")


def memory(pack, clip):
    print("\n| frames | CONDITIONING (cond + pooled) | per frame |")
    print("|---|---|---|")
    text = "\n".join(f"{32 * k}: {prompt}" for k, prompt in enumerate(STORY))
    for frames in (256, 1024):
        [[cond, extra]] = pack.prompts.conditioning.schedule_conditioning(clip, text, frames).positive
        size = cond.numel() * cond.element_size() + extra["pooled_output"].numel() * extra["pooled_output"].element_size()
        print(f"| {frames} | {size / 2**20:.1f} MiB ({cond.dtype}, {tuple(cond.shape)}) | {size / frames / 1024:.0f} KiB |")


def render(host, pack, model, clip, repeats):
    import comfy.model_management
    import folder_paths
    import nodes
    motion = folder_paths.get_full_path("animatediff_models", stand_ins.motion_module(host, "AnimateLCM_sd15_t2v.ckpt"))
    animated = pack.motion.injection.animate(model, pack.motion.motion_module.load_motion_module(motion))
    windowed = pack.nodes.context_nodes.ContextWindows().apply(animated, 16, 4, "uniform", False, "pyramid", True)[0]
    comfy.model_management.load_models_gpu([windowed])
    latent = {"samples": torch.zeros(64, 4, 8, 8)}
    schedule = "\n".join(f"{16 * k}: {prompt}" for k, prompt in enumerate(STORY[::2]))
    negative = nodes.CLIPTextEncode().encode(clip, "blurry, low quality")[0]

    def run(variant):
        if variant == "schedule":
            positive = pack.nodes.prompt_nodes.PromptSchedule().encode(clip, schedule, "", "", 64, 0, "linear")[0]
        else:
            positive = nodes.CLIPTextEncode().encode(clip, STORY[0])[0]
        return pack.samplers.video_sampling.sample_video(windowed, positive, negative, latent, 0, 4, 1.5)
    # CPU time (all threads) beside wall time: on a shared machine the wall time mostly measures the neighbours
    times = {"one prompt": [], "schedule": []}
    for r in range(repeats):
        for variant in (("one prompt", "schedule") if r % 2 == 0 else ("schedule", "one prompt")):
            cpu = time.process_time()
            wall, _ = timed(lambda: run(variant))
            times[variant].append((wall, time.process_time() - cpu))
            print(f"  {variant}: {wall:.1f} s wall, {times[variant][-1][1]:.1f} s CPU", file=sys.stderr, flush=True)
    (one, one_cpu), (travel, travel_cpu) = ([statistics.median(t[i] for t in times[v]) for i in (0, 1)]
                                            for v in ("one prompt", "schedule"))
    print(f"\n| 64 frames, 64x64, 4 steps, cfg 1.5, windows 16/4 | wall time (median of {repeats}, with encoding) "
          "| CPU time (all threads) |")
    print("|---|---|---|")
    print(f"| one prompt (CLIP Text Encode) | {one:.1f} s | {one_cpu:.1f} s |")
    print(f"| 4-keyframe Prompt Schedule | {travel:.1f} s | {travel_cpu:.1f} s |")
    print(f"| extra time (goal: under 2%) | {100 * (travel - one) / one:+.1f}% | {100 * (travel_cpu - one_cpu) / one_cpu:+.1f}% |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-frame", type=int, default=256, help="one-per-frame encodes to time (scaled to 256)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-render", action="store_true")
    args = parser.parse_args()
    host = comfy_host.start()
    with torch.inference_mode():
        model, clip = load(host)
        encoding(host.pack, clip, args.per_frame, args.repeats)
        memory(host.pack, clip)
        if not args.skip_render:
            render(host, host.pack, model, clip, args.repeats)


if __name__ == "__main__":
    main()
