"""The keyframe workflows: what SparseCtrl adds to a render, against one ControlNet pass and against AnimateDiff-Evolved
+ Advanced-ControlNet, and the 64-frame workflow's peak RSS against the 16-frame one's (a benchmark, not a test).

    python tests/bench_sparsectrl.py                    # every graph at 128x128, once each
    python tests/bench_sparsectrl.py --size 64 --repeats 2 --only "ours, SparseCtrl"
    python tests/bench_sparsectrl.py --per-pass --size 64 --repeats 5   # one network pass, in this process

Each graph runs in a ComfyUI server of its own (main.py, fp32 on the CPU, glibc's default heap, as a user's server
runs), on the tests' full-size random-weight stand-ins (SD1.5 checkpoint, AnimateLCM motion module and spatial LoRA,
an RGB SparseCtrl in the released layout, a Canny ControlNet in ControlNet 1.1's layout) and two gradient pictures as
the keyframes. The figures: the sampler node's seconds (from the server's own messages; ours encodes the RGB
keyframes inside it, Advanced-ControlNet in its preprocessor node, whose seconds are given beside), and the server's
peak RSS (VmHWM: the whole graph). The graphs, 16 frames unless named:

    ours, no SparseCtrl          workflows/animatelcm_keyframes.json with the prompts straight into the sampler
    ours, SparseCtrl             workflows/animatelcm_keyframes.json as shipped (4 steps, cfg 1.5; keyframes 0, -1)
    ours, a ControlNet           the same with core's Apply ControlNet (the Canny stand-in, the first picture as
                                 its hint for every frame) instead: one ControlNet pass per step, the goal
    ADE, no SparseCtrl           AnimateDiff-Evolved's model (the official AnimateLCM schedule as bench_vs_ade.py
                                 sets it; core KSampler lcm) on the same prompts
    ADE + ACN SparseCtrl         the same with Advanced-ControlNet's SparseCtrl: its loader (index method "0, 15"),
                                 RGB preprocessor (the VAE, the latent's size) and Apply Advanced ControlNet
    ours, SparseCtrl, 64 frames  workflows/animatelcm_keyframes_long.json as shipped (Context Windows 16/4, four
                                 keyframes at 0, 0.33, 0.67, 1.0, Save Video from the latents)

ADE and ACN are never part of this repository: clone them into a scratch folder and pass --ade / --acn (or
ALCM_ADE_PATH / ALCM_ACN_PATH); bench_vs_ade.py and bench_controlnet.py say how.
"""
import argparse
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_controlnet  # noqa: E402  (its ACN default)
import bench_vs_ade  # noqa: E402  (its server run, peak RSS and ADE graph)
import comfy_host  # noqa: E402
import comfy_server  # noqa: E402
import stand_ins  # noqa: E402

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
GRAPHS = ["ours, no SparseCtrl", "ours, SparseCtrl", "ours, a ControlNet", "ADE, no SparseCtrl", "ADE + ACN SparseCtrl",
          "ours, SparseCtrl, 64 frames"]
CONTROLNET = "control_v11p_sd15_canny_fp16.safetensors"


def shipped(pack, name):
    workflow_api = importlib.import_module(pack.__name__ + ".pipeline.workflow_api")
    return workflow_api.to_api(json.loads((WORKFLOWS / name).read_text()))


def node_of(prompt, class_type):
    return [i for i, node in prompt.items() if node["class_type"] == class_type]


def graph(pack, kind, size, checkpoint):
    """The API prompt of one graph, from the shipped workflow, at size×size; and the sampler's node id."""
    prompt = shipped(pack, "animatelcm_keyframes_long.json" if kind.endswith("64 frames") else "animatelcm_keyframes.json")
    [sampler], [apply], [latent] = (node_of(prompt, t) for t in ("ALCM_Sampler", "ALCM_ApplySparseCtrlKeyframes",
                                                                  "EmptyLatentImage"))
    [ckpt] = node_of(prompt, "CheckpointLoaderSimple")
    prompt[ckpt]["inputs"]["ckpt_name"] = checkpoint
    prompt[latent]["inputs"].update(width=size, height=size)
    inputs = prompt[sampler]["inputs"]
    first_picture = node_of(prompt, "LoadImage")[0]
    if kind in ("ours, no SparseCtrl", "ADE, no SparseCtrl"):
        inputs["positive"], inputs["negative"] = prompt[apply]["inputs"]["positive"], prompt[apply]["inputs"]["negative"]
    elif kind == "ours, a ControlNet":
        prompt["cn_load"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": CONTROLNET}}
        prompt["cn_apply"] = {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": prompt[apply]["inputs"]["positive"], "negative": prompt[apply]["inputs"]["negative"],
            "control_net": ["cn_load", 0], "image": [first_picture, 0], "strength": 1.0, "start_percent": 0.0,
            "end_percent": 1.0}}
        inputs["positive"], inputs["negative"] = ["cn_apply", 0], ["cn_apply", 1]
    if kind.startswith("ADE"):
        ade_graph(prompt, kind, sampler, apply, latent)
    return prompt, sampler


def ade_graph(prompt, kind, sampler, apply, latent):
    """AnimateDiff-Evolved's model (and Advanced-ControlNet's SparseCtrl) around the same loaders and pictures."""
    [spatial] = node_of(prompt, "ALCM_LoadAnimateLCMLoRA")
    [motion] = node_of(prompt, "ALCM_LoadMotionModule")
    inputs = prompt[sampler]["inputs"]
    prompt["ade_lora"] = {"class_type": "LoraLoaderModelOnly", "inputs": {
        "model": prompt[spatial]["inputs"]["model"], "lora_name": prompt[spatial]["inputs"]["lora_name"],
        "strength_model": 1.0}}
    model = bench_vs_ade.ade_model(prompt, ["ade_lora", 0], prompt[motion]["inputs"]["motion_module_name"])
    if kind == "ADE + ACN SparseCtrl":
        keyframes = prompt[apply]["inputs"]
        sparsectrl = prompt[keyframes["sparsectrl"][0]]["inputs"]["sparsectrl_name"]
        prompt["acn_method"] = {"class_type": "ACN_SparseCtrlIndexMethodNode", "inputs": {"indexes": "0, 15"}}
        prompt["acn_load"] = {"class_type": "ACN_SparseCtrlLoaderAdvanced", "inputs": {
            "sparsectrl_name": sparsectrl, "use_motion": True, "motion_strength": 1.0, "motion_scale": 1.0,
            "sparse_method": ["acn_method", 0]}}
        prompt["acn_rgb"] = {"class_type": "ACN_SparseCtrlRGBPreprocessor", "inputs": {
            "image": keyframes["images"], "vae": keyframes["vae"], "latent_size": [latent, 0]}}
        prompt["acn_apply"] = {"class_type": "ACN_AdvancedControlNetApply_v2", "inputs": {
            "positive": keyframes["positive"], "negative": keyframes["negative"], "control_net": ["acn_load", 0],
            "image": ["acn_rgb", 0], "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}}
        positive, negative = ["acn_apply", 0], ["acn_apply", 1]
    else:
        positive, negative = inputs["positive"], inputs["negative"]
    prompt[sampler] = {"class_type": "KSampler", "inputs": {
        "model": model, "positive": positive, "negative": negative, "latent_image": inputs["latent_image"],
        "seed": inputs["seed"], "steps": inputs["steps"], "cfg": inputs["cfg"], "sampler_name": "lcm",
        "scheduler": "simple", "denoise": 1.0}}


def pictures(server, prompt, size):
    """Distinct gradient pictures for the Load Image nodes, in the server's input folder."""
    import numpy as np
    from PIL import Image
    y, x = np.mgrid[0:size, 0:size] / size
    for k, node in enumerate(node_of(prompt, "LoadImage")):
        phase = k / 4
        pixels = np.stack([(x + phase) % 1, (y + 2 * phase) % 1, 1 - (x * y + phase) % 1], axis=-1)
        name = f"keyframe_{k}.png"
        Image.fromarray((pixels * 255).astype(np.uint8)).save(server.input_dir / name)
        prompt[node]["inputs"]["image"] = name


def run_fresh(comfyui_path, kind, size, ade, acn):
    """(peak RSS bytes, sampler seconds, ACN preprocessor seconds or None, error or None) in a server of its own."""
    others = ([ade] if kind.startswith("ADE") else []) + ([acn] if kind == "ADE + ACN SparseCtrl" else [])
    server = comfy_server.ComfyServer(comfyui_path, Path(tempfile.mkdtemp(prefix="alcm-bench-sc-")),
                                      other_custom_nodes=others, return_freed_heap=False)
    try:
        pack = comfy_host.start().pack
        prompt, sampler = graph(pack, kind, size, stand_ins.sd15_checkpoint(server))
        stand_ins.motion_module(server, prompt[node_of(prompt, "ALCM_LoadMotionModule")[0]]["inputs"]["motion_module_name"])
        stand_ins.make_lora_stand_in(server, prompt[node_of(prompt, "ALCM_LoadAnimateLCMLoRA")[0]]["inputs"]["lora_name"])
        stand_ins.sparsectrl(server, prompt[node_of(prompt, "ALCM_LoadSparseCtrl")[0]]["inputs"]["sparsectrl_name"])
        stand_ins.controlnet(server, CONTROLNET)
        pictures(server, prompt, size)
        try:
            seconds = bench_vs_ade.run(server, prompt)
        except Exception as error:  # noqa: BLE001  (a graph the other pack refuses: its message is the result)
            return bench_vs_ade.peak_rss(server), None, None, f"{type(error).__name__}: {error}"
        return bench_vs_ade.peak_rss(server), seconds[sampler], seconds.get("acn_rgb"), None
    finally:
        server.stop()


def per_pass(size, repeats):
    """Seconds of one pass (16 frames, cond and uncond: a batch of 32, as the graphs' steps run it) of: the SparseCtrl
    network, the same without its 8 temporal layers (its spatial part: ComfyUI's ControlNet blocks), and the Canny
    ControlNet; medians of `repeats`, interleaved, in this process."""
    import statistics
    host = comfy_host.start()  # ComfyUI's modules import once it runs

    import comfy.controlnet
    import folder_paths
    import torch
    stand_ins.sparsectrl(host, "v3_sd15_sparsectrl_rgb.ckpt")
    stand_ins.controlnet(host, CONTROLNET)
    product = importlib.import_module(host.pack.__name__ + ".control.sparsectrl")
    injection = importlib.import_module(host.pack.__name__ + ".motion.injection")
    video_batch = importlib.import_module(host.pack.__name__ + ".motion.video_batch")
    sparsectrl = product.load_sparsectrl(folder_paths.get_full_path("controlnet", "v3_sd15_sparsectrl_rgb.ckpt"))
    controlnet = comfy.controlnet.load_controlnet(folder_paths.get_full_path("controlnet", CONTROLNET)).control_model
    animated = list(sparsectrl.network.input_blocks)
    spatial = [getattr(block, injection.MARK, block) for block in animated]
    latent = size // 8
    generator = torch.Generator().manual_seed(0)
    x, timesteps = torch.randn(32, 4, latent, latent, generator=generator), torch.full((32,), 500.0)
    context = torch.randn(32, 77, 768, generator=generator)
    sparse_hint = torch.randn(32, 5, latent, latent, generator=generator)
    canny_hint = torch.rand(32, 3, size, size, generator=generator)

    def sparsectrl_pass(blocks):
        sparsectrl.network.input_blocks = torch.nn.ModuleList(blocks)
        with video_batch.video_layout(2):
            sparsectrl.network(x, sparse_hint, timesteps, context)

    runs = {"SparseCtrl": lambda: sparsectrl_pass(animated),
            "SparseCtrl without its temporal layers": lambda: sparsectrl_pass(spatial),
            "a ControlNet (Canny)": lambda: controlnet(x=x, hint=canny_hint, timesteps=timesteps, context=context)}
    seconds = {name: [] for name in runs}
    with torch.inference_mode():
        for _ in range(repeats):
            for name, run in runs.items():
                started = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - started)
    controlnet_pass = statistics.median(seconds["a ControlNet (Canny)"])
    print(f"\nOne pass at {size}x{size}, 16 frames × cond and uncond, fp32 CPU, medians of {repeats}:\n")
    print("| network | seconds | ÷ a ControlNet pass |")
    print("|---|---|---|")
    for name, values in seconds.items():
        print(f"| {name} | {statistics.median(values):.3f} s | {statistics.median(values) / controlnet_pass:.2f}× |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128, help="frame size in pixels (default 128)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each graph, rotated (default 1)")
    parser.add_argument("--per-pass", action="store_true", help="time one network pass of SparseCtrl (with and "
                        "without its temporal layers) and of a ControlNet, in this process, instead of the graphs")
    parser.add_argument("--only", action="append", metavar="GRAPH", help=f"graphs to run (repeatable): {GRAPHS}")
    parser.add_argument("--ade", default=os.environ.get("ALCM_ADE_PATH", str(bench_vs_ade.DEFAULT_ADE)))
    parser.add_argument("--acn", default=os.environ.get("ALCM_ACN_PATH", str(bench_controlnet.DEFAULT_ACN)))
    args = parser.parse_args()
    if args.per_pass:
        return per_pass(args.size, max(args.repeats, 3))
    kinds = args.only or GRAPHS
    unknown = set(kinds) - set(GRAPHS)
    if unknown:
        raise SystemExit(f"--only: no graph named {', '.join(map(repr, sorted(unknown)))}; the graphs: {GRAPHS}")
    ade, acn = Path(args.ade).expanduser(), Path(args.acn).expanduser()
    if not (ade / "__init__.py").is_file():
        print(f"!! No AnimateDiff-Evolved at {ade}: its graphs are left out (see --help)", flush=True)
        kinds = [k for k in kinds if not k.startswith("ADE")]
    if not (acn / "__init__.py").is_file():
        print(f"!! No Advanced-ControlNet at {acn}: 'ADE + ACN SparseCtrl' is left out (see --help)", flush=True)
        kinds = [k for k in kinds if k != "ADE + ACN SparseCtrl"]
    host = comfy_host.start()
    print(f"ComfyUI: {host.description}; {args.size}x{args.size}, fp32 CPU, glibc's default heap, "
          f"{args.repeats} run(s) each, rotated; {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    results = {kind: [] for kind in kinds}
    for repeat in range(args.repeats):
        for kind in kinds[repeat % len(kinds):] + kinds[:repeat % len(kinds)]:
            peak, seconds, preprocessor, error = run_fresh(host.comfyui_path, kind, args.size, ade, acn)
            results[kind].append((peak, seconds, preprocessor, error))
            print(f"  {kind}: peak {peak / 2**20:.0f} MiB, " + (f"sampler {seconds:.1f} s" if error is None else
                                                                 f"refused: {error}")
                  + (f", preprocessor {preprocessor:.1f} s" if preprocessor else ""), flush=True)
    print("\n| graph | sampler (median) | runs | preprocessor | fresh-server peak RSS (largest) |")
    print("|---|---|---|---|---|")
    for kind, runs in results.items():
        done = sorted(r[1] for r in runs if r[3] is None)
        if not done:
            print(f"| {kind} | refused: {runs[0][3][:200]} | | | {max(r[0] for r in runs) / 2**20:.0f} MiB |")
            continue
        preprocessor = [r[2] for r in runs if r[2]]
        print(f"| {kind} | {done[len(done) // 2]:.1f} s | {', '.join(f'{s:.1f}' for s in done)} | "
              f"{f'{min(preprocessor):.1f} s' if preprocessor else ''} | {max(r[0] for r in runs) / 2**20:.0f} MiB |")


if __name__ == "__main__":
    main()
