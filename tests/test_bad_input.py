"""Bad input, as a careless or hostile user sends it through ComfyUI's executor, ends in a clear
refusal that names the file or input and the fix, or in a correct result (issue 15)."""
import importlib

import pytest
import torch
from safetensors.torch import save_file

import comfy_host
import stand_ins
from comfy_host import PromptFailed, PromptInvalid
from fixture_lora import kohya_lora, sdxl_kohya_lora
from fixture_models import tiny_sd15_model

MAX_SEED = 0xffffffffffffffff  # the seed widget's maximum


@pytest.fixture(scope="module")
def checkpoint(host):
    return stand_ins.narrow_sd15_checkpoint(host)


def refusal(host, prompt, executor=None):
    """What ComfyUI reports for a prompt that must fail (every node of it asked to run): the failing
    node's exception message, or the validation errors."""
    with pytest.raises((PromptFailed, PromptInvalid)) as failed:
        host.run(prompt, want=list(prompt), executor=executor)
    return getattr(failed.value, "message", str(failed.value))


def write_lora(host, name, state_dict):
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(host.models_dir("loras") / name))
    return name


def text_to_video(checkpoint, seed, sampler="ALCM_Sampler", frames=2):
    """Checkpoint → prompts → empty latents → a sampler (the all-in-one node, or SamplerCustom with ours)."""
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox running", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": frames}},
    }
    if sampler == "ALCM_Sampler":
        prompt["5"] = {"class_type": "ALCM_Sampler", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
            "seed": seed, "steps": 2, "cfg": 1.0, "denoise": 1.0, "mode": "text-to-video"}}
    else:
        prompt["6"] = {"class_type": "ALCM_ModelSampling", "inputs": {"model": ["1", 0], "mode": "text-to-video"}}
        prompt["7"] = {"class_type": "ALCM_SamplerSelect", "inputs": {}}
        prompt["8"] = {"class_type": "ALCM_Scheduler", "inputs": {"model": ["6", 0], "steps": 2, "denoise": 1.0}}
        prompt["5"] = {"class_type": "SamplerCustom", "inputs": {
            "model": ["6", 0], "add_noise": True, "noise_seed": seed, "cfg": 1.0, "positive": ["2", 0],
            "negative": ["3", 0], "sampler": ["7", 0], "sigmas": ["8", 0], "latent_image": ["4", 0]}}
    return prompt


# --- 1. the largest seed ---------------------------------------------------------------------------

@pytest.mark.parametrize("sampler", ["ALCM_Sampler", "SamplerCustom"])
def test_the_largest_seed_samples_and_is_deterministic(host, checkpoint, sampler):
    executor = host.executor()

    def run(seed):
        latent = host.run(text_to_video(checkpoint, seed, sampler), want=["5"], executor=executor).output("5")
        return latent["samples"].clone()
    largest, again = run(MAX_SEED), run(MAX_SEED)
    assert torch.isfinite(largest).all()
    assert torch.equal(largest, again)


def test_seeds_below_the_largest_keep_their_step_noise(pack):
    """Mapping the largest seed into torch's range changes no other seed's video."""
    x = torch.zeros(2, 4, 2, 2)
    for seed in (0, 5, MAX_SEED - 1):
        expected = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + 1))
        assert torch.equal(pack.samplers.noise.step_noise_sampler(x, seed)(1.0, 0.5), expected)


# --- 2. SDXL LoRAs ---------------------------------------------------------------------------------

def lora_graph(checkpoint, node, lora):
    """Checkpoint → one of the pack's LoRA loaders → what a user wires after it."""
    inputs = {"ALCM_LoadStyleLoRA": {"clip": ["1", 1], "lora_name": lora, "strength_model": 0.8, "strength_clip": 0.8},
              "ALCM_StyleLoRAStack": {"clip": ["1", 1], "lora_1": lora, "strength_1": 0.8,
                                      **{f"lora_{i}": "None" for i in range(2, 6)},
                                      **{f"strength_{i}": 0.8 for i in range(2, 6)}},
              "ALCM_LoadAnimateLCMLoRA": {"lora_name": lora, "strength": 1.0}}[node]
    return {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
            "2": {"class_type": node, "inputs": {"model": ["1", 0], **inputs}},
            "3": {"class_type": "ALCM_ModelSampling", "inputs": {"model": ["2", 0], "mode": "text-to-video"}}}


@pytest.mark.parametrize("node", ["ALCM_LoadStyleLoRA", "ALCM_StyleLoRAStack", "ALCM_LoadAnimateLCMLoRA"])
def test_a_real_sdxl_lora_is_refused_by_every_loader_though_parts_of_it_fit(host, checkpoint, node):
    # at the narrow checkpoint's width, so that its image layers fit as a full-size SDXL file's fit SD1.5 by chance
    sdxl = sdxl_kohya_lora(channels=(320, 320))
    name = write_lora(host, "sdxl_style_lora.safetensors", sdxl)
    message = refusal(host, lora_graph(checkpoint, node, name))
    assert "'sdxl_style_lora.safetensors' is an SDXL LoRA" in message
    assert "lora_te2_" in message and "2048-wide cross-attention" in message and "Pick an SD1.5 LoRA" in message


@pytest.mark.parametrize("sign", ["second text encoder", "2048-wide cross-attention", "several transformer layers"])
def test_each_sdxl_sign_alone_is_enough(pack, host, sign):
    """An SD1.5 LoRA with one SDXL part added, and nothing else wrong, is refused for that part."""
    lora = kohya_lora(rank=4, channels=(32, 64, 128), dtype=torch.float32)
    sdxl = sdxl_kohya_lora(rank=4, channels=(64, 128), dtype=torch.float32)
    part = {"second text encoder": "lora_te2_text_model_encoder_layers_0_self_attn_q_proj",
            "2048-wide cross-attention": "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k",
            "several transformer layers": "lora_unet_input_blocks_4_1_transformer_blocks_1_attn1_to_q"}[sign]
    lora.update({k: v for k, v in sdxl.items() if k.startswith(part + ".")})
    name = write_lora(host, f"one_sdxl_part_{sign.split()[0]}.safetensors", lora)
    with pytest.raises(ValueError, match=f"'{name}' is an SDXL LoRA \\([^)]*{sign}"):
        pack.nodes.lora_nodes.LoadStyleLoRA().load(tiny_sd15_model(), None, name, 0.8, 0.8)
    del lora[part + ".lora_up.weight"], lora[part + ".lora_down.weight"], lora[part + ".alpha"]
    name = write_lora(host, "sd15_part_only.safetensors", lora)
    assert "patched" in pack.nodes.lora_nodes.LoadStyleLoRA().load(tiny_sd15_model(), None, name, 0.8, 0.8)[2]


def test_sdxl_fixture_has_the_kohya_sdxl_layout():
    keys = {k.split(".")[0] for k in sdxl_kohya_lora()}
    assert "lora_unet_input_blocks_4_1_transformer_blocks_1_attn2_to_k" in keys
    assert "lora_unet_middle_block_1_transformer_blocks_9_ff_net_2" in keys
    assert "lora_unet_output_blocks_0_1_proj_in" in keys and "lora_unet_output_blocks_6_1_proj_in" not in keys
    assert "lora_te1_text_model_encoder_layers_11_mlp_fc1" in keys and "lora_te2_text_model_encoder_layers_31_self_attn_q_proj" in keys
    assert sdxl_kohya_lora()["lora_unet_input_blocks_7_1_transformer_blocks_0_attn2_to_v.lora_down.weight"].shape == (4, 2048)


# --- 4. non-finite numbers, on every FLOAT input of every node of the pack -----------------------------
# Generic: the inputs are read from each node's INPUT_TYPES, so a node added later is swept too. Its
# other inputs get their defaults, or a link from a node that makes that type: a core node for
# ComfyUI's own types, else any pack node that returns it (built the same way).

CORE_PROVIDERS = {  # type: (class_type, inputs, output index); "MODEL"/"CLIP" values are links made on demand
    "MODEL": ("CheckpointLoaderSimple", {"ckpt_name": None}, 0),
    "CLIP": ("CheckpointLoaderSimple", {"ckpt_name": None}, 1),
    "VAE": ("CheckpointLoaderSimple", {"ckpt_name": None}, 2),
    "CONDITIONING": ("CLIPTextEncode", {"text": "a red fox running", "clip": "CLIP"}, 0),
    "LATENT": ("EmptyLatentImage", {"width": 64, "height": 64, "batch_size": 2}, 0),
    "IMAGE": ("EmptyImage", {"width": 64, "height": 64, "batch_size": 2, "color": 0}, 0),
    "MASK": ("SolidMask", {"value": 1.0, "width": 64, "height": 64}, 0),
    "SAMPLER": ("KSamplerSelect", {"sampler_name": "euler"}, 0),
    "SIGMAS": ("BasicScheduler", {"model": "MODEL", "scheduler": "normal", "steps": 4, "denoise": 1.0}, 0),
}
SWEEP_FILE_PREFIX = "sweep_"  # files the sweep puts in model folders; combos pick them first


def pack_node_classes():
    return dict(comfy_host.start().pack.NODE_CLASS_MAPPINGS)


def float_inputs():
    """(class_type, input name) for every FLOAT input (required or optional) of every pack node."""
    found = []
    for class_type, cls in sorted(pack_node_classes().items()):
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, (kind, *options) in spec.get(section, {}).items():
                if kind == "FLOAT":
                    found.append((class_type, name))
    return found


def widget_value(kind, options):
    if isinstance(kind, list) or kind == "COMBO":
        choices = kind if isinstance(kind, list) else options.get("options", [])
        ours = [c for c in choices if str(c).startswith(SWEEP_FILE_PREFIX)]
        if ours:
            return ours[0]
        if options.get("default") in choices:
            return options["default"]
        assert choices, "a list input with no choices: the sweep must put a file where it lists from"
        return choices[0]
    if kind in ("INT", "FLOAT"):
        return options.get("default", options.get("min", 0))
    if kind == "STRING":
        return options.get("default", "")
    if kind == "BOOLEAN":
        return options.get("default", False)
    return None  # a linked type


class SweepGraph:
    def __init__(self, checkpoint):
        self.checkpoint, self.prompt, self.made = checkpoint, {}, {}

    def add(self, class_type, inputs):
        # named by class: the same provider keeps its id from graph to graph, so the executor's cache
        # keeps its output (the checkpoint is loaded once for the whole sweep)
        node_id = class_type
        self.prompt[node_id] = {"class_type": class_type, "inputs": inputs}
        return node_id

    def link(self, kind, depth=0):
        """A link to an output of type `kind`, made by a core node or a pack node."""
        if kind in self.made:
            return self.made[kind]
        if kind in CORE_PROVIDERS:
            class_type, inputs, index = CORE_PROVIDERS[kind]
            inputs = {k: (self.checkpoint if k == "ckpt_name" else self.link(v) if v in CORE_PROVIDERS else v)
                      for k, v in inputs.items()}
            self.made[kind] = [self.add(class_type, inputs), index]
            return self.made[kind]
        makers = [(c, cls) for c, cls in sorted(pack_node_classes().items()) if kind in cls.RETURN_TYPES
                  and kind not in [t for t, *_ in cls.INPUT_TYPES().get("required", {}).values()]]  # not a MOTION_MODEL → MOTION_MODEL node
        if not makers or depth > 3:
            pytest.fail(f"the sweep cannot make a {kind} input: add a provider for it to CORE_PROVIDERS")
        class_type, cls = makers[0]
        node_id = self.add(class_type, self.inputs_of(cls, depth + 1))
        self.made[kind] = [node_id, list(cls.RETURN_TYPES).index(kind)]
        return self.made[kind]

    def inputs_of(self, cls, depth=0, bad=None):
        inputs = {}
        for name, (kind, *rest) in cls.INPUT_TYPES().get("required", {}).items():
            options = rest[0] if rest else {}
            value = widget_value(kind, options)
            inputs[name] = self.link(kind, depth) if value is None else value
        if bad:  # the input under test, required or optional
            inputs[bad[0]] = bad[1]
        return inputs


@pytest.fixture(scope="module")
def sweep_files(host):
    """An SD1.5 LoRA, a motion module, a motion LoRA and a SparseCtrl in their folders, for the swept nodes' lists."""
    from fixture_motion import motion_lora_state_dict, motion_state_dict, save_safetensors
    write_lora(host, SWEEP_FILE_PREFIX + "style_lora.safetensors", kohya_lora(rank=4, channels=(320, 320, 320)))
    save_safetensors(motion_state_dict("animatelcm_t2v", (32, 64, 128, 128)),
                     host.models_dir("animatediff_models") / (SWEEP_FILE_PREFIX + "motion_module.safetensors"))
    save_safetensors(motion_lora_state_dict((32, 64, 128, 128)),
                     host.models_dir("animatediff_motion_lora") / (SWEEP_FILE_PREFIX + "motion_lora.safetensors"))
    sparsectrl = importlib.import_module(host.pack.__name__ + ".stand_ins.random_sparsectrl")
    save_safetensors(sparsectrl.sparsectrl_state_dict("scribble", (32, 64, 128, 128), seed=1, dtype=torch.float32),
                     host.models_dir("controlnet") / (SWEEP_FILE_PREFIX + "sparsectrl_scribble.safetensors"))


@pytest.fixture(scope="module")
def sweep_executor(host):
    """One executor for the whole sweep: its cache keeps the checkpoint loaded between graphs."""
    return host.executor()


def test_the_sweep_covers_every_float_input_of_the_pack():
    swept = set(float_inputs())
    assert {("ALCM_Sampler", "cfg"), ("ALCM_Sampler", "denoise"), ("ALCM_ApplyMotionModule", "strength"),
            ("ALCM_StyleLoRAStack", "strength_5"), ("ALCM_SaveVideo", "frame_rate")} <= swept


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "+inf", "-inf"])
@pytest.mark.parametrize("class_type,name", float_inputs())
def test_every_float_input_refuses_non_finite_numbers(host, checkpoint, sweep_files, sweep_executor, class_type,
                                                     name, value):
    cls = pack_node_classes()[class_type]
    graph = SweepGraph(checkpoint)
    graph.prompt["under_test"] = {"class_type": class_type, "inputs": graph.inputs_of(cls, bad=(name, value))}
    try:
        host.run(graph.prompt, want=list(graph.prompt), executor=sweep_executor)
    except PromptInvalid as invalid:  # ComfyUI's own min/max check caught it (±inf beyond a bound): it names the input
        assert value != value or "'nan'" not in str(invalid)
        assert f"'{name}'" in str(invalid) or f"details': '{name}" in str(invalid), str(invalid)
        return
    except PromptFailed as failed:
        display = comfy_host.start().pack.NODE_DISPLAY_NAME_MAPPINGS[class_type]
        assert failed.node_type == class_type, f"another node failed first: {failed}"
        assert f"'{name}' is {value}" in failed.message and "finite" in failed.message, failed.message
        assert failed.message.startswith(display), failed.message  # the node's name as the user sees it
        return
    pytest.fail(f"{class_type}.{name} = {value} ran without an error")


# --- issue 12: the engine's own error reaches the user, not a hand-made re-wrap --------------------------
# ComfyUI reports a failing node itself (execution.py: node id, class type, exception type and message),
# so a node lets the engine's specific error through: its message names the file and the fix.

def test_engine_errors_reach_the_user_unwrapped(host, checkpoint):
    (host.models_dir("loras") / "truncated_style.safetensors").write_bytes(b"\x00" * 64)
    (host.models_dir("animatediff_models") / "truncated_motion.ckpt").write_bytes(b"PK\x03\x04" + b"\x00" * 60)
    graph = lora_graph(checkpoint, "ALCM_LoadStyleLoRA", "truncated_style.safetensors")
    with pytest.raises(PromptFailed) as failed:
        host.run(graph, want=list(graph))
    assert failed.value.node_type == "ALCM_LoadStyleLoRA" and failed.value.exception_type.endswith("WeightFileError")
    assert failed.value.message.startswith("'truncated_style.safetensors' is not a readable safetensors file")
    motion = {"1": {"class_type": "ALCM_LoadMotionModule", "inputs": {"motion_module_name": "truncated_motion.ckpt"}}}
    with pytest.raises(PromptFailed) as failed:
        host.run(motion, want=["1"])
    assert failed.value.exception_type.endswith("WeightFileError")
    assert failed.value.message.startswith("'truncated_motion.ckpt' is corrupt or truncated")


# --- 5. motion-module files that are not what they seem -----------------------------------------------

TINY = (32, 64, 128, 128)


def load_motion_node(host, name):
    """Load Motion Module through the executor: the module, or what ComfyUI reports."""
    prompt = {"1": {"class_type": "ALCM_LoadMotionModule", "inputs": {"motion_module_name": name}}}
    return host.run(prompt, want=["1"]).output("1")


def write_motion(host, name, state_dict):
    from fixture_motion import save_safetensors
    save_safetensors(state_dict, host.models_dir("animatediff_models") / name)
    return name


def test_layer_widths_in_the_wrong_positions_are_refused_at_apply(host, pack):
    """Same set of widths as the UNet, but the first two levels' layers swapped: refused before sampling."""
    from fixture_motion import motion_state_dict
    sd = motion_state_dict("animatelcm_t2v", TINY)
    swapped = {}
    for key, value in sd.items():
        for a, b in (("down_blocks.0.", "down_blocks.1."), ("down_blocks.1.", "down_blocks.0.")):
            if key.startswith(a):
                key = b + key[len(a):]
                break
        swapped[key] = value
    module = load_motion_node(host, write_motion(host, "swapped_levels.safetensors", swapped))
    with pytest.raises(ValueError) as refused:
        pack.nodes.motion_nodes.ApplyMotionModule().apply(tiny_sd15_model(), module, 1.0)
    message = str(refused.value)
    assert "'swapped_levels.safetensors' does not fit this SD1.5 MODEL" in message
    assert "down_blocks.0.motion_modules.0 is 64 wide where this UNet's block is 32" in message
    assert "download it again" in message


def test_a_module_covering_zero_frames_is_refused_at_load(host):
    from fixture_motion import motion_state_dict
    sd = motion_state_dict("v2", TINY)
    sd = {k: (v[:, :0] if k.endswith("pos_encoder.pe") else v) for k, v in sd.items()}
    message = refusal(host, {"1": {"class_type": "ALCM_LoadMotionModule",
                                   "inputs": {"motion_module_name": write_motion(host, "zero_frames.safetensors", sd)}}})
    assert message.startswith("'zero_frames.safetensors' covers 0 frames") and "Download it again" in message


def test_one_wrong_tensor_is_named_with_its_shapes(host):
    from fixture_motion import motion_state_dict
    sd = motion_state_dict("v2", TINY)
    sd["up_blocks.1.motion_modules.2.temporal_transformer.transformer_blocks.0.attention_blocks.1.to_v.weight"] = \
        torch.zeros(128, 64)
    message = refusal(host, {"1": {"class_type": "ALCM_LoadMotionModule",
                                   "inputs": {"motion_module_name": write_motion(host, "one_bad.safetensors", sd)}}})
    assert "'one_bad.safetensors'" in message and "up_blocks.1.motion_modules.2" in message
    assert "attention_blocks.1.to_v.weight" in message and "[128, 64]" in message and "[128, 128]" in message


def test_a_module_with_only_some_positions_is_called_incomplete(host):
    from fixture_motion import motion_state_dict
    sd = {k: v for k, v in motion_state_dict("v2", TINY).items() if not k.startswith("up_blocks.")}
    message = refusal(host, {"1": {"class_type": "ALCM_LoadMotionModule",
                                   "inputs": {"motion_module_name": write_motion(host, "down_only.safetensors", sd)}}})
    assert message.startswith("'down_only.safetensors' is incomplete: it has layers at 9 of the 20 positions")
    assert "missing up_blocks.0.motion_modules.0" in message and "SD15" not in message


# --- 3. a motion module applied to an already animated MODEL ---------------------------------------------

def tiny_motion(host, family):
    from fixture_motion import motion_state_dict
    return load_motion_node(host, write_motion(host, f"tiny_{family}.safetensors", motion_state_dict(family, TINY)))


def one_unet_call(model, frames):
    """A UNet call of `frames` latents as ComfyUI's sampler makes it (fixture_sampling.denoise)."""
    from fixture_sampling import denoise
    generator = torch.Generator().manual_seed(0)
    return denoise(model, torch.randn(frames, 4, 8, 8, generator=generator),
                   torch.randn(frames, 77, 768, generator=generator), [0])


def motion_layers(pack, model):
    import comfy.model_management
    comfy.model_management.load_models_gpu([model])
    unet = model.model.diffusion_model
    return [name for name, m in unet.named_modules() if isinstance(m, pack.motion.temporal_layer.MotionLayer)]


def test_a_second_motion_module_replaces_the_first_whole(host, pack):
    import comfy.model_management
    apply = pack.nodes.motion_nodes.ApplyMotionModule().apply
    image_model = tiny_sd15_model()
    animatelcm, v1 = tiny_motion(host, "animatelcm_t2v"), tiny_motion(host, "v1")  # 64 frames, mid block; 24, none
    with torch.inference_mode():  # as the executor runs nodes
        replaced = apply(apply(image_model, animatelcm, 1.0)[0], v1, 1.0)[0]
        back = apply(apply(image_model, v1, 1.0)[0], animatelcm, 1.0)[0]
        direct = apply(image_model, animatelcm, 1.0)[0]
    try:
        layers = motion_layers(pack, replaced)
        assert len(layers) == 20 and not any(name.startswith("middle_block") for name in layers)
        with pytest.raises(ValueError, match="25 frames asked for, but the motion module 'tiny_v1.safetensors' covers at most 24"):
            one_unet_call(replaced, 25)
        # and the other way round: the first module's 24-frame limit goes with it
        assert len(motion_layers(pack, back)) == 21
        assert one_unet_call(back, 30).shape[0] == 30
        # replacing gives exactly what applying the second module to the image model gives
        assert torch.equal(one_unet_call(back, 4), one_unet_call(direct, 4))
    finally:
        comfy.model_management.unload_all_models()


class AnimateDiffEvolvedPatcher:
    """The marks AnimateDiff-Evolved leaves on a MODEL (its model_injection.py): before ComfyUI's patcher
    extensions, a ModelPatcher subclass carrying `motion_models`; since, `additional_models["ADE"]`."""

    @staticmethod
    def old(model):
        import comfy.model_patcher

        class ModelPatcherAndInjector(comfy.model_patcher.ModelPatcher):
            pass
        patched = model.clone()
        patched.__class__ = ModelPatcherAndInjector
        patched.motion_models = ["an ADE motion model"]
        return patched

    @staticmethod
    def new(model):
        patched = model.clone()
        patched.set_additional_models("ADE", [tiny_sd15_model()])
        return patched


@pytest.mark.parametrize("version", ["old", "new"])
def test_a_model_animated_by_animatediff_evolved_is_refused(host, pack, version):
    model = tiny_sd15_model()
    if version == "new" and not hasattr(model, "set_additional_models"):
        pytest.skip("this ComfyUI predates patcher extensions, so AnimateDiff-Evolved marks MODELs the old way only")
    ade_model = getattr(AnimateDiffEvolvedPatcher, version)(model)
    with pytest.raises(ValueError, match="already carries an AnimateDiff-Evolved motion model.*'tiny_v2.safetensors' "
                                         "would run beside it"), torch.inference_mode():
        pack.nodes.motion_nodes.ApplyMotionModule().apply(ade_model, tiny_motion(host, "v2"), 1.0)
