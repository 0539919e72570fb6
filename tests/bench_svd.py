"""Benchmark (not a test): AnimateLCM-SVD-xt's 4 steps against SVD-xt's usual 25, and the loader's memory.

    python tests/bench_svd.py sampling [--frames 8] [--size 64] [--repeats 2]
    python tests/bench_svd.py load [--full-size] [--keep]

sampling: the narrow random SVD UNet (the stand-in: SVD-xt's layout at 320 channels on every level), one
hand-made image conditioning and seed; AnimateLCM Sampler at 4 steps, cfg 1, against ComfyUI's default
SVD recipe (KSampler euler/karras, 25 steps, cfg 2.5 through Video Linear CFG Guidance min 1, as in its
example workflow). UNet evaluations count frames-batches through the UNet (a cond+uncond batch is two).
Runs interleaved, medians over repeats.
load: a random fp32 file in the released diffusers layout (narrow, 0.85 GB; --full-size: the real 6.1 GB),
loaded in a fresh process each way: the pack's loader, and ComfyUI's own path on the renamed state dict
(load_torch_file → rename → load_diffusion_model_state_dict). Peak RSS above the level before the load.
"""
import argparse
import json
import math
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_host  # noqa: E402
import stand_ins  # noqa: E402
from bench import PeakRSS  # noqa: E402


def conditioning(frames, side, seed=1):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(1, 4, side // 8, side // 8, generator=g)
    extra = {"motion_bucket_id": 80, "fps": 7, "augmentation_level": 0.02}
    embeds = torch.randn(1, 1, 1024, generator=g)
    return ([[embeds, {**extra, "concat_latent_image": image}]],
            [[torch.zeros_like(embeds), {**extra, "concat_latent_image": torch.zeros_like(image)}]])


def sampling(args):
    host = comfy_host.start()
    import comfy.sample
    import folder_paths
    from comfy_extras.nodes_video_model import VideoLinearCFGGuidance
    pack = host.pack
    path = folder_paths.get_full_path("diffusion_models", stand_ins.animatelcm_svd_unet(host))
    model = pack.svd.load.load_animatelcm_svd(path)
    positive, negative = conditioning(args.frames, args.size)
    latent = {"samples": torch.zeros(args.frames, 4, args.size // 8, args.size // 8)}
    passes = []
    model.model.diffusion_model.register_forward_hook(lambda m, a, out: passes.append(out.shape[0] // args.frames))

    def animatelcm():
        return pack.samplers.video_sampling.sample_video(model, positive, negative, latent, 0, 4, 1.0)

    svd_default = VideoLinearCFGGuidance().patch(model, 1.0)[0]

    def svd_xt():
        noise = comfy.sample.prepare_noise(latent["samples"], 0)
        return comfy.sample.sample(svd_default, noise, 25, 2.5, "euler", "karras", positive, negative,
                                   latent["samples"], seed=0, disable_pbar=True)

    runs = {"AnimateLCM-SVD-xt, 4 steps, cfg 1 (lcm)": animatelcm, "SVD-xt, 25 steps euler, cfg 2.5": svd_xt}
    times, evaluations = {name: [] for name in runs}, {}
    with torch.inference_mode():
        for _ in range(args.repeats):
            for name, run in runs.items():
                passes.clear()
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
                evaluations[name] = sum(passes)
    print(f"{args.frames} frames at {args.size}×{args.size}, narrow SVD UNet (212 M parameters), CPU fp32")
    print("| run | UNet evaluations | time |\n|---|---|---|")
    for name in runs:
        print(f"| {name} | {evaluations[name]} | {statistics.median(times[name]):.2f} s |")
    (fast, slow) = runs
    print(f"| ratio | {evaluations[slow] / evaluations[fast]:.1f}× fewer | "
          f"{statistics.median(times[slow]) / statistics.median(times[fast]):.1f}× faster |")


def write_random_safetensors(path, shapes, seed=0):
    """A fp32 safetensors file written tensor by tensor (the whole dict never in memory at once)."""
    header, offset = {}, 0
    for key, shape in shapes.items():
        size = 4 * math.prod(shape)
        header[key] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    generator = torch.Generator().manual_seed(seed)
    partial = path.with_suffix(".partial")
    with open(partial, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded)
        for key, shape in shapes.items():
            scale = 0.0 if key.endswith(".bias") else 1 / math.sqrt(math.prod(shape[1:]) if len(shape) > 1 else 1)
            f.write((torch.randn(shape, generator=generator) * scale).numpy().tobytes())
    partial.replace(path)


def load_once(path, way):
    host = comfy_host.start()
    import comfy.sd
    import comfy.utils
    pack = host.pack
    with torch.inference_mode(), PeakRSS() as peak:
        start = time.perf_counter()
        if way == "ours":
            model = pack.svd.load.load_animatelcm_svd(str(path))
        else:
            renamed = pack.svd.keys.to_comfy(comfy.utils.load_torch_file(str(path)))
            loader = getattr(comfy.sd, "load_diffusion_model_state_dict", None) or comfy.sd.load_unet_state_dict
            model = loader(renamed)
        seconds = time.perf_counter() - start
    params = sum(p.numel() * p.element_size() for p in model.model.diffusion_model.state_dict().values())
    print(json.dumps({"seconds": seconds, "peak": peak.peak, "model_bytes": params}))


def load(args):
    host = comfy_host.start()
    random_svd = __import__(host.pack.__name__ + ".stand_ins.random_svd", fromlist=["x"])
    config = random_svd.SVD_XT if args.full_size else random_svd.NARROW_SVD
    path = Path(stand_ins.CACHE_DIR) / f"bench_svd_{'full' if args.full_size else 'narrow'}_fp32.safetensors"
    if not path.exists():
        write_random_safetensors(path, random_svd.svd_unet_diffusers_shapes(config))
    size = path.stat().st_size
    print(f"file: {path.name}, {size / 2**30:.2f} GiB (fp32, diffusers layout)")
    print("| loader | load | peak RSS over baseline | ÷ file size |\n|---|---|---|---|")
    for way in ("ours",) if args.full_size and not args.both else ("ours", "comfy"):
        out = subprocess.run([sys.executable, __file__, "load-once", str(path), way], capture_output=True, text=True)
        if out.returncode:
            sys.exit(out.stderr[-3000:])
        result = json.loads(out.stdout.strip().splitlines()[-1])
        label = "Load AnimateLCM-SVD-xt" if way == "ours" else "ComfyUI's own (renamed state dict)"
        print(f"| {label} | {result['seconds']:.1f} s | {result['peak'] / 2**30:.2f} GiB | {result['peak'] / size:.2f} |")
    if not args.keep:
        path.unlink()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["sampling", "load", "load-once"])
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64, help="width and height in pixels")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--full-size", action="store_true", help="the real 6.1 GB layout (needs ~7 GB of RAM)")
    parser.add_argument("--both", action="store_true", help="with --full-size, ComfyUI's own path too (~13 GB)")
    parser.add_argument("--keep", action="store_true", help="keep the random file in the cache for another run")
    args = parser.parse_args()
    if args.what == "load-once":
        load_once(Path(args.args[0]), args.args[1])
    else:
        (sampling if args.what == "sampling" else load)(args)


if __name__ == "__main__":
    main()
