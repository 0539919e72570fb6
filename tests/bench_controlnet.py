"""The ControlNet long-video graph at 16, 64 and 256 frames: peak RSS and time per frame (a benchmark, not a test).

    python tests/bench_controlnet.py                          # 16,64,256 frames at 128x128, every graph
    python tests/bench_controlnet.py --frames 16,64 --size 256 --only ours
    python tests/bench_controlnet.py --longest-for ours --longest-for "ours, UNet-level windows"   # 256 frames: two graphs

Each graph runs once per frame count in a ComfyUI server of its own (main.py, fp32 on the CPU, glibc's default heap,
as a user's server runs), on the tests' full-size random-weight stand-ins (SD1.5 checkpoint, AnimateLCM motion
module and spatial LoRA, a Canny ControlNet in ControlNet 1.1's layout) and a moving-gradient source video of that
many frames. The figures: the server's peak RSS (VmHWM, the whole graph: loaders, Load Video, Canny, sampling, the
streamed Save Video), the sampler node's seconds (from the server's own messages) and those per frame. The graphs:

    ours                         workflows/animatelcm_controlnet_v2v.json as shipped (4 steps, cfg 1.5, denoise 0.6,
                                 Context Windows 16/4 uniform with FreeNoise): the ControlNet runs window by window
    ours, UNet-level windows     the same graph with the windows made inside the UNet wrapper, as the pack made them
                                 before (and still does in ComfyUI without the CALC_COND_BATCH hook): the ControlNet
                                 runs once per step on every frame (tests/bench_unet_level_windows.py strips the
                                 conditioning-level wrappers; nothing else differs)
    ours, no ControlNet          the same graph with the prompts straight into the sampler (reference)
    ADE + ACN                    AnimateDiff-Evolved's windows (Standard Uniform 16/4, pyramid; the official
                                 AnimateLCM schedule as bench_vs_ade.py sets it; core KSampler lcm) with
                                 Advanced-ControlNet's loader and apply on the same edges (--ade and --acn)
    ADE + core ControlNet        what AnimateDiff-Evolved does with core's Apply ControlNet under its windows
                                 (run once, at the smallest frame count past one window: its message is printed)

ADE and ACN are never part of this repository: clone them into a scratch folder (bench_vs_ade.py says how; ACN is
github.com/Kosinkadink/ComfyUI-Advanced-ControlNet: 1.5.8, a0563a3; its V3-node commits after it do not load in
ComfyUI 0.3.75) and pass --ade / --acn (or ALCM_ADE_PATH / ALCM_ACN_PATH).
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
import bench_vs_ade  # noqa: E402  (its server run and peak RSS)
import comfy_host  # noqa: E402
import comfy_server  # noqa: E402
import stand_ins  # noqa: E402

WORKFLOW = Path(__file__).resolve().parents[1] / "workflows" / "animatelcm_controlnet_v2v.json"
DEFAULT_ACN = Path.home() / ".cache" / "animatelcm-fast" / "Advanced-ControlNet"
UNET_LEVEL = Path(__file__).with_name("bench_unet_level_windows.py")
GRAPHS = ["ours", "ours, UNet-level windows", "ours, no ControlNet", "ADE + ACN", "ADE + core ControlNet"]


def shipped(pack):
    workflow_api = importlib.import_module(pack.__name__ + ".pipeline.workflow_api")
    return workflow_api.to_api(json.loads(WORKFLOW.read_text()))


def node_of(prompt, class_type):
    [node_id] = [i for i, node in prompt.items() if node["class_type"] == class_type]
    return node_id


def graph(base, kind, video, checkpoint):
    """The API prompt of one graph, from the shipped workflow."""
    prompt = json.loads(json.dumps(base))
    load, sampler = node_of(prompt, "ALCM_LoadVideo"), node_of(prompt, "ALCM_Sampler")
    prompt[load]["inputs"]["video"] = video
    prompt[node_of(prompt, "CheckpointLoaderSimple")]["inputs"]["ckpt_name"] = checkpoint
    apply = node_of(prompt, "ControlNetApplyAdvanced")
    windows = node_of(prompt, "ALCM_ContextWindows")
    if kind == "ours, UNet-level windows":
        prompt["unet_level"] = {"class_type": "Bench_UNetLevelWindows", "inputs": {"model": [windows, 0]}}
        prompt[sampler]["inputs"]["model"] = ["unet_level", 0]
    elif kind == "ours, no ControlNet":
        prompt[sampler]["inputs"]["positive"] = prompt[apply]["inputs"]["positive"]
        prompt[sampler]["inputs"]["negative"] = prompt[apply]["inputs"]["negative"]
    elif kind.startswith("ADE"):
        ade_graph(prompt, kind, sampler, windows, apply)
    return prompt, sampler


def ade_graph(prompt, kind, sampler, windows, apply):
    """AnimateDiff-Evolved's graph around the same loaders, edges, latents and Save Video."""
    spatial = node_of(prompt, "ALCM_LoadAnimateLCMLoRA")
    inputs = prompt[sampler]["inputs"]
    motion_file = prompt[node_of(prompt, "ALCM_LoadMotionModule")]["inputs"]["motion_module_name"]
    options = prompt[windows]["inputs"]
    prompt["ade_context"] = {"class_type": "ADE_StandardUniformContextOptions", "inputs": {
        "context_length": options["context_length"], "context_stride": 1, "context_overlap": options["overlap"],
        "fuse_method": "pyramid"}}
    # the AnimateLCM spatial LoRA through core's loader, as ADE users apply it (the file has no alpha: 1.0 = ours)
    prompt["ade_lora"] = {"class_type": "LoraLoaderModelOnly", "inputs": {
        "model": prompt[spatial]["inputs"]["model"], "lora_name": prompt[spatial]["inputs"]["lora_name"],
        "strength_model": 1.0}}
    model = bench_vs_ade.ade_model(prompt, ["ade_lora", 0], motion_file, ["ade_context", 0], noise_type="FreeNoise")
    if kind == "ADE + ACN":
        prompt["acn_load"] = {"class_type": "ACN_ControlNetLoaderAdvanced",
                              "inputs": {"cnet": prompt[node_of(prompt, "ControlNetLoader")]["inputs"]["control_net_name"]}}
        prompt["acn_apply"] = {"class_type": "ACN_AdvancedControlNetApply_v2", "inputs": {
            **{k: prompt[apply]["inputs"][k] for k in ("positive", "negative", "image", "strength", "start_percent",
                                                       "end_percent")}, "control_net": ["acn_load", 0]}}
        positive, negative = ["acn_apply", 0], ["acn_apply", 1]
    else:
        positive, negative = [apply, 0], [apply, 1]
    prompt[sampler] = {"class_type": "KSampler", "inputs": {
        "model": model, "positive": positive, "negative": negative, "latent_image": inputs["latent_image"],
        "seed": inputs["seed"], "steps": inputs["steps"], "cfg": inputs["cfg"], "sampler_name": "lcm",
        "scheduler": "simple", "denoise": inputs["denoise"]}}


def run_fresh(comfyui_path, kind, frames, size, ade, acn):
    """(peak RSS bytes, sampler seconds, error or None) of one graph in a server of its own."""
    others = [UNET_LEVEL] + ([ade] if kind.startswith("ADE") else []) + ([acn] if kind == "ADE + ACN" else [])
    server = comfy_server.ComfyServer(comfyui_path, Path(tempfile.mkdtemp(prefix="alcm-bench-cn-")),
                                      other_custom_nodes=others, return_freed_heap=False)
    try:
        checkpoint = stand_ins.sd15_checkpoint(server)
        base = shipped(comfy_host.start().pack)
        stand_ins.motion_module(server, base[node_of(base, "ALCM_LoadMotionModule")]["inputs"]["motion_module_name"])
        stand_ins.make_lora_stand_in(server, base[node_of(base, "ALCM_LoadAnimateLCMLoRA")]["inputs"]["lora_name"])
        stand_ins.controlnet(server, base[node_of(base, "ControlNetLoader")]["inputs"]["control_net_name"])
        video = f"source_{frames}x{size}.mp4"
        importlib.import_module(comfy_host.start().pack.__name__ + ".stand_ins.files").write_video(
            server.input_dir / video, frames, size)
        prompt, sampler = graph(base, kind, video, checkpoint)
        try:
            seconds = bench_vs_ade.run(server, prompt)[sampler]
        except Exception as error:  # noqa: BLE001  (a graph the other pack refuses: its message is the result)
            return bench_vs_ade.peak_rss(server), None, f"{type(error).__name__}: {error}"
        return bench_vs_ade.peak_rss(server), seconds, None
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", default="16,64,256", help="frame counts (default 16,64,256)")
    parser.add_argument("--size", type=int, default=128, help="frame size in pixels (default 128)")
    parser.add_argument("--only", action="append", metavar="GRAPH", help=f"graphs to run (repeatable): {GRAPHS}")
    parser.add_argument("--longest-for", action="append", metavar="GRAPH",
                        help="only these graphs run at the largest frame count (repeatable; default: every graph)")
    parser.add_argument("--ade", default=os.environ.get("ALCM_ADE_PATH", str(bench_vs_ade.DEFAULT_ADE)))
    parser.add_argument("--acn", default=os.environ.get("ALCM_ACN_PATH", str(DEFAULT_ACN)))
    args = parser.parse_args()
    frame_counts = [int(f) for f in args.frames.split(",")]
    kinds = args.only or GRAPHS
    unknown = (set(kinds) | set(args.longest_for or ())) - set(GRAPHS)
    if unknown:
        raise SystemExit(f"--only/--longest-for: no graph named {', '.join(map(repr, sorted(unknown)))}; the graphs: {GRAPHS}")
    ade, acn = Path(args.ade).expanduser(), Path(args.acn).expanduser()
    if not (ade / "__init__.py").is_file():
        print(f"!! No AnimateDiff-Evolved at {ade}: its graphs are left out (see --help)", flush=True)
        kinds = [k for k in kinds if not k.startswith("ADE")]
    if not (acn / "__init__.py").is_file():
        print(f"!! No Advanced-ControlNet at {acn}: 'ADE + ACN' is left out (see --help)", flush=True)
        kinds = [k for k in kinds if k != "ADE + ACN"]
    host = comfy_host.start()
    print(f"ComfyUI: {host.description}; {args.size}x{args.size}, frames {frame_counts}, fp32 CPU, "
          f"glibc's default heap; {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    results = {}
    # ADE takes core's ControlNet as long as it needs no window: its answer shows past one window's frames
    ade_core_frames = ([f for f in frame_counts if f > 16] or frame_counts[-1:])[0]
    for frames in frame_counts:  # every graph at a frame count before the next count: the longest runs come last
        for kind in kinds:
            if kind == "ADE + core ControlNet" and frames != ade_core_frames:
                continue
            if frames == max(frame_counts) and args.longest_for and kind not in args.longest_for:
                continue
            peak, seconds, error = run_fresh(host.comfyui_path, kind, frames, args.size, ade, acn)
            results[(kind, frames)] = (peak, seconds, error)
            print(f"  {kind}, {frames} frames: peak {peak / 2**20:.0f} MiB, "
                  + (f"sampler {seconds:.1f} s ({seconds / frames:.2f} s a frame)" if error is None else f"refused: {error}"),
                  flush=True)
    print(f"\n| graph | frames | fresh-server peak RSS | ÷ its {frame_counts[0]}-frame peak | sampler | a frame | "
          f"÷ its {frame_counts[0]}-frame time a frame |")
    print("|---|---|---|---|---|---|---|")
    for (kind, frames), (peak, seconds, error) in sorted(results.items(), key=lambda item: kinds.index(item[0][0])):
        first_frames = min(f for k, f in results if k == kind)
        first_peak, first_seconds, _ = results[(kind, first_frames)]
        if error is not None:
            print(f"| {kind} | {frames} | {peak / 2**20:.0f} MiB | | refused: {error[:200]} | | |")
            continue
        per_frame, first_per_frame = seconds / frames, first_seconds / first_frames
        print(f"| {kind} | {frames} | {peak / 2**20:.0f} MiB | {peak / first_peak:.2f}x | {seconds:.1f} s | "
              f"{per_frame:.2f} s | {per_frame / first_per_frame:.2f}x |")


if __name__ == "__main__":
    main()
