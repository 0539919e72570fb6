"""Render a UI-format workflow (one of workflows/*.json) in a real ComfyUI, headless.

    python tests/render_workflow.py WORKFLOW.json [--frames N] [--size PX] [--full] [--out DIR]

The ComfyUI is tests/comfy_host.py's: the checkout COMFYUI_PATH names, else the registry host.
Model files the workflow names that the host's folders lack get random-weight stand-ins of the
real size and layout (tests/stand_ins.py), so the graph really runs, but the video shows what
random weights make, not the prompt; files that are there (your own ComfyUI's) are used as is.
A video a Load Video node names that the input folder lacks gets a moving-gradient stand-in,
written with the pack's own encoder, --frames long and --size wide.
"""
import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helper modules beside this file

import comfy_host  # noqa: E402
import stand_ins  # noqa: E402
from stand_ins import make_lora_stand_in  # noqa: E402

CPU_LIMIT = (8, 64)  # frames, pixels: a 16-frame 512 px video takes hours on a CPU, this a minute
STAND_IN_VIDEO = (16, 512)  # frames, pixels of an input-video stand-in when nothing says otherwise
log = logging.getLogger("render")


def _workflow_api():
    import importlib  # the pack as the host imported it (its engine modules are not loaded with the nodes)
    return importlib.import_module(comfy_host.start().pack.__name__ + ".pipeline.workflow_api")


def _stand_in_for(class_type, input_name):
    """(model folder, maker) when this input names a model file a stand-in can be made for."""
    if class_type == "CheckpointLoaderSimple" and input_name == "ckpt_name":
        return "checkpoints", stand_ins.sd15_checkpoint
    if class_type == "ALCM_LoadMotionModule" and input_name == "motion_module_name":
        return "animatediff_models", stand_ins.motion_module
    if class_type == "ALCM_LoadMotionLoRA" and input_name == "motion_lora_name":
        return "animatediff_motion_lora", stand_ins.motion_lora
    if input_name == "lora_name":
        return "loras", make_lora_stand_in
    return None


def make_stand_ins(host, prompt):
    """Put a random-weight file in the host's folders for every model file the prompt names and lacks."""
    import folder_paths
    for node_id, node in prompt.items():
        for input_name, value in node["inputs"].items():
            known = _stand_in_for(node["class_type"], input_name)
            if known is None or not isinstance(value, str):
                continue
            folder, make = known
            if folder_paths.get_full_path(folder, value):
                log.info("node %s: using the real %s file '%s'", node_id, folder, value)
                continue
            log.info("node %s: '%s' is not in %s: making a random-weight stand-in (cached in %s)",
                     node_id, value, folder, stand_ins.CACHE_DIR)
            make(host, value)


def _resize_latents(prompt, frames, size, limit):
    """Apply --frames/--size to every EmptyLatentImage, or else cap the workflow's own values at `limit`."""
    for node_id, node in prompt.items():
        if node["class_type"] != "EmptyLatentImage":
            continue
        inputs = node["inputs"]
        before = (inputs.get("batch_size"), inputs.get("width"), inputs.get("height"))
        if frames is not None:
            inputs["batch_size"] = frames
        elif limit and isinstance(inputs.get("batch_size"), int):
            inputs["batch_size"] = min(inputs["batch_size"], limit[0])
        if size is not None:
            inputs["width"] = inputs["height"] = size
        elif limit and all(isinstance(inputs.get(k), int) for k in ("width", "height")):
            # keep the aspect ratio; ComfyUI wants multiples of 8 and at least 16
            scale = min(1.0, limit[1] / max(inputs["width"], inputs["height"]))
            for k in ("width", "height"):
                inputs[k] = max(16, round(inputs[k] * scale / 8) * 8)
        after = (inputs.get("batch_size"), inputs.get("width"), inputs.get("height"))
        log.info("node %s EmptyLatentImage: %s frames at %sx%s px%s", node_id, *after,
                 "" if after == before else " (the workflow says %s at %sx%s)" % before)


def _load_video_frames(inputs, frames, limit):
    """Apply --frames (or the CPU limit) to a Load Video node's inputs; returns how many frames its file needs."""
    if frames is not None:
        inputs["frame_cap"] = frames
    elif limit and inputs.get("frame_cap"):  # lowering the workflow's own cap never asks for more than the file has
        inputs["frame_cap"] = min(inputs["frame_cap"], limit[0])
    cap = inputs.get("frame_cap") or STAND_IN_VIDEO[0]
    return inputs.get("skip_first_frames", 0) + cap * inputs.get("select_every_nth", 1)


def make_input_stand_ins(host, workflow, frames=None, size=None, limit=None):
    """Write a moving-gradient video into the input folder for each Load Video node whose file is missing;
    returns the paths written."""
    import torch
    encode = host.pack.video.encode
    by_extension = {f.extension: name for name, f in encode.FORMATS.items()} | {".apng": "apng"}
    written = []
    for node in workflow["nodes"]:
        if node["type"] != "ALCM_LoadVideo" or node.get("mode") == _workflow_api().MUTED:
            continue
        inputs = _workflow_api().widget_values(node)
        path = host.input_dir / inputs["video"]
        if path.exists():
            log.info("node %s: using the real input video '%s'", node["id"], inputs["video"])
            continue
        if path.suffix.lower() not in by_extension:
            raise _workflow_api().WorkflowError(
                f"node {node['id']}: no stand-in can be made for '{inputs['video']}' (only for "
                f"{', '.join(sorted(by_extension))}): put the video in {host.input_dir}")
        count = _load_video_frames(dict(inputs), frames, limit)
        side = size or (limit[1] if limit else STAND_IN_VIDEO[1])
        log.info("node %s: '%s' is not in the input folder: writing a %d-frame %d px moving-gradient stand-in",
                 node["id"], inputs["video"], count, side)
        y, x = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
        t = (torch.arange(count) / count).view(count, 1, 1)
        gradient = torch.stack([(x + t) % 1, y.expand(count, -1, -1), (1 - x * y + t) % 1], dim=-1)
        path.parent.mkdir(parents=True, exist_ok=True)
        encode.save_video(gradient, str(path), by_extension[path.suffix.lower()], 8.0)
        written.append(path)
    return written


def _output_files(host, result, prompt):
    """The files the prompt's output nodes reported (the paths ComfyUI wrote them to). A node that
    reports a file in the output folder and a temporary one (a preview of it) gives the first only."""
    import folder_paths
    files = []
    for node_id in prompt:
        ui = result.ui(node_id) or {}
        entries = [entry for key in ("images", "gifs", "videos") for entry in ui.get(key, [])]
        if any(entry.get("type") == "output" for entry in entries):
            entries = [entry for entry in entries if entry.get("type", "output") == "output"]
        for entry in entries:
            folder = folder_paths.get_directory_by_type(entry.get("type", "output")) or host.output_dir
            files.append(Path(folder) / entry.get("subfolder", "") / entry["filename"])
    return files


def render(host, workflow, frames=None, size=None, limit=None):
    """Run a UI-format workflow in `host`; returns the paths of the files its output nodes wrote.

    `frames`/`size` replace every EmptyLatentImage's batch size and width and height; without
    them, `limit` = (frames, pixels) caps the workflow's own values. Load Video nodes load `frames`
    frames of their video (a stand-in of that many frames and `size` px when the file is missing).
    """
    make_input_stand_ins(host, workflow, frames, size, limit)  # first: the check wants the file to be listed
    problems = _workflow_api().check_workflow(workflow)
    if problems:
        raise _workflow_api().WorkflowError("the workflow does not fit this ComfyUI:\n  " + "\n  ".join(problems))
    prompt = _workflow_api().to_api(workflow)
    _resize_latents(prompt, frames, size, limit)
    for node in prompt.values():
        if node["class_type"] == "ALCM_LoadVideo":
            _load_video_frames(node["inputs"], frames, limit)
    make_stand_ins(host, prompt)
    log.info("running %d nodes in %s", len(prompt), host.description)
    started = time.monotonic()
    result = host.run(prompt)
    log.info("the graph ran in %.1f s", time.monotonic() - started)
    return _output_files(host, result, prompt)


def _copy_out(path, host, out_dir):
    """Copy one output file into out_dir, keeping its subfolder and never overwriting an earlier render."""
    try:
        relative = path.relative_to(host.output_dir)
    except ValueError:
        relative = Path(path.name)
    target, n = out_dir / relative, 1
    while target.exists():  # every run starts a fresh host, whose file counter starts at 1 again
        n += 1
        target = (out_dir / relative).with_name(f"{relative.stem}-{n}{relative.suffix}")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target)
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(description="Render a ComfyUI workflow (UI format) headless, with "
                                                 "random-weight stand-ins for missing model files.")
    parser.add_argument("workflow", type=Path, help="a workflow JSON as the ComfyUI frontend saves it")
    parser.add_argument("--frames", type=int,
                        help="frames to render (EmptyLatentImage batch_size, Load Video frame_cap)")
    parser.add_argument("--size", type=int, help="width and height in pixels (and of a stand-in input video)")
    parser.add_argument("--full", action="store_true",
                        help=f"keep the workflow's frames and size on CPU too (else capped at {CPU_LIMIT[0]} "
                             f"frames, {CPU_LIMIT[1]} px)")
    parser.add_argument("--out", type=Path, default=Path("output"), help="where to copy the results (./output)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # ComfyUI's chatter: warnings only
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("== %(message)s"))  # our lines stand out from ComfyUI's
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        workflow = json.loads(args.workflow.read_text())
        log.info("starting ComfyUI (this loads torch and the node pack)")
        host = comfy_host.start()
        log.info("host: %s at %s", host.description, host.comfyui_path)
        import comfy.model_management
        limit = None
        if not args.full and comfy.model_management.get_torch_device().type == "cpu":
            limit = CPU_LIMIT
            log.info("CPU: at most %d frames and %d px unless --frames/--size say otherwise (--full: as saved)",
                     *limit)
        log.info("rendering %s", args.workflow)
        files = render(host, workflow, args.frames, args.size, limit)
        if not files:
            raise _workflow_api().WorkflowError("the workflow ran but saved no image or video (no Save node?)")
        for path in files:
            log.info("wrote %s -> %s", path, _copy_out(path, host, args.out.resolve()))
    except (OSError, ValueError, NotImplementedError, comfy_host.HostUnavailable,
            comfy_host.PromptInvalid, comfy_host.PromptFailed) as error:
        # WorkflowError and a bad JSON file are ValueErrors; a missing workflow file an OSError
        print(f"!! render failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
