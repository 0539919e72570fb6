"""Benchmark (not a test): applying LoRAs to the full SD1.5 UNet, ours against core LoraLoader.

    python tests/bench_lora.py [--repeats 3]

Two steps make up "applying" a LoRA in ComfyUI: the node builds the patches, and the weights are
patched when the model is loaded for sampling. Both are timed (medians) with the extra peak RSS.
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
from fixture_lora import write_kohya_lora  # noqa: E402

FILES = {  # name: (rank, alpha, text encoder, attention + feed-forward + proj layers)
    "spatial_rank64.safetensors": (64, None, False, True),
    "spatial_rank160.safetensors": (160, None, False, True),
    "style_rank16.safetensors": (16, 8.0, True, False),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    host = comfy_host.start()
    import comfy.model_management
    import comfy.sd
    import folder_paths
    folder = host.models_dir("loras")
    for name, (rank, alpha, te, ff) in FILES.items():
        if not (folder / name).exists():
            write_kohya_lora(folder / name, rank=rank, alpha=alpha, text_encoder=te, feed_forward=ff)
    with torch.inference_mode():
        ckpt = folder_paths.get_full_path("checkpoints", stand_ins.sd15_checkpoint(host))
        model, clip = comfy.sd.load_checkpoint_guess_config(ckpt, output_vae=False, output_clip=True)[:2]
        import nodes as core_nodes
        ours = host.pack.nodes.lora_nodes
        print("| file | size | loader | node (median) | patching at load (median) | peak extra RSS |")
        for name in FILES:
            size = (folder / name).stat().st_size / 2**20
            # a fresh LoraLoader each time: its own one-file cache would skip the read that ours does
            loaders = {"core LoraLoader": lambda: core_nodes.LoraLoader().load_lora(model, clip, name, 1.0, 1.0)[0],
                       "ours": (lambda: ours.LoadAnimateLCMLoRA().load(model, name, 1.0)[0]) if "spatial" in name
                       else (lambda: ours.LoadStyleLoRA().load(model, clip, name, 1.0, 1.0)[0])}
            for label, load in loaders.items():
                node_times, patch_times, peaks = [], [], []
                for _ in range(args.repeats):
                    comfy.model_management.unload_all_models()
                    with PeakRSS() as rss:
                        start = time.perf_counter()
                        patched = load()
                        middle = time.perf_counter()
                        comfy.model_management.load_models_gpu([patched])
                        end = time.perf_counter()
                    node_times.append(middle - start)
                    patch_times.append(end - middle)
                    peaks.append(rss.peak)
                print(f"| {name} | {size:.0f} MiB | {label} | {statistics.median(node_times):.2f} s | "
                      f"{statistics.median(patch_times):.2f} s | {statistics.median(peaks) / 2**20:.0f} MiB |")


if __name__ == "__main__":
    main()
