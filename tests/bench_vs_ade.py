"""The whole text-to-video graph against AnimateDiff-Evolved, in one real ComfyUI server (a benchmark, not a test).

    python tests/bench_vs_ade.py                       # 64x64 and 256x256, 3 repeats, fresh-server peak RSS
    python tests/bench_vs_ade.py --sizes 64 --repeats 5 --no-rss

ComfyUI's own main.py serves this pack and AnimateDiff-Evolved (ADE) side by side, on the same random-weight
full-size SD1.5 checkpoint and AnimateLCM motion module (tests' stand-ins), fp32 on the CPU, 16 frames, 4 steps,
cfg 1.5. Each graph is queued through /prompt as a user's would be, with a new seed each time (so the sampler
runs again and the loaders answer from ComfyUI's cache), and the sampler node is timed from the server's own
websocket messages (from its `executing` message to the next node's). The four graphs:

    plain, core        CheckpointLoader -> KSampler (lcm, simple)                  the image model, ADE's baseline
    plain, ours        CheckpointLoader -> AnimateLCM Sampler                       the image model, our baseline
    AnimateDiff-Evolved  Load AnimateDiff Model -> Apply (simple) -> Use Evolved Sampling with a Raw Sigma
                       Schedule (sqrt_linear 0.00085/0.012, lcm, 100 original timesteps: AnimateLCM's official
                       schedule; the helper default "autoselect" would pick scaled-linear betas) -> KSampler (lcm,
                       simple: timesteps 999/749/499/249, the official ones)
    ours               Load Motion Module -> Apply Motion Module -> AnimateLCM Sampler

Temporal overhead = a stack's sampler time minus its own plain baseline's: what the motion module costs there.
The graphs run in rotation (a busy machine slows all alike) and each figure is a median over the repeats.
The floor is the motion layers' matrix products alone at their real shapes (4 UNet calls, 2 videos of
16 frames each), timed in this process: no implementation of the layers can take less.
Fresh-server peak RSS: each graph once per size in a server of its own (VmHWM of the server process).
With --tuned-heap the servers run with three glibc settings that keep a worker thread's freed heap pages in the
process (TUNED_HEAP below; what they showed: docs/benchmarks.md); without it, with glibc's defaults, as a user's
server runs.
With --module-times the server also loads tests/module_times.py, which times the UNet's blocks and the motion
layers (ours: MotionLayer, ADE's: VanillaTemporalModule) inside the graph: their own time against the floor,
and how much slower the UNet's own ResBlocks run beside them than in the plain baseline; and the page faults
during UNet calls, in all and inside the motion layers, ResBlocks and SpatialTransformers (a fault is a page
taken fresh from the OS: allocator churn, counted without a timing's noise).

ADE is never part of this repository: clone it yourself into a scratch folder, e.g.
    git clone https://github.com/Kosinkadink/ComfyUI-AnimateDiff-Evolved ~/.cache/animatelcm-fast/AnimateDiff-Evolved
and pass --ade (or ALCM_ADE_PATH). Without it, its rows are left out with a message saying so.
"""
import argparse
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402
import comfy_host  # noqa: E402
import comfy_server  # noqa: E402
import stand_ins  # noqa: E402

DEFAULT_ADE = Path.home() / ".cache" / "animatelcm-fast" / "AnimateDiff-Evolved"
MOTION_FILE = "AnimateLCM_sd15_t2v.safetensors"
FRAMES, STEPS, CFG = 16, 4, 1.5
SAMPLER = "sampler"  # the sampler node's id in every graph
# --tuned-heap: glibc settings that keep freed heap pages in the server. ComfyUI samples in a worker thread, whose
# allocations glibc serves from 64 MB heaps: it unmaps a heap that empties (when the heap before it has room) and
# trims one whose free top passes the trim threshold, so buffers freed between UNet calls come back as fresh
# pages, a page fault each. A 64 MB top pad (a heap is unmapped only while the one before it has that much room,
# which a 64 MB heap never has) and a trim threshold no heap reaches keep those pages. Setting either turns off
# glibc's sliding mmap threshold, so that one is fixed at 32 MB: where it slides to beside a UNet, and its maximum.
TUNED_HEAP = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TOP_PAD_": str(64 * 2**20),
              "MALLOC_TRIM_THRESHOLD_": str(4 * 2**30)}


def as_settings(env):
    """Environment variables as they are typed on a command line: NAME=value NAME=value."""
    return " ".join(f"{name}={value}" for name, value in env.items())


def graph(kind, checkpoint, pixels, seed):
    """API-format prompt of one configuration."""
    prompt = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox running through snow", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, low quality", "clip": ["ckpt", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": pixels, "height": pixels, "batch_size": FRAMES}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": [SAMPLER, 0], "vae": ["ckpt", 2]}},
        "preview": {"class_type": "PreviewImage", "inputs": {"images": ["decode", 0]}},
    }
    common = {"positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0], "seed": seed,
              "steps": STEPS, "cfg": CFG, "denoise": 1.0}
    core = {"class_type": "KSampler", "inputs": {**common, "sampler_name": "lcm", "scheduler": "simple"}}
    ours = {"class_type": "ALCM_Sampler", "inputs": {**common, "mode": "text-to-video"}}
    if kind == "plain, core":
        prompt[SAMPLER] = core
        core["inputs"]["model"] = ["ckpt", 0]
    elif kind == "plain, ours":
        prompt[SAMPLER] = ours
        ours["inputs"]["model"] = ["ckpt", 0]
    elif kind == "ours":
        prompt["motion"] = {"class_type": "ALCM_LoadMotionModule", "inputs": {"motion_module_name": MOTION_FILE}}
        prompt["apply"] = {"class_type": "ALCM_ApplyMotionModule",
                           "inputs": {"model": ["ckpt", 0], "motion_module": ["motion", 0], "strength": 1.0}}
        prompt[SAMPLER] = ours
        ours["inputs"]["model"] = ["apply", 0]
    elif kind == "AnimateDiff-Evolved":
        prompt[SAMPLER] = core
        core["inputs"]["model"] = ade_model(prompt, ["ckpt", 0], MOTION_FILE)
    else:
        raise ValueError(kind)
    return prompt


def ade_model(prompt, model, motion_file, context_options=None, noise_type="default"):
    """Adds AnimateDiff-Evolved's Gen2 nodes to `prompt` around `model` (a link) and returns the link of its MODEL:
    Load AnimateDiff Model -> Apply (simple) -> Use Evolved Sampling with a Raw Sigma Schedule, the official
    AnimateLCM schedule (see the module's docstring); `context_options`, a link to ADE's context options."""
    prompt["ade_load"] = {"class_type": "ADE_LoadAnimateDiffModel", "inputs": {"model_name": motion_file}}
    prompt["ade_apply"] = {"class_type": "ADE_ApplyAnimateDiffModelSimple", "inputs": {"motion_model": ["ade_load", 0]}}
    prompt["ade_sigmas"] = {"class_type": "ADE_RawSigmaSchedule", "inputs": {
        "raw_beta_schedule": "sqrt_linear", "linear_start": 0.00085, "linear_end": 0.012, "sampling": "lcm",
        "lcm_original_timesteps": 100, "zsnr": False}}
    prompt["ade_settings"] = {"class_type": "ADE_AnimateDiffSamplingSettings", "inputs": {
        "batch_offset": 0, "noise_type": noise_type, "seed_gen": "comfy", "seed_offset": 0,
        "sigma_schedule": ["ade_sigmas", 0]}}
    prompt["ade_model"] = {"class_type": "ADE_UseEvolvedSampling", "inputs": {
        "model": model, "beta_schedule": "autoselect", "m_models": ["ade_apply", 0], "sample_settings": ["ade_settings", 0],
        **({"context_options": context_options} if context_options else {})}}
    return ["ade_model", 0]


def run(server, prompt):
    """Run `prompt` on the server through the renderer's own client; seconds per node, from the server's
    websocket messages (a node runs from its `executing` message to the next one's)."""
    client = importlib.import_module(comfy_host.start().pack.__name__ + ".pipeline.server_client")
    started = []
    client.ServerRunner(server.url, server.output_dir).render(
        prompt, on_node=lambda node: started.append((node, time.perf_counter())))
    started.append((None, time.perf_counter()))
    return {node: end - start for (node, start), (_, end) in zip(started, started[1:])}


def peak_rss(server):
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc: peak RSS needs Linux")


def start_server(comfyui_path, ade, heap, module_times=None):
    """heap: environment of the server's allocator ({} for glibc's defaults, as a user's server runs);
    module_times: a file for tests/module_times.py to write its totals to (None: it is not loaded)."""
    base = Path(tempfile.mkdtemp(prefix="alcm-bench-ade-"))
    other = ([ade] if ade else []) + ([Path(__file__).with_name("module_times.py")] if module_times else [])
    env = {**heap, **({"ALCM_MODULE_TIMES": str(module_times)} if module_times else {})}
    server = comfy_server.ComfyServer(comfyui_path, base, other_custom_nodes=other, return_freed_heap=False,
                                       extra_env=env)
    checkpoint = stand_ins.sd15_checkpoint(server)
    stand_ins.motion_module(server, MOTION_FILE)
    return server, checkpoint


def timings(comfyui_path, ade, heap, kinds, sizes, repeats, with_module_times=False):
    """{(kind, pixels): median sampler seconds}, all kinds in one server, rotated; and {(kind, pixels): {module
    class: median seconds per sampler run}} (empty unless `with_module_times`)."""
    totals_file = Path(tempfile.mkdtemp(prefix="alcm-module-times-")) / "totals.json" if with_module_times else None
    server, checkpoint = start_server(comfyui_path, ade, heap, totals_file)

    def totals():
        return json.loads(totals_file.read_text()) if totals_file and totals_file.exists() else {}
    try:
        if ade and "ADE_LoadAnimateDiffModel" not in server.get("/object_info"):
            raise SystemExit(f"AnimateDiff-Evolved at {ade} did not load in the server:\n{server.log_tail()}")
        medians, module_times = {}, {}
        for pixels in sizes:
            for kind in kinds:  # warm-up: loads, layer builds, first-call allocations
                run(server, graph(kind, checkpoint, pixels, seed=0))
            times, modules = {kind: [] for kind in kinds}, {kind: [] for kind in kinds}
            for repeat in range(repeats):
                order = kinds[repeat % len(kinds):] + kinds[:repeat % len(kinds)]
                for kind in order:
                    before = totals()
                    seconds = run(server, graph(kind, checkpoint, pixels, seed=1 + repeat))[SAMPLER]
                    times[kind].append(seconds)
                    modules[kind].append({name: total - before.get(name, 0.0) for name, total in totals().items()})
                    print(f"  {pixels}x{pixels} {kind}: {seconds:.2f} s", flush=True)
            medians.update({(kind, pixels): statistics.median(t) for kind, t in times.items()})
            if with_module_times:
                for kind, runs in modules.items():
                    module_times[(kind, pixels)] = {name: statistics.median(r.get(name, 0.0) for r in runs)
                                                    for name in set().union(*runs)}
        return medians, module_times
    finally:
        server.stop()


def fresh_peaks(comfyui_path, ade, heap, kinds, sizes):
    """{(kind, pixels): peak RSS of a fresh server after running the graph once at each size, smallest first}."""
    peaks = {}
    for kind in kinds:
        server, checkpoint = start_server(comfyui_path, ade if kind == "AnimateDiff-Evolved" else None, heap)
        try:
            for pixels in sorted(sizes):
                run(server, graph(kind, checkpoint, pixels, seed=0))
                peaks[(kind, pixels)] = peak_rss(server)
                print(f"  fresh server, {kind}, {pixels}x{pixels}: peak {peaks[(kind, pixels)] / 2**20:.0f} MiB", flush=True)
        finally:
            server.stop()
    return peaks


def floor(host, sizes, repeats):
    """{pixels: (seconds, GFLOP)} of the motion layers' matrix products for one sampler run (STEPS UNet calls)."""
    import folder_paths
    path = folder_paths.get_full_path("animatediff_models", stand_ins.motion_module(host, MOTION_FILE))
    layers = host.pack.motion.motion_module.load_motion_module(path).build_layers(torch.float32)
    result = {}
    for pixels in sizes:
        inputs = {p: torch.empty(2 * FRAMES, layer.temporal_transformer.proj_in.weight.shape[0],
                                 pixels // 8 >> bench._level(p), pixels // 8 >> bench._level(p)) for p, layer in layers.items()}
        flops = 0
        for position, layer in layers.items():
            frames_total, channels, height, width = inputs[position].shape
            tokens = frames_total * height * width
            flops += sum(2 * tokens * m.weight.shape[0] * m.weight.shape[1] for m in layer.modules()
                         if isinstance(m, torch.nn.Linear))
        products = bench._products_alone(layers, inputs)
        products()
        seconds = STEPS * bench.median_time(products, repeats)
        result[pixels] = (seconds, STEPS * flops / 1e9)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="64,256", help="frame sizes in pixels (default 64,256)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ade", default=os.environ.get("ALCM_ADE_PATH", str(DEFAULT_ADE)),
                        help=f"an AnimateDiff-Evolved checkout (default $ALCM_ADE_PATH or {DEFAULT_ADE})")
    parser.add_argument("--no-rss", action="store_true", help="skip the fresh-server peak RSS runs")
    parser.add_argument("--rss-only", action="store_true", help="only the fresh-server peak RSS runs (no timing)")
    parser.add_argument("--only", action="append", metavar="GRAPH",
                        help='a graph to run, by its name in the table (repeatable: --only ours --only "plain, ours"; '
                             "default: all four)")
    parser.add_argument("--module-times", action="store_true",
                        help="also time the motion layers and the UNet's blocks inside the graph (tests/module_times.py)")
    parser.add_argument("--tuned-heap", action="store_true",
                        help="start the servers with glibc settings that keep a worker thread's freed heap pages: "
                             + as_settings(TUNED_HEAP))
    args = parser.parse_args()
    sizes = [int(p) for p in args.sizes.split(",")]
    ade = Path(args.ade).expanduser()
    kinds = ["plain, core", "plain, ours", "AnimateDiff-Evolved", "ours"]
    if not (ade / "__init__.py").is_file():
        print(f"!! No AnimateDiff-Evolved at {ade}: its rows are left out. Clone it there (never into this repository):\n"
              f"!!   git clone https://github.com/Kosinkadink/ComfyUI-AnimateDiff-Evolved {ade}", flush=True)
        ade, kinds = None, [k for k in kinds if k != "AnimateDiff-Evolved"]
    if args.only:
        unknown = set(args.only) - set(kinds)
        if unknown:
            raise SystemExit(f"--only: no graph named {', '.join(map(repr, sorted(unknown)))} here; the graphs: "
                             f"{', '.join(map(repr, kinds))}")
        kinds = [k for k in kinds if k in args.only]
    heap = TUNED_HEAP if args.tuned_heap else {}
    inherited = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_") or k == "GLIBC_TUNABLES"}
    host = comfy_host.start()  # stand-ins and the floor; the server is another process
    print(f"ComfyUI: {host.description}; AnimateDiff-Evolved: {ade or 'absent'}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {FRAMES} frames, {STEPS} steps, cfg {CFG}, fp32 CPU; server heap: "
          f"{as_settings({**inherited, **heap}) or 'glibc defaults'}", flush=True)
    if args.rss_only:
        fresh_peaks(host.comfyui_path, ade, heap, kinds, sizes)
        return
    medians, module_times = timings(host.comfyui_path, ade, heap, kinds, sizes, args.repeats, args.module_times)
    peaks = {} if args.no_rss else fresh_peaks(host.comfyui_path, ade, heap, kinds, sizes)
    with torch.inference_mode():
        floors = floor(host, sizes, args.repeats)
    baseline = {"AnimateDiff-Evolved": "plain, core", "ours": "plain, ours"}
    print(f"\n| graph | pixels | sampler node (median of {args.repeats}) | temporal overhead | "
          "overhead / ADE's | overhead / floor | fresh-server peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for pixels in sizes:
        for kind in kinds:
            seconds = medians[(kind, pixels)]
            plain = medians.get((baseline.get(kind), pixels))  # absent for the plain graphs, or left out by --only
            overhead = seconds - plain if plain is not None else None
            ade_overhead = (medians[("AnimateDiff-Evolved", pixels)] - medians[("plain, core", pixels)]
                            if ("AnimateDiff-Evolved", pixels) in medians else None)
            peak = peaks.get((kind, pixels))
            print(f"| {kind} | {pixels}x{pixels} | {seconds:.2f} s | "
                  f"{f'{overhead:.2f} s' if overhead is not None else '—'} | "
                  f"{f'{overhead / ade_overhead:.2f}x' if overhead is not None and ade_overhead else '—'} | "
                  f"{f'{overhead / floors[pixels][0]:.2f}x' if overhead is not None else '—'} | "
                  f"{f'{peak / 2**20:.0f} MiB' if peak else '—'} |")
    for pixels, (seconds, gflop) in floors.items():
        print(f"floor at {pixels}x{pixels}: the motion layers' matrix products, {gflop:.0f} GFLOP in {STEPS} UNet calls, "
              f"{seconds:.2f} s alone ({gflop / seconds:.0f} GFLOPS on this machine)")
    if module_times:
        print_module_times(module_times, kinds, sizes, floors, baseline)


def print_module_times(module_times, kinds, sizes, floors, baseline):
    """Inside the graph: the motion layers' own time (against the floor) and what the UNet's blocks around them
    cost more than in the stack's plain baseline, and the page faults in each (medians per sampler run)."""
    print("\n| graph | pixels | UNet calls | motion layers | motion layers / floor | ResBlocks | SpatialTransformers | "
          "Upsamples | UNet minus motion layers, more than its plain baseline | page faults: UNet calls (motion layers / "
          "ResBlocks / SpatialTransformers) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for pixels in sizes:
        for kind in kinds:
            t = module_times[(kind, pixels)]
            layers = t.get("MotionLayer", 0.0) + t.get("VanillaTemporalModule", 0.0)
            plain = module_times.get((baseline.get(kind), pixels))
            rest = f"{t['UNetModel'] - layers - plain['UNetModel']:+.2f} s" if plain else "—"
            faults = {name: t.get(f"page faults {name}", 0) / 1e6 for name in  # module_times.py's keys
                      ("UNetModel", "MotionLayer", "VanillaTemporalModule", "ResBlock", "SpatialTransformer")}
            fault_counts = (f"{faults['UNetModel']:.2f} M ({faults['MotionLayer'] + faults['VanillaTemporalModule']:.2f} / "
                            f"{faults['ResBlock']:.2f} / {faults['SpatialTransformer']:.2f})")
            print(f"| {kind} | {pixels}x{pixels} | {t.get('UNetModel', 0.0):.2f} s | "
                  f"{f'{layers:.2f} s' if layers else '—'} | {f'{layers / floors[pixels][0]:.2f}x' if layers else '—'} | "
                  f"{t.get('ResBlock', 0.0):.2f} s | {t.get('SpatialTransformer', 0.0):.2f} s | "
                  f"{t.get('Upsample', 0.0):.2f} s | {rest} | {fault_counts} |")


if __name__ == "__main__":
    main()
