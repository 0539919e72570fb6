"""The motion module's memory: one copy per dtype, the file's pages given back, counted by ComfyUI."""
import sys

import pytest
import torch

from fixture_models import TINY_CHANNELS
from fixture_motion import motion_state_dict, save_safetensors

pytestmark = pytest.mark.usefixtures("nothing_loaded")  # each test starts with no patched model loaded

MEDIUM = (128, 256, 512, 512)  # a file of ~150 MB in fp16: big enough to see its pages in RAM
QKV = "temporal_transformer.transformer_blocks.0.attention_blocks.0."


def load(pack, tmp_path, channels=TINY_CHANNELS, dtype=torch.float32, name="m"):
    path = tmp_path / f"{name}.safetensors"
    save_safetensors(motion_state_dict("animatelcm_t2v", channels, dtype=dtype), path)
    return pack.motion.motion_module.load_motion_module(str(path)), path


def mapped_rss(path):
    """Resident bytes of this process's mappings of `path` (/proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps", encoding="utf-8") as smaps:
        for line in smaps:
            first = line.split()[0]
            if "-" in first and not first.endswith(":"):
                inside = line.rstrip().endswith(str(path))
            elif inside and first == "Rss:":
                total += int(line.split()[1]) * 1024
    return total


def test_a_module_made_from_another_builds_its_own_layers(pack, tmp_path):
    """A motion LoRA makes a new MotionModule from this one's weights: it must not reuse the old layers."""
    import dataclasses
    module, _ = load(pack, tmp_path)
    key = "mid_block.motion_modules.0.temporal_transformer.proj_in.weight"
    module.build_layers(torch.float32)
    merged = dataclasses.replace(module, weights={**module.weights, key: module.weights[key] + 1})
    layer = merged.build_layers(torch.float32)["mid_block.motion_modules.0"]
    assert torch.equal(layer.temporal_transformer.proj_in.weight, module.weights[key] + 1)


def test_layers_share_one_copy_per_dtype(pack, tmp_path):
    module, _ = load(pack, tmp_path)
    position = "down_blocks.1.motion_modules.0"
    a, b = module.build_layers(torch.float32)[position], module.build_layers(torch.float32)[position]
    assert a is not b  # each MODEL its own layer objects, so ComfyUI can move one without the other
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert pa.data_ptr() == pb.data_ptr(), name
    half = module.build_layers(torch.float16)[position]
    assert half.temporal_transformer.proj_in.weight.dtype == torch.float16
    # fp32 file, fp32 layers: the layers use the file's tensors, except the fused q/k/v
    file_proj_in = module.weights[position + ".temporal_transformer.proj_in.weight"]
    assert a.temporal_transformer.proj_in.weight.data_ptr() == file_proj_in.data_ptr()
    fused = a.temporal_transformer.transformer_blocks[0].attention_blocks[0].to_qkv.weight
    parts = [module.weights[f"{position}.{QKV}{p}.weight"] for p in ("to_q", "to_k", "to_v")]
    assert torch.equal(fused, torch.cat(parts))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page residency is read from /proc (Linux)")
def test_converting_gives_the_file_pages_back(pack, tmp_path):
    module, path = load(pack, tmp_path, MEDIUM, torch.float16)
    file_bytes = path.stat().st_size
    before = {k: v.clone() for k, v in module.weights.items()}  # reads the whole file
    assert mapped_rss(path) > 0.9 * file_bytes
    layers = module.build_layers(torch.float32)
    layer_bytes = sum(t.numel() * t.element_size() for layer in layers.values() for t in layer.state_dict().values())
    assert layer_bytes > 1.9 * file_bytes
    assert mapped_rss(path) < 0.02 * file_bytes  # converted, then given back: one copy, the fp32 one
    for key, value in before.items():  # the source is intact (read again from the file when needed)
        assert torch.equal(module.weights[key], value)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page residency is read from /proc (Linux)")
def test_same_dtype_keeps_the_mapped_tensors_and_gives_back_only_the_fused_copies(pack, tmp_path):
    module, path = load(pack, tmp_path, MEDIUM, torch.float16)
    layers = module.build_layers(torch.float16)
    for layer in layers.values():  # read every weight, as the first step does
        for p in layer.parameters():
            p.float().sum()
    qkv_bytes = sum(v.numel() * 2 for k, v in module.weights.items() if k.endswith(("to_q.weight", "to_k.weight", "to_v.weight")))
    resident = mapped_rss(path)
    # everything but q/k/v is used from the file; the q/k/v pages went when the fused copy was made
    assert path.stat().st_size - qkv_bytes - 2**20 < resident < path.stat().st_size - 0.9 * qkv_bytes


def test_model_size_counts_the_layers(pack, tiny_model, tmp_path):
    module, _ = load(pack, tmp_path)
    before = tiny_model.model_size()
    animated = pack.motion.injection.animate(tiny_model, module)
    layers = module.build_layers(torch.float32)
    layer_bytes = sum(t.numel() * t.element_size() for layer in layers.values() for t in layer.state_dict().values())
    assert animated.model_size() == before + layer_bytes
    assert tiny_model.model_size() == before  # the input MODEL is not changed
    again = pack.motion.injection.animate(animated, module, 0.5)  # replaces the layers, does not add more
    assert again.model_size() == before + layer_bytes
    assert animated.clone().model_size() == before + layer_bytes
    bf16 = pack.motion.injection.animate(tiny_model, module, precision=torch.bfloat16)
    assert bf16.model_size() == before + layer_bytes // 2


def _denoise(model, x, context):
    args = {"input": x, "timestep": torch.full((x.shape[0],), 3.0),
            "c": {"c_crossattn": context, "transformer_options": {"cond_or_uncond": [0]}}, "cond_or_uncond": [0]}
    with torch.inference_mode():
        return model.model_options["model_function_wrapper"](model.model.apply_model, args)


def test_partial_low_vram_load_casts_motion_layers_and_keeps_outputs(pack, tiny_model, tmp_path):
    """As ComfyUI does with --lowvram: load only part of the MODEL, cast the rest per call."""
    import comfy.model_management
    from comfy.model_management import LoadedModel
    module, _ = load(pack, tmp_path)
    animated = pack.motion.injection.animate(tiny_model, module)
    generator = torch.Generator().manual_seed(0)
    x, context = torch.randn(4, 4, 8, 8, generator=generator), torch.randn(4, 77, 768, generator=generator)
    comfy.model_management.load_models_gpu([animated])
    full = _denoise(animated, x, context)
    comfy.model_management.unload_all_models()

    loaded = LoadedModel(animated)
    loaded.model_load(lowvram_model_memory=animated.model_size() // 3)  # a third fits "on the GPU"
    try:
        unet = animated.model.diffusion_model
        motion = [m for name, m in unet.named_modules() if ".motion_module." in name and hasattr(m, "comfy_cast_weights")]
        cast = [m for m in motion if m.comfy_cast_weights]
        assert motion and cast, "the partial loader saw no motion layer to leave off the device"
        partial = _denoise(animated, x, context)
    finally:
        loaded.model_unload()
    torch.testing.assert_close(partial, full, atol=1e-5, rtol=1e-5)
    assert not any(getattr(m, "comfy_cast_weights", False) for m in animated.model.diffusion_model.modules())


@pytest.mark.parametrize("precision,tolerance", [(torch.bfloat16, 0.1), (torch.float16, 0.02)])
def test_reduced_precision_motion_layers(pack, tiny_model, tmp_path, precision, tolerance):
    module, _ = load(pack, tmp_path)
    generator = torch.Generator().manual_seed(1)
    x, context = torch.randn(4, 4, 8, 8, generator=generator), torch.randn(4, 77, 768, generator=generator)
    import comfy.model_management
    exact = pack.motion.injection.animate(tiny_model, module)
    comfy.model_management.load_models_gpu([exact])
    reference = _denoise(exact, x, context)
    node = pack.nodes.motion_nodes.ApplyMotionModule()
    name = {torch.bfloat16: "bf16", torch.float16: "fp16"}[precision]
    reduced = node.apply(tiny_model, module, 1.0, name)[0]
    comfy.model_management.load_models_gpu([reduced])
    out = _denoise(reduced, x, context)
    assert out.dtype == torch.float32  # the UNet around the layers stays in its own dtype
    layer = reduced.object_patches["diffusion_model.middle_block"].motion_module
    assert layer.temporal_transformer.proj_in.weight.dtype == precision
    error = ((out - reference).abs().max() / reference.std()).item()
    assert 0 < error < tolerance


def test_unknown_precision_is_refused_by_name(pack, tiny_model, tmp_path):
    module, _ = load(pack, tmp_path)
    with pytest.raises(ValueError, match="motion_precision 'int8'"):
        pack.nodes.motion_nodes.ApplyMotionModule().apply(tiny_model, module, 1.0, "int8")
