"""The shipped workflows: valid for this host, converted the way the frontend would queue them.
(Rendering them, in UI and API format, is tests/test_pipeline.py's job: it goes through the product renderer.)"""
import json
import re
from pathlib import Path

import pytest

WORKFLOW_DIR = Path(__file__).resolve().parents[1] / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.json"))
T2V = WORKFLOW_DIR / "animatelcm_t2v.json"


def load(path):
    return json.loads(path.read_text())


def test_every_shipped_workflow_is_in_the_readmes_table_and_every_row_is_shipped():
    """The README's Workflows table is how users find a graph: it lists exactly the files in workflows/."""
    readme = (WORKFLOW_DIR.parent / "README.md").read_text()
    table = readme.split("\n## Workflows", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+\.json)` \|", table, flags=re.M)
    assert sorted(rows) == sorted(path.name for path in WORKFLOWS) and len(rows) == len(set(rows))
    assert T2V in WORKFLOWS


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_fits_the_host(host, workflow_api, path):
    assert workflow_api.check_workflow(load(path)) == []  # model and input files differ between machines


def test_t2v_converts_to_the_expected_prompt(host, workflow_api):
    prompt = workflow_api.to_api(load(T2V))
    by_type = {node["class_type"]: (node_id, node["inputs"]) for node_id, node in prompt.items()}
    assert len(by_type) == len(prompt) - 1  # all types distinct but the two prompts
    ckpt, _ = by_type["CheckpointLoaderSimple"]
    motion, _ = by_type["ALCM_LoadMotionModule"]
    apply_id, apply = by_type["ALCM_ApplyMotionModule"]
    spatial_id, spatial = by_type["ALCM_LoadAnimateLCMLoRA"]
    latent, latent_inputs = by_type["EmptyLatentImage"]
    sampler_id, sampler = by_type["ALCM_Sampler"]
    decode_id, decode = by_type["VAEDecode"]
    _, save = by_type["ALCM_SaveVideo"]
    assert spatial == {"model": [ckpt, 0], "lora_name": "AnimateLCM_sd15_t2v_lora.safetensors", "strength": 1.0}
    assert apply == {"model": [spatial_id, 0], "motion_module": [motion, 0], "strength": 1.0, "motion_precision": "auto"}
    assert latent_inputs == {"width": 512, "height": 512, "batch_size": 16}
    texts = {prompt[sampler[k][0]]["inputs"]["text"]: k for k in ("positive", "negative")}
    assert texts == {"a red fox running through snow, cinematic, highly detailed": "positive",
                     "blurry, low quality, deformed": "negative"}
    assert all(prompt[sampler[k][0]]["inputs"]["clip"] == [ckpt, 1] for k in ("positive", "negative"))
    # the "fixed" seed control is skipped, so every later widget lands on its own input
    assert sampler == {"model": [apply_id, 0], "positive": sampler["positive"], "negative": sampler["negative"],
                       "latent_image": [latent, 0], "seed": 0, "steps": 4, "cfg": 1.5, "denoise": 1.0,
                       "mode": "text-to-video", "warn_without_spatial_lora": True}
    assert decode == {"samples": [sampler_id, 0], "vae": [ckpt, 2]}
    assert save == {"images": [decode_id, 0], "filename_prefix": "AnimateLCM/t2v", "format": "webp", "frame_rate": 8,
                    "loop_count": 0, "pingpong": False, "quality": 90}


V2V = [path for path in WORKFLOWS if '"ALCM_LoadVideo"' in path.read_text()]


def test_the_video_to_video_workflows_are_found():
    assert {p.name for p in V2V} == {"animatelcm_v2v.json", "animatelcm_long_v2v.json", "animatelcm_controlnet_v2v.json"}


@pytest.mark.parametrize("path", V2V, ids=lambda p: p.name)
def test_video_to_video_keeps_the_sources_sound_and_frame_rate(host, workflow_api, path):
    """Load Video's audio goes into Save Video, which writes mp4 (AAC) at the source's frame rate, so the
    sound stays in step with the frames and a 30 fps source plays at 30 fps (issues 22, 36)."""
    prompt = workflow_api.to_api(load(path))
    [load_id] = [i for i, node in prompt.items() if node["class_type"] == "ALCM_LoadVideo"]
    [save] = [node["inputs"] for node in prompt.values() if node["class_type"] == "ALCM_SaveVideo"]
    assert (save["audio"], save["frame_rate"], save["format"]) == ([load_id, 4], [load_id, 2], "mp4")


def test_controlnet_v2v_steers_every_window_with_its_own_frames_edges(host, workflow_api):
    """Load Video gives frames (edges) and streamed latents at once; the Canny ControlNet is applied to both prompts
    with ControlNet 1.1's own settings; the model is windowed; Save Video decodes a few frames at a time."""
    prompt = workflow_api.to_api(load(WORKFLOW_DIR / "animatelcm_controlnet_v2v.json"))
    by_type = {node["class_type"]: (node_id, node["inputs"]) for node_id, node in prompt.items()}
    load_id, loader = by_type["ALCM_LoadVideo"]
    ckpt = by_type["CheckpointLoaderSimple"][0]
    canny_id, canny = by_type["ALCM_CannyEdges"]
    apply_id, apply = by_type["ControlNetApplyAdvanced"]
    _, sampler = by_type["ALCM_Sampler"]
    assert (loader["vae"], loader["frame_cap"]) == ([ckpt, 2], 0)  # every frame, latents encoded as decoded
    assert canny["images"] == [load_id, 0]
    assert (canny["low_threshold"], canny["high_threshold"]) == PACK_SETTINGS["canny"][0]
    assert apply["image"] == [canny_id, 0] and apply["control_net"] == [by_type["ControlNetLoader"][0], 0]
    assert (apply["strength"], apply["start_percent"], apply["end_percent"]) == PACK_SETTINGS["controlnet"][0]
    assert (sampler["positive"], sampler["negative"], sampler["latent_image"]) == ([apply_id, 0], [apply_id, 1],
                                                                                   [load_id, 3])
    assert by_type["ControlNetLoader"][1]["control_net_name"] == "control_v11p_sd15_canny_fp16.safetensors"
    assert by_type["ALCM_SaveVideo"][1]["latent"] == [by_type["ALCM_Sampler"][0], 0]


KEYFRAMES = {"animatelcm_keyframes.json": ("0, -1", 16, False, ["keyframe_first.png", "keyframe_last.png"]),
             "animatelcm_keyframes_long.json": ("0, 0.33, 0.67, 1.0", 64, True,
                                                [f"keyframe_{k}.png" for k in range(1, 5)])}


@pytest.mark.parametrize("name", KEYFRAMES)
def test_keyframe_workflows_put_the_pictures_in_order_on_both_prompts(host, workflow_api, name):
    """The keyframe pictures, batched in order, and the RGB SparseCtrl (with the checkpoint's VAE) go through Apply
    SparseCtrl Keyframes into both of the sampler's prompts; the long one samples under Context Windows."""
    prompt = workflow_api.to_api(load(WORKFLOW_DIR / name))
    by_type = {node["class_type"]: (node_id, node["inputs"]) for node_id, node in prompt.items()}
    written, frames, windowed, pictures_in_order = KEYFRAMES[name]
    apply_id, apply = by_type["ALCM_ApplySparseCtrlKeyframes"]
    sampler_id, sampler = by_type["ALCM_Sampler"]
    assert apply["keyframe_frames"] == written
    assert (apply["strength"], apply["start_percent"], apply["end_percent"]) == PACK_SETTINGS["sparsectrl"][0]
    assert apply["vae"] == [by_type["CheckpointLoaderSimple"][0], 2]
    assert prompt[apply["sparsectrl"][0]]["inputs"]["sparsectrl_name"] == "v3_sd15_sparsectrl_rgb.ckpt"
    assert (sampler["positive"], sampler["negative"]) == ([apply_id, 0], [apply_id, 1])
    pictures, link = [], apply["images"]
    while prompt[link[0]]["class_type"] == "ImageBatch":  # Batch Images chains: image1 holds the earlier pictures
        pictures.insert(0, prompt[prompt[link[0]]["inputs"]["image2"][0]]["inputs"]["image"])
        link = prompt[link[0]]["inputs"]["image1"]
    pictures.insert(0, prompt[link[0]]["inputs"]["image"])
    assert pictures == pictures_in_order and len(pictures) == len(written.split(","))
    assert prompt[sampler["latent_image"][0]]["inputs"]["batch_size"] == frames
    assert ("ALCM_ContextWindows" in {prompt[i]["class_type"] for i in upstream(prompt, sampler_id, "model")}) == windowed


def test_hires_workflow_renders_small_then_redraws_the_upscaled_latents_in_windows(host, workflow_api):
    """16 frames at 512², their latents ×1.5 (768²), a second AnimateLCM pass over them in Context Windows, and
    Save Video decoding that pass's latents a few frames at a time: no 768² IMAGE batch is ever held."""
    prompt = workflow_api.to_api(load(WORKFLOW_DIR / "animatelcm_hires_v2v.json"))
    by_type = {}
    for node_id, node in prompt.items():
        by_type.setdefault(node["class_type"], []).append((node_id, node["inputs"]))
    first, second = sorted(by_type["ALCM_Sampler"], key=lambda s: s[1]["denoise"], reverse=True)
    [(latent_id, latent)], [(upscale_id, upscale)] = by_type["EmptyLatentImage"], by_type["LatentUpscaleBy"]
    [(windows_id, windows)], [(_, save)] = by_type["ALCM_ContextWindows"], by_type["ALCM_SaveVideo"]
    [(apply_id, _)] = by_type["ALCM_ApplyMotionModule"]
    assert latent == {"width": 512, "height": 512, "batch_size": 16}
    assert first[1]["latent_image"] == [latent_id, 0] and first[1]["model"] == [apply_id, 0]  # no windows needed at 16
    assert upscale == {"samples": [first[0], 0], "upscale_method": "nearest-exact", "scale_by": 1.5}
    assert second[1]["latent_image"] == [upscale_id, 0] and second[1]["model"] == [windows_id, 0]
    assert windows["model"] == [apply_id, 0] and second[1]["seed"] == first[1]["seed"]
    assert (save["latent"], "images" in save) == ([second[0], 0], False)
    assert [s[1][k] for s in (first, second) for k in ("positive", "negative")] == [first[1]["positive"],
                                                                                    first[1]["negative"]] * 2


# The official recipe (AnimateLCM: github G-U-N/AnimateLCM, animatelcm_sd15/), per motion module: what every
# shipped workflow sampling with that module must carry. Each value: (value, where it comes from).
RECIPE = {
    "AnimateLCM_sd15_t2v.ckpt": {
        "spatial_lora": ("AnimateLCM_sd15_t2v_lora.safetensors", "app.py: lcm_lora_path, merged before every run"),
        # the node's 1.0 is the official merge: 0.8 (app.py's 'LCM LoRA alpha' slider) × 1/8 × up@down
        # (animatelcm/utils/lcm_utils.py convert_lcm_lora)
        "spatial_lora_strength": (1.0, "app.py: 'LCM LoRA alpha' value=0.8; lcm_utils.py: 1/8 * alpha"),
        "steps": (4, "configs/batch_inference_example.yaml T2V-Example: steps 4"),
        "cfg": (1.5, "app.py: 'CFG Scale' value=1.5; batch_inference_example.yaml: guidance_scale 1.5"),
        "modes": ({"text-to-video", "auto"}, "configs/inference-t2v.yaml: beta_end 0.012, original_inference_steps 100"),
    },
    "AnimateLCM_sd15_i2v.ckpt": {
        "spatial_lora": ("AnimateLCM_sd15_i2v_lora.safetensors", "app-i2v.py: lcm_lora_path"),
        "spatial_lora_strength": (1.0, "app-i2v.py: 'LCM LoRA alpha' value=0.8; lcm_utils.py: 1/8 * alpha"),
        "steps": (4, "app-i2v.py: 'Sampling steps' value=4"),
        "cfg": (1.0, "app-i2v.py: 'CFG Scale' value=1"),
        "modes": ({"auto", "image-to-video schedule"}, "configs/inference-i2v.yaml: beta_end 0.014, 200 steps"),
        "motion_scale": (0.8, "app-i2v.py: 'motion scale' value=0.8"),
    },
    # AnimateDiff-Lightning (ByteDance): its model card, huggingface.co/ByteDance/AnimateDiff-Lightning "Diffusers Usage"
    "animatediff_lightning_4step_comfyui.safetensors": {
        "spatial_lora": (None, "model card: the motion adapter on any SD1.5 base model as it is (no LCM LoRA)"),
        "steps": (4, "model card: step = 4, ckpt = f'animatediff_lightning_{step}step_...', num_inference_steps=step"),
        "cfg": (1.0, "model card: pipe(..., guidance_scale=1.0, ...)"),
        "modes": ({"auto", "AnimateDiff-Lightning"}, "model card: EulerDiscreteScheduler.from_config(..., "
                                                      "timestep_spacing='trailing', beta_schedule='linear')"),
    },
    # AnimateLCM-SVD-xt (animatelcm_svd/app.py: sample() defaults and its sliders' values; animatelcm_svd/pipeline.py's
    # own defaults where app.py passes none)
    "AnimateLCM-SVD-xt-1.1.safetensors": {
        "steps": (4, "app.py: sample(num_inference_steps=4), 'Num inference steps' value=4"),
        # pipeline.py step 7: guidance_scale = torch.linspace(min_guidance_scale, max_guidance_scale, num_frames),
        # frame f's scale; core's VideoLinearCFGGuidance: torch.linspace(min_cfg, cfg, frames), the same per frame
        # (tests/test_svd.py checks it on the model)
        "cfg": (1.2, "app.py: sample(max_guidance_scale=1.2), 'Max guidance scale' value=1.2: the last frame's scale"),
        "modes": ({"auto"}, "the SVD-xt schedule is read from the MODEL"),
        "min_cfg": (1.0, "app.py: sample(min_guidance_scale=1), 'Min guidance scale' value=1: the first frame's scale"),
        "conditioning": ((1024, 576, 25, 80, 7, 0.02), "app.py: width 1024, height 576, motion_bucket_id 80; "
                                                         "StableVideoDiffusionPipeline: num_frames 25 (xt), fps 7, "
                                                         "noise_aug_strength 0.02"),
    },
}
# Settings the official code has no counterpart for: the pack's recommended values, and why.
PACK_SETTINGS = {
    "v2v_denoise": (0.6, "the official code has no video-to-video: keeps the input's layout, restyles its look"),
    # the official code has no second pass either (pipeline_animation.py takes no input video; lcm_scheduler.py's
    # `strength` is never passed): 0.6, the pack's video-to-video setting, keeps the 512² render's layout and motion
    # and redraws its detail at 768² (0.6 of the 100-step grid: timesteps 599, 449, 299, 149)
    "hires_denoise": (0.6, "the pack's v2v_denoise, on the upscaled latents of the first pass"),
    "hires_scale": (1.5, "512² → 768², the issue's sizes; LatentUpscaleBy's default"),
    "context_windows": ((16, 4, True), "16 = the training length (app.py 'Animation length' value=16); overlap 4 "
                                       "and FreeNoise: AnimateDiff-Evolved's defaults for 16-frame windows"),
    "motion_lora_strength": (1.0, "AnimateDiff v2 camera LoRAs as trained (guoyww/AnimateDiff configs: alpha 1.0)"),
    "freeinit": ((3, "butterworth", 0.25, 0.25, 4), "TianxingWu/FreeInit: butterworth, n 4, d_s = d_t = 0.25; "
                                                    "3 passes: the pack's time budget (each pass is a full run)"),
    # the official AnimateLCM code uses no ControlNet (the paper plugs one in without training): ControlNet 1.1's own
    "controlnet": ((1.0, 0.0, 1.0), "lllyasviel/ControlNet-v1-1-nightly gradio_canny.py: 'Control Strength' value=1.0, "
                                    "on every step"),
    "canny": ((100, 200), "lllyasviel/ControlNet-v1-1-nightly gradio_canny.py: 'Canny low/high threshold' 100/200 "
                          "(annotator/canny: cv2.Canny)"),
    "sparsectrl": ((1.0, 0.0, 1.0), "guoyww/AnimateDiff pipeline_animation.py: controlnet_conditioning_scale 1.0, on "
                                    "every step; configs/prompts/3_sparsectrl: controlnet_image_indexs [0, -1]"),
}


def upstream(prompt, node_id, input_name):
    """The node ids feeding `input_name` of `node_id`, following that input's chain of same-named inputs."""
    chain, link = [], prompt[node_id]["inputs"].get(input_name)
    while isinstance(link, list):
        chain.append(link[0])
        inputs = prompt[link[0]]["inputs"]
        link = inputs.get(input_name, inputs.get("model" if input_name == "model" else "motion_module"))
    return chain


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_workflow_samples_with_the_official_recipe(host, workflow_api, path):
    check_recipe(workflow_api.to_api(load(path)), path)


def check_recipe(prompt, path):
    samplers = [i for i, node in prompt.items() if node["class_type"] == "ALCM_Sampler"]
    assert samplers, "every shipped workflow samples with the AnimateLCM Sampler"
    for sampler_id in samplers:
        sampler = prompt[sampler_id]["inputs"]
        model_chain = {prompt[i]["class_type"]: prompt[i]["inputs"] for i in upstream(prompt, sampler_id, "model")}
        if "ALCM_LoadAnimateLCMSVD" in model_chain:
            check_svd_recipe(prompt, sampler, model_chain)
            continue
        animator = model_chain.get("ALCM_ApplyMotionModule") or model_chain["ALCM_ImageToVideo"]
        motion_chain = [prompt[animator["motion_module"][0]]] + [
            prompt[i] for i in upstream(prompt, animator["motion_module"][0], "motion_module")]
        module = next(n["inputs"]["motion_module_name"] for n in motion_chain if n["class_type"] == "ALCM_LoadMotionModule")
        recipe = {key: value for key, (value, _source) in RECIPE[module].items()}
        spatial = model_chain.get("ALCM_LoadAnimateLCMLoRA")
        if recipe["spatial_lora"] is None:
            assert spatial is None, f"{path.name}: {module} samples with AnimateLCM's spatial LoRA, which is not its recipe"
        else:
            assert spatial is not None, f"{path.name}: {module} samples without AnimateLCM's spatial LoRA"
            assert (spatial["lora_name"], spatial["strength"]) == (recipe["spatial_lora"], recipe["spatial_lora_strength"])
        assert (sampler["steps"], sampler["cfg"]) == (recipe["steps"], recipe["cfg"])
        assert sampler["mode"] in recipe["modes"] and sampler["warn_without_spatial_lora"] is True
        if "motion_scale" in recipe:
            assert model_chain["ALCM_ImageToVideo"]["motion_scale"] == recipe["motion_scale"]
        latent_from = prompt[sampler["latent_image"][0]]
        if latent_from["class_type"] == "LatentUpscaleBy":  # a hi-res second pass on the first pass's latents
            assert prompt[latent_from["inputs"]["samples"][0]]["class_type"] == "ALCM_Sampler"
            assert latent_from["inputs"]["scale_by"] == PACK_SETTINGS["hires_scale"][0]
            assert sampler["denoise"] == PACK_SETTINGS["hires_denoise"][0]
        else:
            from_video = latent_from["class_type"] in ("VAEEncode", "ALCM_LoadVideo")
            assert sampler["denoise"] == (PACK_SETTINGS["v2v_denoise"][0] if from_video else 1.0)
        windows = model_chain.get("ALCM_ContextWindows")
        if windows:
            assert (windows["context_length"], windows["overlap"], windows["freenoise"]) == PACK_SETTINGS["context_windows"][0]
        for motion_lora in (n["inputs"] for n in motion_chain if n["class_type"] == "ALCM_LoadMotionLoRA"):
            assert motion_lora["strength"] == PACK_SETTINGS["motion_lora_strength"][0]
        if "freeinit" in sampler:
            options = prompt[sampler["freeinit"][0]]["inputs"]
            assert tuple(options[k] for k in ("iterations", "filter", "spatial_stop", "temporal_stop",
                                              "butterworth_order")) == PACK_SETTINGS["freeinit"][0]


def check_svd_recipe(prompt, sampler, model_chain):
    recipe = {key: value for key, (value, _source) in RECIPE[model_chain["ALCM_LoadAnimateLCMSVD"]["unet_name"]].items()}
    assert (sampler["steps"], sampler["cfg"], sampler["denoise"]) == (recipe["steps"], recipe["cfg"], 1.0)
    assert sampler["mode"] in recipe["modes"]
    assert model_chain["VideoLinearCFGGuidance"]["min_cfg"] == recipe["min_cfg"]
    conditioning = prompt[sampler["positive"][0]]
    assert conditioning["class_type"] == "SVD_img2vid_Conditioning"
    assert [sampler[k][0] for k in ("positive", "negative", "latent_image")] == [sampler["positive"][0]] * 3
    assert tuple(conditioning["inputs"][k] for k in ("width", "height", "video_frames", "motion_bucket_id", "fps",
                                                     "augmentation_level")) == recipe["conditioning"]


def test_svd_xt_workflow_converts_to_the_expected_prompt(host, workflow_api):
    prompt = workflow_api.to_api(load(WORKFLOW_DIR / "animatelcm_svd_xt_i2v.json"))
    by_type = {node["class_type"]: (node_id, node["inputs"]) for node_id, node in prompt.items()}
    assert set(by_type) == {"ImageOnlyCheckpointLoader", "LoadImage", "SVD_img2vid_Conditioning",
                            "ALCM_LoadAnimateLCMSVD", "VideoLinearCFGGuidance", "ALCM_Sampler", "VAEDecode",
                            "ALCM_SaveVideo"}  # the note is left out
    ckpt, loader = by_type["ImageOnlyCheckpointLoader"]
    conditioning_id, conditioning = by_type["SVD_img2vid_Conditioning"]
    assert loader == {"ckpt_name": "svd_xt.safetensors"}
    assert (conditioning["clip_vision"], conditioning["vae"]) == ([ckpt, 1], [ckpt, 2])
    assert conditioning["init_image"] == [by_type["LoadImage"][0], 0]
    guidance_id, guidance = by_type["VideoLinearCFGGuidance"]
    assert guidance["model"] == [by_type["ALCM_LoadAnimateLCMSVD"][0], 0]
    _, sampler = by_type["ALCM_Sampler"]
    assert sampler["model"] == [guidance_id, 0] and sampler["latent_image"] == [conditioning_id, 2]
    assert by_type["VAEDecode"][1]["vae"] == [ckpt, 2]


def test_svd_xt_workflow_note_says_how_guidance_and_augmentation_differ(host, workflow_api):
    """The graph's note: the per-frame guidance, and that SVD_img2vid_Conditioning's augmentation_level noises
    pixels in [0, 1] (the official pipeline.py: image in [-1, 1] + noise_aug_strength·noise), so the same
    number is twice the official noise."""
    wf = load(WORKFLOW_DIR / "animatelcm_svd_xt_i2v.json")
    [note] = [n["widgets_values"][0] for n in wf["nodes"] if n["type"] == "Note"]
    for words in ("min_guidance_scale 1, max_guidance_scale 1.2", "from min_cfg 1.0 on the first frame to the "
                  "sampler's cfg 1.2 on the last", "ComfyUI's [0, 1] range", "pixels in [-1, 1]",
                  "twice the official noise", "0.01 adds the official noise"):
        assert words in note
    conditioning = next(n for n in wf["nodes"] if n["type"] == "SVD_img2vid_Conditioning")
    assert "augmentation 0.02: see the note" in conditioning["title"]


def test_the_recipe_test_catches_a_workflow_without_the_spatial_lora(host, workflow_api):
    wf = load(T2V)
    spatial = next(n for n in wf["nodes"] if n["type"] == "ALCM_LoadAnimateLCMLoRA")
    spatial["mode"] = 2  # muted: the checkpoint's MODEL is what the converted graph would need
    apply = next(n for n in wf["nodes"] if n["type"] == "ALCM_ApplyMotionModule")
    into_apply = next(link for link in wf["links"] if link[3] == apply["id"] and link[5] == "MODEL")
    into_spatial = next(link for link in wf["links"] if link[3] == spatial["id"])
    into_apply[1], into_apply[2] = into_spatial[1], into_spatial[2]
    with pytest.raises(AssertionError, match="AnimateLCM_sd15_t2v.ckpt samples without AnimateLCM's spatial LoRA"):
        check_recipe(workflow_api.to_api(wf), T2V)


def test_frontend_only_nodes_converted_widgets_and_modes(host, workflow_api):
    """Reroutes are followed, a PrimitiveNode's value is sent as a constant, a converted widget keeps
    its slot in widgets_values, notes and muted nodes are left out, a bypassed node is refused."""
    wf = load(T2V)
    sampler = next(n for n in wf["nodes"] if n["type"] == "ALCM_Sampler")
    latent = next(n for n in wf["nodes"] if n["type"] == "EmptyLatentImage")
    model_link = next(e for e in sampler["inputs"] if e["name"] == "model")
    origin = next(link for link in wf["links"] if link[0] == model_link["link"])
    wf["nodes"] += [
        {"id": 20, "type": "Reroute", "mode": 0, "inputs": [{"name": "", "type": "*", "link": 30}], "outputs": []},
        {"id": 21, "type": "PrimitiveNode", "mode": 0, "inputs": [], "outputs": [], "widgets_values": [7, "fixed"]},
        {"id": 22, "type": "Note", "mode": 0, "inputs": [], "outputs": [], "widgets_values": ["hello"]},
        {"id": 23, "type": "EmptyLatentImage", "mode": 2, "inputs": [], "outputs": [], "widgets_values": [64, 64, 1]},
    ]
    # model: source -> reroute 20 -> sampler; steps: primitive 21 -> sampler's converted "steps" widget
    wf["links"] += [[30, origin[1], origin[2], 20, 0, "MODEL"], [31, 20, 0, sampler["id"], 0, "MODEL"],
                    [32, 21, 0, sampler["id"], 4, "INT"]]
    model_link["link"] = 31
    sampler["inputs"].append({"name": "steps", "type": "INT", "link": 32, "widget": {"name": "steps"}})
    latent["inputs"].append({"name": "width", "type": "INT", "link": None, "widget": {"name": "width"}})
    wf["links"].remove(origin)
    prompt = workflow_api.to_api(wf)
    assert workflow_api.check_workflow(wf) == []
    assert set(prompt) == {str(n["id"]) for n in wf["nodes"] if n["id"] < 20}
    inputs = prompt[str(sampler["id"])]["inputs"]
    assert inputs["model"] == [str(origin[1]), origin[2]] and inputs["steps"] == 7 and inputs["cfg"] == 1.5
    assert prompt[str(latent["id"])]["inputs"]["width"] == 512
    wf["nodes"][-1]["mode"] = 4
    with pytest.raises(workflow_api.WorkflowError, match="bypassed"):
        workflow_api.to_api(wf)


def test_a_file_older_than_a_widget_gets_its_default_like_the_frontend(host, workflow_api):
    """A workflow saved before Apply Motion Module gained motion_precision (and Save Video its quality):
    the missing widgets take their defaults, as the frontend fills them when it opens the file."""
    wf = load(T2V)
    apply = next(n for n in wf["nodes"] if n["type"] == "ALCM_ApplyMotionModule")
    save = next(n for n in wf["nodes"] if n["type"] == "ALCM_SaveVideo")
    apply["widgets_values"], save["widgets_values"] = [0.7], save["widgets_values"][:2]
    prompt = workflow_api.to_api(wf)
    assert prompt[str(apply["id"])]["inputs"]["strength"] == 0.7
    assert prompt[str(apply["id"])]["inputs"]["motion_precision"] == "auto"  # a COMBO's default
    saved = prompt[str(save["id"])]["inputs"]
    assert (saved["format"], saved["frame_rate"], saved["pingpong"], saved["quality"]) == ("webp", 8.0, False, 90)
    assert workflow_api.check_workflow(wf) == []


def test_check_workflow_reports_what_would_fail(host, workflow_api):
    wf = load(T2V)
    values = {n["type"]: n["widgets_values"] for n in wf["nodes"]}
    values["ALCM_Sampler"][5] = "no_such_mode"
    values["ALCM_Sampler"][4] = 1.5  # denoise above its max
    values["CheckpointLoaderSimple"][0] = "not a model"  # a model name, but not a weight file
    values["ALCM_LoadMotionModule"][0] = "mine.ckpt"  # fine: a stand-in or the user's file
    wf["links"][0][5] = "CLIP"  # the model link claims another type
    wf["nodes"].append({"id": 30, "type": "NoSuchNode", "mode": 0, "inputs": [], "outputs": []})
    problems = "\n".join(workflow_api.check_workflow(wf))
    for expected in ("'no_such_mode' is not one of", "denoise: 1.5 is outside", "'not a model' is not a model file",
                     "link 1 ", "NoSuchNode"):
        assert expected in problems
    assert "mine.ckpt" not in problems and len(problems.splitlines()) == 6  # link 1: both ends disagree


def test_a_workflow_saved_before_the_one_declaration_change_opens_unchanged(host, pack, workflow_api):
    """Saved workflows name nodes by id and keep widget values by position: tests/data holds one node of every type,
    each widget set to its own value, as the pack saved it before nodes/declare.py. Each node is still there under
    its id and name, each value lands on the widget it was saved from, and every output slot keeps its type."""
    saved = load(Path(__file__).resolve().parent / "data" / "every_node_saved_before_declarations.json")
    assert len(saved["nodes"]) == 25
    for node in saved["nodes"]:
        kind = node["type"]
        assert kind in pack.NODE_CLASS_MAPPINGS, f"{kind}: a saved workflow's node is gone"
        assert pack.NODE_DISPLAY_NAME_MAPPINGS[kind] == node["title"]
        expected = saved["extra"]["widget_inputs"][str(node["id"])]
        values = workflow_api.widget_values(node)
        assert {name: values.get(name) for name in expected} == expected, kind
        cls = pack.NODE_CLASS_MAPPINGS[kind]
        assert [(o["type"], o["name"]) for o in node["outputs"]] == list(zip(cls.RETURN_TYPES, cls.RETURN_NAMES)), kind
