"""Prompt travel through ComfyUI's executor: every UNet call gets exactly its frames' rows of the Prompt Schedule's
conditioning (positive and negative), with the pack's Context Windows, FreeInit and Image to Video, core KSampler
and SamplerCustom, and ControlNet; the same seed and schedule give the same video; job lines set the schedule; the
bad-input probe's cases (issue 38) replayed through the executor."""
import json

import pytest
import torch

import stand_ins
from fixture_clip import stand_in_clip_node
from fixture_controlnet import tiny_controlnet
from fixture_models import TINY_CHANNELS
from fixture_motion import motion_state_dict, save_safetensors
from fixture_sampling import one_step_sample

pytestmark = pytest.mark.usefixtures("nothing_loaded")

POSITIVE = "0: a fox sleeping in the snow\n12: (a fox running:1.2)"
NEGATIVE = '"0": "blurry", "19": "a city at night"'  # FizzNodes' format for the negative
WINDOWS = {"context_length": 8, "overlap": 2, "schedule": "uniform", "closed_loop": False, "fuse": "pyramid",
           "freenoise": True}


class Recorder:
    """A UNet function wrapper (ComfyUI's own hook) recording, per call, the frames it runs and its text rows.
    Set on the checkpoint's MODEL, before the motion module, it runs inside the pack's windowing: once per window."""

    def __init__(self, calls, frames_of_window):
        self.calls, self.frames_of_window = calls, frames_of_window

    def __deepcopy__(self, memo):  # ComfyUI 0.3.x deep-copies model_options on clone: keep recording here
        return self

    def __call__(self, apply_model, args):
        self.calls.append((self.frames_of_window(), list(args["cond_or_uncond"]),
                           args["c"]["c_crossattn"].detach().clone(), args["input"].shape[0]))
        return apply_model(args["input"], args["timestep"], **args["c"])


@pytest.fixture(scope="module")
def recorded(host, pack, tiny_model):
    """A test-only node ALCM_TestTinyModel (the tiny SD1.5 MODEL with the Recorder; the narrow checkpoint's UNet
    would take minutes per step here) and the list it records into."""
    import nodes
    calls = []

    class TinyModel:
        RETURN_TYPES, FUNCTION, CATEGORY = ("MODEL",), "load", "testing"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        def load(self):
            model = tiny_model.clone()
            model.set_model_unet_function_wrapper(Recorder(calls, pack.motion.context_windows.frames_of_window))
            return (model,)
    nodes.NODE_CLASS_MAPPINGS["ALCM_TestTinyModel"] = TinyModel
    yield calls
    del nodes.NODE_CLASS_MAPPINGS["ALCM_TestTinyModel"]


@pytest.fixture(scope="module")
def narrow(host):
    """The narrow checkpoint (its CLIP encodes the schedules) and tiny motion modules in animatediff_models."""
    checkpoint = stand_ins.narrow_sd15_checkpoint(host)
    for family in ("animatelcm_t2v", "animatelcm_i2v"):
        save_safetensors(motion_state_dict(family, TINY_CHANNELS),
                         host.models_dir("animatediff_models") / f"{family}_tiny.safetensors")
    return checkpoint


@pytest.fixture(scope="module")
def executor(host):
    """One executor for the module: the checkpoint and the schedules' encodings are cached between graphs that
    share them (as in a ComfyUI session), so each test pays only for what it changes."""
    return host.fresh_executor()


def travel_prompt(checkpoint, frames, consumer):
    """Tiny MODEL with the recorder → motion module → Context Windows 8/2 → `consumer`, 64×64, 2 steps, cfg 1.5; the
    positive and negative are Prompt Schedules taking their frames from the sampler's latent."""
    def schedule(text, latent):
        return {"class_type": "ALCM_PromptSchedule", "inputs": {
            "clip": ["1", 1], "text": text, "pre_text": "", "app_text": "", "frames": 1, "start_frame": 0,
            "interpolation": "linear", "latent": latent}}
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "ALCM_TestTinyModel", "inputs": {}},
        "3": {"class_type": "ALCM_LoadMotionModule", "inputs": {"motion_module_name": "animatelcm_t2v_tiny.safetensors"}},
        "4": {"class_type": "ALCM_ApplyMotionModule", "inputs": {"model": ["2", 0], "motion_module": ["3", 0],
                                                                 "strength": 1.0, "motion_precision": "auto"}},
        "5": {"class_type": "ALCM_ContextWindows", "inputs": {"model": ["4", 0], **WINDOWS}},
        "6": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": frames}},
    }
    latent = ["6", 0]
    sampler = {"model": ["5", 0], "positive": ["7", 0], "negative": ["8", 0], "latent_image": latent, "seed": 3,
               "steps": 2, "cfg": 1.5, "denoise": 1.0, "mode": "text-to-video", "warn_without_spatial_lora": False}
    if consumer == "FreeInit":
        prompt["10"] = {"class_type": "ALCM_FreeInitOptions", "inputs": {
            "iterations": 2, "filter": "butterworth", "spatial_stop": 0.25, "temporal_stop": 0.25,
            "butterworth_order": 4}}
        sampler["freeinit"] = ["10", 0]
    if consumer == "Image to Video":
        prompt["3"]["inputs"]["motion_module_name"] = "animatelcm_i2v_tiny.safetensors"
        prompt["11"] = {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}}
        prompt["12"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
        prompt["13"] = {"class_type": "ALCM_ImageToVideo", "inputs": {  # the narrow checkpoint has no VAE weights
            "model": ["4", 0], "motion_module": ["3", 0], "image": ["11", 0], "vae": ["1", 2], "width": 64,
            "height": 64, "frames": frames, "motion_scale": 0.8, "reference_latent": ["12", 0]}}
        prompt["5"]["inputs"]["model"] = ["13", 0]
        latent = sampler["latent_image"] = ["13", 1]
        sampler["mode"] = "auto"
    prompt["7"], prompt["8"] = schedule(POSITIVE, latent), schedule(NEGATIVE, latent)
    if consumer == "KSampler":
        prompt["9"] = {"class_type": "KSampler", "inputs": {
            **{k: sampler[k] for k in ("model", "positive", "negative", "latent_image", "seed", "steps", "cfg",
                                       "denoise")}, "sampler_name": "euler", "scheduler": "normal"}}
    elif consumer == "SamplerCustom":
        prompt["14"] = {"class_type": "ALCM_ModelSampling", "inputs": {"model": ["5", 0], "mode": "text-to-video"}}
        prompt["15"] = {"class_type": "ALCM_SamplerSelect", "inputs": {}}
        prompt["16"] = {"class_type": "ALCM_Scheduler", "inputs": {"model": ["14", 0], "steps": 2, "denoise": 1.0}}
        prompt["9"] = {"class_type": "SamplerCustom", "inputs": {
            "model": ["14", 0], "add_noise": True, "noise_seed": 3, "cfg": 1.5, "positive": ["7", 0],
            "negative": ["8", 0], "sampler": ["15", 0], "sigmas": ["16", 0], "latent_image": latent}}
    else:
        prompt["9"] = {"class_type": "ALCM_Sampler", "inputs": sampler}
    return prompt


def check_rows(calls, positive, negative, frames):
    """Every call's rows are its frames' rows, for the positive and the negative; returns the windows run."""
    windows = []
    for window, cond_or_uncond, rows, batch in calls:
        window = list(range(frames)) if window is None else window
        assert batch == len(window) * len(cond_or_uncond)
        for chunk, kind in enumerate(cond_or_uncond):  # ComfyUI: 0 = positive, 1 = negative
            expected = (positive if kind == 0 else negative)[window]
            assert torch.equal(rows[chunk * len(window):(chunk + 1) * len(window)], expected), (window, kind)
            windows.append((kind, tuple(window)))
    return windows


@pytest.mark.parametrize("consumer", ["AnimateLCM Sampler", "FreeInit", "Image to Video", "KSampler", "SamplerCustom"])
def test_each_unet_call_gets_its_frames_conditioning(host, pack, narrow, recorded, executor, consumer):
    frames = 20
    prompt = travel_prompt(narrow, frames, consumer)
    recorded.clear()
    result = host.run(prompt, want=["7", "8", "9"], executor=executor)
    [[positive, _]], [[negative, _]] = result.output("7"), result.output("8")
    assert positive.shape == negative.shape == (frames, 77, 768)
    assert not torch.equal(positive[8:16], positive[:8]) and not torch.equal(negative[8:16], negative[:8])
    windows = check_rows(recorded, positive, negative, frames)
    assert {kind for kind, _ in windows} == {0, 1}  # cfg 1.5: both prompts ran
    assert all(len(w) == 8 for _, w in windows) and any(w[0] > 0 for _, w in windows)  # windows, not the batch
    if consumer in ("AnimateLCM Sampler", "FreeInit"):  # the windows of both steps in order, once per pass
        cw = pack.motion.context_windows
        expected = [tuple(w) for step in range(2) for w in cw.context_windows(frames, cw.ContextOptions(**WINDOWS), step)]
        expected *= 2 if consumer == "FreeInit" else 1
        assert [w for kind, w in windows if kind == 0] == expected == [w for kind, w in windows if kind == 1]


def test_the_same_seed_and_schedule_give_the_same_video(host, narrow, recorded):
    prompt = travel_prompt(narrow, 20, "AnimateLCM Sampler")
    first = host.run(prompt, want=["9"], executor=host.fresh_executor()).output("9")["samples"]
    second_executor = host.fresh_executor()  # nothing cached: everything runs again
    again = host.run(prompt, want=["9"], executor=second_executor).output("9")["samples"]
    assert first.shape == (20, 4, 8, 8) and torch.isfinite(first).all() and torch.equal(first, again)
    prompt["7"]["inputs"]["text"] = "0: a fox sleeping in the snow"  # one prompt instead: another video
    other = host.run(prompt, want=["9"], executor=second_executor).output("9")["samples"]
    assert not torch.equal(first, other)


def test_a_schedule_of_another_length_is_refused_through_the_executor(host, narrow, recorded, executor):
    import comfy_host
    prompt = travel_prompt(narrow, 20, "AnimateLCM Sampler")
    del prompt["7"]["inputs"]["latent"]
    prompt["7"]["inputs"]["frames"] = 16
    with pytest.raises(comfy_host.PromptFailed, match="'positive' holds conditioning for 16 frames, but "
                                                      "latent_image has 20 frames"):
        host.run(prompt, want=["9"], executor=executor)


# --- the bad-input probe's cases, replayed through the executor -----------------------------------------

@pytest.fixture(scope="module")
def test_clips(host):
    """The ALCM_TestCLIP node's wrappers, one per run (see fixture_clip.stand_in_clip_node)."""
    calls = []
    with stand_in_clip_node(calls):
        yield calls


def schedule_graph(checkpoint, text, frames=8, how=None, **nodes_by_id):
    """The narrow checkpoint's CLIP (wrapped by ALCM_TestCLIP `how`, when given) → Prompt Schedule as node "3"."""
    clip = ["1", 1]
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}}, **nodes_by_id}
    if how:
        prompt["2"] = {"class_type": "ALCM_TestCLIP", "inputs": {"clip": ["1", 1], "how": how}}
        clip = ["2", 0]
    prompt["3"] = {"class_type": "ALCM_PromptSchedule", "inputs": {
        "clip": clip, "text": text, "pre_text": "", "app_text": "", "frames": frames, "start_frame": 0,
        "interpolation": "linear"}}
    return prompt


@pytest.mark.parametrize("text, frames, message", [
    ("0: a fox\n4 - a forest", 8,
     "line 2 of the schedule is not a schedule entry: '4 - a forest'. Write '4: a forest'"),
    ("0: a fox\n4. a forest", 8, "line 2 of the schedule is not a schedule entry: '4. a forest'. Write '4: a forest'"),
    ("0: a fox\n1e1: a forest", 8, "line 2 .*'1e1: a forest'. Write '10: a forest'"),
    ('"0": "a (fox:`0.5 + t/16`)"', 8, "line 1: `0.5 \\+ t/16` is a FizzNodes expression"),
    ("0: a fox\n8: a forest", 100000, "100000 frames x 77 tokens x 768 values \\(float32\\) make a conditioning of "
                                       "22.3 GiB, over the 2 GiB this node builds at once"),
], ids=["dash", "dot", "exponent", "expression", "100000 frames"])
def test_the_probe_cases_are_refused_through_the_executor(host, narrow, executor, text, frames, message):
    import comfy_host
    with pytest.raises(comfy_host.PromptFailed, match=message):
        host.run(schedule_graph(narrow, text, frames), want=["3"], executor=executor)


def test_json_strings_and_neg_through_the_executor_are_what_clip_text_encode_gives(host, narrow, executor):
    encode = {"4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "caf\u00e9 au lait"}},
              "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "blurry"}}}
    prompt = schedule_graph(narrow, '"0": "caf\\u00e9 au lait --neg blurry"', 4, **encode)
    result = host.run(prompt, want=["3", "4", "5"], executor=executor)
    [[positive, _]], [[negative, _]] = result.output("3", 0), result.output("3", 1)
    [[cafe, _]], [[blurry, _]] = result.output("4"), result.output("5")
    assert positive.shape == negative.shape == (4, 77, 768)
    assert all(torch.equal(positive[f], cafe[0]) and torch.equal(negative[f], blurry[0]) for f in range(4))


def test_clip_output_on_another_device_through_the_executor(host, narrow, executor, test_clips):
    text = "0: a fox --neg blurry\n4: a forest --neg night"
    result = host.run(schedule_graph(narrow, text, 8, how="meta"), want=["3"], executor=executor)
    [[positive, extra]], [[negative, _]] = result.output("3", 0), result.output("3", 1)
    assert positive.shape == negative.shape == (8, 77, 768)
    assert {t.device.type for t in (positive, extra["pooled_output"], negative)} == {"meta"}


def test_keyframes_past_the_end_are_not_encoded_and_cancel_stops_the_encodes(host, narrow, executor, test_clips):
    import comfy_host
    many = "\n".join(f"{4 * k}: a fox, scene {k}" for k in range(100))
    result = host.run(schedule_graph(narrow, many, 8, how="count"), want=["3"], executor=executor)
    assert result.output("3", 0)[0][0].shape[0] == 8
    assert len(test_clips[-1].encoded) == 3 + 1  # scenes 0-2 (frames 4-7 blend towards scene 2) and the negative
    with pytest.raises(comfy_host.PromptFailed, match="interrupted"):
        host.run(schedule_graph(narrow, many, 400, how="cancel at 2"), want=["3"], executor=executor)
    assert len(test_clips[-1].encoded) == 2  # Cancel pressed during the second encode: no third one starts


def test_controlnet_apply_keeps_the_schedule_per_window(host, pack, tiny_model, tmp_path):
    """ComfyUI's ControlNet Apply on a per-frame CONDITIONING, sampled under the pack's windows."""
    import nodes
    calls = []
    recording = tiny_model.clone()
    recording.set_model_unet_function_wrapper(Recorder(calls, pack.motion.context_windows.frames_of_window))
    path = tmp_path / "t2v.safetensors"
    save_safetensors(motion_state_dict("animatelcm_t2v", TINY_CHANNELS), path)
    animated = pack.motion.injection.animate(recording, pack.motion.motion_module.load_motion_module(str(path)))
    windowed = pack.nodes.context_nodes.ContextWindows().apply(animated, 8, 2, "static", False, "pyramid", False)[0]
    generator = torch.Generator().manual_seed(0)
    frames = 20
    schedule = torch.randn(frames, 77, 768, generator=generator)  # any per-frame conditioning
    hint = torch.rand(frames, 64, 64, 3, generator=generator)
    positive = nodes.ControlNetApply().apply_controlnet([[schedule, {}]], tiny_controlnet(tiny_model), hint, 1.0)[0]
    negative = [[-schedule, {}]]
    one_step_sample(pack, windowed, torch.randn(frames, 4, 8, 8, generator=generator), positive, negative, cfg=1.5)
    windows = check_rows(calls, schedule, -schedule, frames)
    assert [w for kind, w in windows if kind == 0] == [tuple(range(0, 8)), tuple(range(6, 14)), tuple(range(12, 20))]


def test_a_job_line_sets_the_schedule(host, pack, tmp_path):
    """`"Prompt Schedule.text": "0: …\\n16: …"` in a job file reaches the node's text input, newlines and all."""
    import importlib
    jobs = importlib.import_module(f"{pack.__name__}.pipeline.jobs")
    catalog = importlib.import_module(f"{pack.__name__}.pipeline.workflow_api").LiveCatalog()
    workflow = jobs.load_workflow(pack_root(pack) / "workflows" / "animatelcm_prompt_travel.json", catalog)
    text = '0: a heron standing in a lake\n16: "the heron" takes off\n-1: (a heron flying:1.2)'
    job_file = tmp_path / "jobs.jsonl"
    job_file.write_text(json.dumps({"id": "heron", "Prompt Schedule.text": text, "Prompt Schedule.start_frame": 64}))
    [job] = jobs.read_jobs(job_file)
    prompt = jobs.apply_overrides(workflow, job.overrides, catalog)
    [schedule] = [node["inputs"] for node in prompt.values() if node["class_type"] == "ALCM_PromptSchedule"
                  and node["inputs"]["text"] == text]
    assert schedule["start_frame"] == 64
    csv_file = tmp_path / "jobs.csv"
    csv_file.write_text('id,Prompt Schedule.text\nfox,"0: a fox\n8: a forest"\n')
    [job] = jobs.read_jobs(csv_file)
    prompt = jobs.apply_overrides(workflow, job.overrides, catalog)
    assert "0: a fox\n8: a forest" in [n["inputs"].get("text") for n in prompt.values()]


def pack_root(pack):
    from pathlib import Path
    return Path(pack.__file__).resolve().parent
