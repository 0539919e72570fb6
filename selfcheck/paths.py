"""The pack's paths, each run as a graph in ComfyUI's executor and compared with its float64 oracle.

Every function takes the run's Graphs (selfcheck/graph.py) and returns a list of Check: the largest
difference from the oracle and the tolerance it must stay within (float32 against float64).
"""
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch

from . import models, oracles

SEED = 123
LOOP_TOLERANCE = 1e-5  # a 4-step sampling run in float32 against the float64 loop
LAYER_TOLERANCE = 1e-4  # a motion layer (two attentions and a feed-forward over 128 channels) in float32
WEIGHT_TOLERANCE = 1e-5  # a merged LoRA weight
PIXEL_TOLERANCE = 0.5 / 255 + 1e-6  # a lossless 8-bit video: every pixel back within half a level


@dataclass
class Check:
    name: str
    max_diff: float
    tolerance: float
    error: str = None  # what went wrong when the path did not run at all

    @property
    def ok(self):
        return self.error is None and self.max_diff <= self.tolerance  # NaN is never ok


def _device():
    import comfy.model_management
    return comfy.model_management.get_torch_device()


def _unload():
    import comfy.model_management
    comfy.model_management.unload_all_models()


def _diff(ours, expected):
    return (ours.detach().double().cpu() - expected.double()).abs().max().item()


def _scaled(tolerance, expected):
    """`tolerance` relative to the reference's size where it is above 1 (float32 keeps 7 digits of any size)."""
    return tolerance * max(1.0, expected.abs().max().item())


def _node(class_type, **inputs):
    return {"class_type": class_type, "inputs": inputs}


def _file(graphs, folder, suffix, state_dict):
    """Write `state_dict` into a model file of this run (.ckpt/.pt: a pickle, as the released files are)."""
    from safetensors.torch import save_file
    path = graphs.model_file(folder, f"animatelcm_selfcheck_{uuid.uuid4().hex[:8]}{suffix}")
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
    else:
        torch.save(state_dict, path)
    return path.name


def _sampling_run(graphs, model, latent, seed, steps, cfg, denoise, frames, extra_nodes=None, model_link=("1", 0),
                  latent_link=("4", 0), also=()):
    """The AnimateLCM Sampler node on `model` with the analytic text embeddings 0.2 / -0.1; returns its LATENT's
    samples (and, with `also`, the outputs of those nodes too)."""
    prompt = {"1": graphs.source(model, "MODEL"),
              "2": graphs.source(models.conditioning(0.2), "CONDITIONING"),
              "3": graphs.source(models.conditioning(-0.1), "CONDITIONING"),
              "4": graphs.source({"samples": latent}, "LATENT") if latent is not None else
              _node("EmptyLatentImage", width=32, height=32, batch_size=frames),
              **(extra_nodes or {}),
              "9": _node("ALCM_Sampler", model=list(model_link), positive=["2", 0], negative=["3", 0],
                         latent_image=list(latent_link), seed=seed, steps=steps, cfg=cfg, denoise=denoise,
                         mode="auto", warn_without_spatial_lora=False)}
    out = graphs.run(prompt, ["9", *also])
    return (out["9"][0]["samples"], out) if also else out["9"][0]["samples"]


def _analytic_eps(frame_mix=0.0):
    def eps_of(x, t, positive, step):
        return oracles.analytic_eps(x, t, 0.2 if positive else -0.1, frame_mix)
    return eps_of


# --- sampling ----------------------------------------------------------------------------------------

def schedule(graphs):
    """AnimateLCM Model Sampling + Scheduler: the official sigmas, text-to-video and image-to-video."""
    model, _ = models.analytic_model(device=_device())
    prompt = {"1": graphs.source(model, "MODEL")}
    for n, (mode, settings) in enumerate((("text-to-video", oracles.TEXT_TO_VIDEO),
                                          ("image-to-video schedule", oracles.IMAGE_TO_VIDEO))):
        prompt[f"{n}0"] = _node("ALCM_ModelSampling", model=["1", 0], mode=mode)
        prompt[f"{n}1"] = _node("ALCM_Scheduler", model=[f"{n}0", 0], steps=4, denoise=1.0)
    out = graphs.run(prompt, ["01", "11"])
    diff = max(_diff(out["01"][0], torch.tensor(oracles.official_sigmas(4, 100, 0.012))),
               _diff(out["11"][0], torch.tensor(oracles.official_sigmas(4, 200, 0.014))))
    return [Check("schedule (t2v and I2V sigmas, 4 steps)", diff, LOOP_TOLERANCE)]


def t2v(graphs):
    """Text-to-video: AnimateLCM Sampler, 4 steps at cfg 1.5, against the official scheduler loop."""
    frames, steps, cfg = 3, 4, 1.5
    model, _ = models.analytic_model(device=_device())
    out = _sampling_run(graphs, model, None, SEED, steps, cfg, 1.0, frames)
    noise, step_noise = oracles.seeded_noise(out.shape, SEED, steps)
    expected = oracles.official_loop(None, noise, step_noise, oracles.official_timesteps(steps), cfg, _analytic_eps())
    return [Check("t2v (AnimateLCM schedule, 4 steps, cfg 1.5)", _diff(out * oracles.SD15_LATENT_SCALE, expected),
                  _scaled(LOOP_TOLERANCE, expected))]


def v2v(graphs):
    """Video-to-video: the input latent noised to the timestep of denoise 0.6, then 4 steps."""
    frames, steps, cfg, denoise = 3, 4, 1.0, 0.6
    latent = torch.randn(frames, 4, 4, 4, generator=torch.Generator().manual_seed(7))
    model, _ = models.analytic_model(device=_device())
    out = _sampling_run(graphs, model, latent, SEED, steps, cfg, denoise, frames)
    noise, step_noise = oracles.seeded_noise(out.shape, SEED, steps)
    expected = oracles.official_loop(latent.double() * oracles.SD15_LATENT_SCALE, noise, step_noise,
                                     oracles.official_timesteps(steps, 100, denoise), cfg, _analytic_eps(),
                                     strength=denoise)
    return [Check("v2v (denoise 0.6, 4 steps)", _diff(out * oracles.SD15_LATENT_SCALE, expected),
                  _scaled(LOOP_TOLERANCE, expected))]


def context_windows(graphs):
    """Context Windows (uniform, 6 frames, overlap 2, pyramid) with FreeNoise over 10 frames, 4 steps: a UNet
    whose ε mixes the frames it sees, so every window and fuse weight shows in the result."""
    frames, length, overlap, steps, mix = 10, 6, 2, 4, 0.2
    model, _ = models.analytic_model(frame_mix=mix, device=_device())
    motion = _file(graphs, "animatediff_models", ".safetensors",
                   models.motion_state_dict("animatelcm_t2v", models.TINY_CHANNELS))
    extra = {"5": _node("ALCM_LoadMotionModule", motion_module_name=motion),
             "6": _node("ALCM_ApplyMotionModule", model=["1", 0], motion_module=["5", 0], strength=1.0),
             "7": _node("ALCM_ContextWindows", model=["6", 0], context_length=length, overlap=overlap,
                        schedule="uniform", closed_loop=False, fuse="pyramid", freenoise=True)}
    out = _sampling_run(graphs, model, None, SEED, steps, 1.0, 1.0, frames, extra, model_link=("7", 0))
    _unload()
    noise, step_noise = oracles.seeded_noise(out.shape, SEED, steps)
    # FreeNoise: the same frame map on the initial noise and on every step's fresh noise
    noise = oracles.freenoise_in_place(noise, length, overlap, SEED)
    step_noise = [oracles.freenoise_in_place(n, length, overlap, SEED) for n in step_noise]

    def eps_of(x, t, positive, step):
        windows = oracles.uniform_windows(frames, length, overlap, step)
        return oracles.windowed(lambda xw: oracles.analytic_eps(xw, t, 0.2, mix), x, windows)
    expected = oracles.official_loop(None, noise, step_noise, oracles.official_timesteps(steps), 1.0, eps_of)
    return [Check("Context Windows + FreeNoise (10 frames, windows of 6)",
                  _diff(out * oracles.SD15_LATENT_SCALE, expected), _scaled(LOOP_TOLERANCE, expected))]


def lightning(graphs):
    """AnimateDiff-Lightning: a module named as the 4-step file, sampled by the AnimateLCM Sampler in mode auto,
    4 steps at cfg 1, against the model card's pipeline (Euler, "trailing" timesteps, AnimateDiff's linear betas)."""
    frames, steps = 3, 4
    model, _ = models.analytic_model(device=_device())
    path = graphs.model_file("animatediff_models", f"animatelcm_selfcheck_{uuid.uuid4().hex[:8]}_"
                                                   "animatediff_lightning_4step_comfyui.safetensors")
    from safetensors.torch import save_file
    save_file(models.motion_state_dict("v2", models.TINY_CHANNELS), str(path))
    extra = {"5": _node("ALCM_LoadMotionModule", motion_module_name=path.name),
             "6": _node("ALCM_ApplyMotionModule", model=["1", 0], motion_module=["5", 0], strength=1.0)}
    out = _sampling_run(graphs, model, None, SEED, steps, 1.0, 1.0, frames, extra, model_link=("6", 0))
    _unload()
    noise, _ = oracles.seeded_noise(out.shape, SEED, 0)
    expected = oracles.lightning_loop(None, noise, steps, 1.0, _analytic_eps())
    return [Check("AnimateDiff-Lightning (its 4-step file's recipe: Euler, trailing timesteps)",
                  _diff(out * oracles.SD15_LATENT_SCALE, expected), _scaled(LOOP_TOLERANCE, expected))]


# --- motion modules ----------------------------------------------------------------------------------

MOTION_FORMATS = (  # (what the line says, family, file suffix, in diffusers' naming)
    ("AnimateLCM t2v", "animatelcm_t2v", ".ckpt", False),
    ("AnimateDiff v1", "v1", ".safetensors", False),
    ("AnimateDiff v2", "v2", ".ckpt", False),
    ("AnimateDiff v3", "v3", ".safetensors", False),
    ("diffusers MotionAdapter", "v2", ".safetensors", True),
)


def _layers_of(state_dict):
    """{position: that layer's weights, relative to the position}."""
    layers = {}
    for key, value in state_dict.items():
        if ".motion_modules." in key:
            position = ".".join(key.split(".")[:4]) if key.startswith(("down", "up")) else ".".join(key.split(".")[:3])
            layers.setdefault(position, {})[key[len(position) + 1:]] = value
    return layers


def _motion_layers_diff(model, layers, strength, frames=4):
    """The largest difference between each motion layer the MODEL carries and the oracle layer, at the place
    in the UNet where AnimateDiff puts it; inf where a layer is missing."""
    import comfy.model_management
    import comfy.utils
    from ..motion.video_batch import video_layout
    comfy.model_management.load_models_gpu([model])
    unet = model.model.diffusion_model
    generator = torch.Generator().manual_seed(5)
    worst = 0.0
    for position, weights in layers.items():
        layer = comfy.utils.get_attr(unet, oracles.unet_block_of(position))._modules.get("motion_module")
        if layer is None:
            return float("inf")
        channels = weights["temporal_transformer.proj_in.weight"].shape[0]
        for side in (3, 8):  # both layouts the layer has on CPU (below and from 64 pixels a frame)
            x = torch.randn(frames, channels, side, side, generator=generator)
            with torch.no_grad(), video_layout(1):
                ours = layer(x.to(_device()))
            worst = max(worst, _diff(ours, oracles.temporal_layer(weights, x, 1, strength)))
    _unload()
    return worst


def motion_modules(graphs):
    """Load Motion Module for each file format, Apply Motion Module at strength 0.75: every layer in its place."""
    checks = []
    for label, family, suffix, diffusers in MOTION_FORMATS:
        state_dict = models.motion_state_dict(family, models.TINY_CHANNELS, seed=len(checks))
        name = _file(graphs, "animatediff_models", suffix, models.to_diffusers(state_dict) if diffusers else state_dict)
        prompt = {"1": graphs.source(models.tiny_sd15_model(device=_device()), "MODEL"),
                  "2": _node("ALCM_LoadMotionModule", motion_module_name=name),
                  "3": _node("ALCM_ApplyMotionModule", model=["1", 0], motion_module=["2", 0], strength=0.75)}
        model = graphs.run(prompt, ["3"])["3"][0]
        layers = _layers_of(state_dict)
        checks.append(Check(f"motion module {label} ({suffix}): load, apply, {len(layers)} layers",
                            _motion_layers_diff(model, layers, 0.75), LAYER_TOLERANCE))
    return checks


def motion_lora(graphs):
    """Load Motion LoRA at 0.8 on an AnimateLCM module: W + 0.8·up@down in every temporal attention."""
    state_dict = models.motion_state_dict("animatelcm_t2v", models.TINY_CHANNELS, seed=11)
    lora = models.motion_lora_state_dict(models.TINY_CHANNELS, rank=4, seed=12)
    prompt = {"1": graphs.source(models.tiny_sd15_model(device=_device()), "MODEL"),
              "2": _node("ALCM_LoadMotionModule", motion_module_name=_file(graphs, "animatediff_models", ".ckpt",
                                                                           state_dict)),
              "3": _node("ALCM_LoadMotionLoRA", motion_module=["2", 0], strength=0.8,
                         motion_lora_name=_file(graphs, "animatediff_motion_lora", ".ckpt", lora)),
              "4": _node("ALCM_ApplyMotionModule", model=["1", 0], motion_module=["3", 0], strength=1.0)}
    model = graphs.run(prompt, ["4"])["4"][0]
    merged = dict(state_dict)
    for key in lora:
        if key.endswith(".down.weight"):
            target = models.motion_lora_target(key)
            merged[target] = oracles.merged(state_dict[target], lora[key[:-len("down.weight")] + "up.weight"],
                                            lora[key], 0.8)
    return [Check("motion LoRA (strength 0.8, 168 attention weights)",
                  _motion_layers_diff(model, _layers_of(merged), 1.0), LAYER_TOLERANCE)]


# --- LoRAs -------------------------------------------------------------------------------------------

def spatial_lora(graphs):
    """Load AnimateLCM Spatial LoRA: every attention weight + 0.8·(1/8)·up@down, whatever alpha the file has."""
    import comfy.model_management
    import comfy.utils
    lora = models.kohya_lora(rank=8, alpha=4.0, seed=3, text_encoder=False, dtype=torch.float32,
                             channels=models.TINY_CHANNELS[:3])
    model = models.tiny_sd15_model(device=_device())
    base = {k: v.clone() for k, v in model.model.diffusion_model.state_dict().items()}
    name = _file(graphs, "loras", ".safetensors", lora)
    prompt = {"1": graphs.source(model, "MODEL"),
              "2": _node("ALCM_LoadAnimateLCMLoRA", model=["1", 0], lora_name=name, strength=1.0)}
    patched = graphs.run(prompt, ["2"])["2"][0]
    comfy.model_management.load_models_gpu([patched])
    unet, worst, modules = patched.model.diffusion_model, 0.0, 0
    for key in lora:
        if key.endswith(".lora_down.weight"):
            module = key[:-len(".lora_down.weight")]
            target = oracles.kohya_target(module)
            expected = oracles.merged(base[target], lora[module + ".lora_up.weight"], lora[key],
                                      oracles.ANIMATELCM_SPATIAL_LORA_SCALE)
            worst = max(worst, _diff(comfy.utils.get_attr(unet, target), expected))
            modules += 1
    _unload()
    return [Check(f"spatial LoRA (AnimateLCM scale 0.8/8, {modules} layers)", worst, WEIGHT_TOLERANCE)]


# --- image to video ------------------------------------------------------------------------------------

def image_to_video(graphs):
    """AnimateLCM Image to Video: the image encoder's four features (official Adapter), where they go, and
    4 steps on the image-to-video schedule (200 original steps, beta_end 0.014)."""
    frames, steps, motion_scale = 3, 4, 0.8
    state_dict = models.motion_state_dict("animatelcm_i2v", models.TINY_CHANNELS, seed=21)
    reference = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(22))
    model, _ = models.analytic_model(device=_device())
    extra = {"5": _node("ALCM_LoadMotionModule", motion_module_name=_file(graphs, "animatediff_models", ".ckpt",
                                                                          state_dict)),
             "6": graphs.source(torch.zeros(1, 32, 32, 3), "IMAGE"),
             "7": graphs.source(None, "VAE"),  # unused: the reference latent is given
             "8": _node("ALCM_ImageToVideo", model=["1", 0], motion_module=["5", 0], image=["6", 0], vae=["7", 0],
                        width=32, height=32, frames=frames, motion_scale=motion_scale, reference_latent=["4", 0])}
    out, outputs = _sampling_run(graphs, model, reference, SEED, steps, 1.0, 1.0, frames, extra,
                                 model_link=("8", 0), latent_link=("8", 1), also=("8",))
    conditioned = outputs["8"][0]
    # the features: one per down level, in input blocks 2, 5, 8, 11
    encoder_weights = {k[len("img_encoder."):]: v for k, v in state_dict.items() if k.startswith("img_encoder.")}
    expected = oracles.image_encoder(encoder_weights, (reference * oracles.SD15_LATENT_SCALE).expand(frames, -1, -1, -1),
                                     motion_scale)
    layers = [_feature_layer(conditioned, f"diffusion_model.input_blocks.{i}", level)
              for level, i in enumerate(oracles.IMAGE_FEATURE_BLOCKS)]
    if any(layer is None for layer in layers):
        features_diff = float("inf")  # a level's features are missing, or in another block
    else:
        features = layers[0].conditioning.features(frames)
        features_diff = max(_diff(f, e) for f, e in zip(features, expected))
    noise, step_noise = oracles.seeded_noise(out.shape, SEED, steps)
    loop = oracles.official_loop(None, noise, step_noise, oracles.official_timesteps(steps, 200), 1.0,
                                 _analytic_eps(), beta_end=0.014)
    _unload()
    largest = max(e.abs().max() for e in expected)
    return [Check("I2V image encoder (4 levels, into down blocks 2/5/8/11)", features_diff,
                  _scaled(LAYER_TOLERANCE, largest)),
            Check("I2V sampling (I2V schedule, 4 steps)", _diff(out * oracles.SD15_LATENT_SCALE, loop),
                  _scaled(LOOP_TOLERANCE, loop))]


def _feature_layer(model, path, level):
    """The layer in the MODEL's (patched) block at `path` that adds the image features of `level`, or None."""
    block = model.object_patches.get(path)
    children = block._modules.values() if block is not None else ()
    return next((c for c in children if getattr(c, "level", None) == level), None)


# --- keyframes (SparseCtrl) --------------------------------------------------------------------------------

SPARSECTRL_CHANNELS = (64, 64, 128, 128)  # two channels per GroupNorm group on level 0: no degenerate frames


def keyframes(graphs):
    """Load SparseCtrl (scribble, the released .ckpt layout) + Apply SparseCtrl Keyframes (0, -1) in the executor,
    then the control's 13 residuals for one UNet call (cond and uncond): the official pipeline's condition and
    mask and the official forward (sparse_controlnet.py), in float64."""
    import comfy.model_management
    from ..control.keyframes import fit_images
    from ..stand_ins.random_sparsectrl import sparsectrl_state_dict
    frames, sigma, strength = 4, 3.0, 0.9
    state_dict = sparsectrl_state_dict("scribble", SPARSECTRL_CHANNELS, seed=41, dtype=torch.float32)
    pictures = torch.rand(2, 40, 48, 3, generator=torch.Generator().manual_seed(42))
    prompt = {"1": graphs.source(models.conditioning(0.2), "CONDITIONING"),
              "2": graphs.source(models.conditioning(-0.1), "CONDITIONING"),
              "3": _node("ALCM_LoadSparseCtrl", sparsectrl_name=_file(graphs, "controlnet", ".ckpt", state_dict)),
              "4": graphs.source(pictures, "IMAGE"),
              "5": _node("ALCM_ApplySparseCtrlKeyframes", positive=["1", 0], negative=["2", 0], sparsectrl=["3", 0],
                         images=["4", 0], keyframe_frames="0, -1", strength=strength, start_percent=0.0,
                         end_percent=1.0)}
    positive, negative = graphs.run(prompt, ["5"])["5"]
    control = positive[0][1]["control"]
    if negative[0][1].get("control") is not control:
        return [Check("keyframes (SparseCtrl)", float("inf"), LAYER_TOLERANCE, "the prompts carry different controls")]
    model = models.tiny_sd15_model(device=_device())
    control.pre_run(model.model, lambda percent: 1000.0 * (1 - percent))
    comfy.model_management.load_models_gpu(control.get_models())
    x = torch.randn(2 * frames, 4, 8, 8, generator=torch.Generator().manual_seed(43))
    text = torch.cat([torch.full((frames, 77, 768), 0.2), torch.full((frames, 77, 768), -0.1)])
    with torch.no_grad():
        out = control.get_control(x.to(_device()), torch.full((2 * frames,), sigma, device=_device()),
                                  {"c_crossattn": text.to(_device())}, 2, {})
    cond, mask = oracles.sparsectrl_condition(fit_images(pictures, 64, 64), [0, -1], frames)
    t = model.model.model_sampling.timestep(torch.tensor([sigma])).item()
    expected = oracles.sparsectrl(state_dict, cond.repeat(2, 1, 1, 1), mask.repeat(2, 1, 1, 1), t, text, 2, strength)
    ours = out["output"] + out["middle"]
    control.cleanup()
    _unload()
    worst = max(_diff(a, b) / max(1.0, b.abs().max().item()) for a, b in zip(ours, expected))
    return [Check(f"keyframes (SparseCtrl scribble, {len(ours)} residuals)", worst, LAYER_TOLERANCE)]


# --- video files ----------------------------------------------------------------------------------------

def video_file(graphs):
    """Save Video (apng, lossless) and Load Video: every frame back as its 8-bit values."""
    import folder_paths
    generator = torch.Generator().manual_seed(31)
    frames = torch.rand(4, 1, 1, 3, generator=generator) * torch.linspace(0, 1, 24).view(1, 1, 24, 1) \
        + 0.2 * torch.rand(4, 16, 24, 3, generator=generator)
    frames = frames.clamp(0, 1)
    prefix = f"animatelcm_selfcheck_{uuid.uuid4().hex[:8]}"
    graphs.run({"1": graphs.source(frames, "IMAGE"),
                "2": _node("ALCM_SaveVideo", images=["1", 0], filename_prefix=prefix, format="apng", frame_rate=8.0,
                           loop_count=0, pingpong=False, quality=90)}, [])
    saved = sorted(p.name for p in Path(folder_paths.get_output_directory()).glob(prefix + "*"))
    if not saved:
        return [Check("video file (Save Video apng, Load Video)", float("inf"), PIXEL_TOLERANCE,
                      "Save Video wrote no file")]
    loaded = graphs.run({"1": _node("ALCM_LoadVideo", video=saved[0], frame_cap=0, skip_first_frames=0,
                                    select_every_nth=1, resize_to_multiple_of_8=True)}, ["1"])["1"][0]
    if tuple(loaded.shape) != tuple(frames.shape):
        return [Check("video file (Save Video apng, Load Video)", float("inf"), PIXEL_TOLERANCE,
                      f"saved {tuple(frames.shape)}, loaded {tuple(loaded.shape)}")]
    return [Check("video file (Save Video apng, Load Video, 4 frames)", _diff(loaded, oracles.eight_bit(frames)),
                  PIXEL_TOLERANCE)]


PATHS = (schedule, t2v, v2v, lightning, motion_modules, motion_lora, spatial_lora, context_windows, image_to_video,
         keyframes,
         video_file)
