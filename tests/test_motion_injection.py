"""The motion module in a real ComfyUI MODEL: placement, isolation, strength, frames."""
import pytest
import torch

from fixture_models import TINY_CHANNELS, tiny_sd15_model
from fixture_motion import motion_state_dict, save_safetensors
from fixture_sampling import denoise

pytestmark = pytest.mark.usefixtures("nothing_loaded")  # each test starts with no patched model loaded


def tiny_module(pack, tmp_path, family="animatelcm_t2v", channels=TINY_CHANNELS):
    path = tmp_path / f"{family}.safetensors"
    save_safetensors(motion_state_dict(family, channels), path)
    return pack.motion.motion_module.load_motion_module(str(path))


def inputs(frames, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(frames, 4, 8, 8, generator=generator), torch.randn(frames, 77, 768, generator=generator)


def test_layers_sit_where_unet3d_puts_them(pack, tiny_model, tmp_path):
    import comfy.model_management
    from comfy.ldm.modules.attention import SpatialTransformer
    from comfy.ldm.modules.diffusionmodules.openaimodel import ResBlock, Upsample
    animated = pack.motion.injection.animate(tiny_model, tiny_module(pack, tmp_path))
    comfy.model_management.load_models_gpu([animated])
    unet = animated.model.diffusion_model
    motion = pack.motion.temporal_layer.MotionLayer
    layout = {}
    for name in ("input_blocks", "output_blocks"):
        for i, block in enumerate(getattr(unet, name)):
            layout[(name, i)] = [type(c).__name__ for c in block]
    layout[("middle_block", 0)] = [type(c).__name__ for c in unet.middle_block]
    with_motion = sorted(k for k, kinds in layout.items() if "MotionLayer" in kinds)
    assert with_motion == sorted([("input_blocks", i) for i in (1, 2, 4, 5, 7, 8, 10, 11)] +
                                 [("output_blocks", i) for i in range(12)] + [("middle_block", 0)])
    assert layout[("input_blocks", 4)] == ["ResBlock", "SpatialTransformer", "MotionLayer"]
    assert layout[("input_blocks", 10)] == ["ResBlock", "MotionLayer"]
    assert layout[("output_blocks", 2)] == ["ResBlock", "MotionLayer", "Upsample"]
    assert layout[("output_blocks", 5)] == ["ResBlock", "SpatialTransformer", "MotionLayer", "Upsample"]
    assert layout[("output_blocks", 9)] == ["ResBlock", "SpatialTransformer", "MotionLayer"]
    assert layout[("middle_block", 0)] == ["ResBlock", "SpatialTransformer", "MotionLayer", "ResBlock"]
    # the module's own layer for each position, and the block's own layers kept under their names
    assert unet.output_blocks[5].motion_module.temporal_transformer.proj_in.weight.shape == (128, 128)
    assert isinstance(unet.output_blocks[5]._modules["2"], Upsample)
    # numbered children stay where other code looks for them (indexing, len), the motion layer is named, last
    assert list(unet.output_blocks[5]._modules) == ["0", "1", "2", "motion_module"]
    assert isinstance(unet.output_blocks[5][2], Upsample) and isinstance(unet.input_blocks[4][1], SpatialTransformer)
    assert isinstance(unet.middle_block._modules["2"], ResBlock) and isinstance(unet.middle_block._modules["1"], SpatialTransformer)
    assert sum(isinstance(m, motion) for m in unet.modules()) == 21


def test_image_model_is_untouched_before_and_after_sampling(pack, tiny_model, tmp_path):
    import comfy.model_management
    unet = tiny_model.model.diffusion_model
    blocks_before = list(unet.input_blocks) + list(unet.output_blocks) + [unet.middle_block]
    weights_before = {k: v.clone() for k, v in unet.state_dict().items()}
    x, context = inputs(4)
    plain_before = denoise(tiny_model, x, context, [0])
    animated = pack.motion.injection.animate(tiny_model, tiny_module(pack, tmp_path))
    moved = denoise(animated, x, context, [0])
    assert not torch.equal(moved, plain_before)
    comfy.model_management.unload_all_models()
    assert list(unet.input_blocks) + list(unet.output_blocks) + [unet.middle_block] == blocks_before
    assert unet.state_dict().keys() == weights_before.keys()
    assert all(torch.equal(v, weights_before[k]) for k, v in unet.state_dict().items())
    assert torch.equal(denoise(tiny_model, x, context, [0]), plain_before)
    assert "model_function_wrapper" not in tiny_model.model_options


def test_strength_zero_is_the_image_model_bit_for_bit(pack, tiny_model, tmp_path):
    x, context = inputs(4, seed=1)
    plain = denoise(tiny_model, x, context, [1, 0])
    module = tiny_module(pack, tmp_path)
    node = pack.nodes.motion_nodes.ApplyMotionModule()
    assert torch.equal(denoise(node.apply(tiny_model, module, 0.0)[0], x, context, [1, 0]), plain)
    assert torch.equal(denoise(pack.motion.injection.animate(tiny_model, module, 0.0), x, context, [1, 0]), plain)
    assert not torch.equal(denoise(node.apply(tiny_model, module, 1.0)[0], x, context, [1, 0]), plain)


def test_cond_and_uncond_each_see_their_own_frames(pack, tiny_model, tmp_path):
    x, context = inputs(4, seed=2)
    animated = pack.motion.injection.animate(tiny_model, tiny_module(pack, tmp_path))
    uncond_cond = denoise(animated, x, context, [1, 0])
    cond_uncond = denoise(animated, x, context, [0, 1])
    alone = denoise(animated, x, context, [0])
    torch.testing.assert_close(uncond_cond[:4], alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(uncond_cond[4:], alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cond_uncond, uncond_cond, atol=1e-5, rtol=1e-5)


def test_frames_influence_each_other_through_the_motion_module(pack, tiny_model, tmp_path):
    x, context = inputs(4, seed=3)
    animated = pack.motion.injection.animate(tiny_model, tiny_module(pack, tmp_path))
    changed = x.clone()
    changed[3] += 1.0
    a, b = denoise(animated, x, context, [0]), denoise(animated, changed, context, [0])
    assert not torch.allclose(a[0], b[0])  # frame 0 sees frame 3
    plain_a, plain_b = denoise(tiny_model, x, context, [0]), denoise(tiny_model, changed, context, [0])
    assert torch.equal(plain_a[0], plain_b[0])  # the image model does not


def test_too_many_frames_names_the_limit(pack, tiny_model, tmp_path):
    animated = pack.motion.injection.animate(tiny_model, tiny_module(pack, tmp_path, family="v1"))
    x, context = inputs(25)
    with pytest.raises(ValueError, match="25 frames.*at most 24"):
        denoise(animated, x, context, [0])


def test_layers_follow_the_unet_dtype(pack, tmp_path, host):
    half = tiny_sd15_model(dtype=torch.float16)
    animated = pack.motion.injection.animate(half, tiny_module(pack, tmp_path))
    patched = animated.object_patches
    layer = next(iter(patched.values())).motion_module
    assert layer.temporal_transformer.proj_in.weight.dtype == torch.float16


def test_module_of_other_channels_is_refused_clearly(pack, tiny_model, tmp_path):
    module = tiny_module(pack, tmp_path, channels=(64, 128, 256, 256))
    with pytest.raises(ValueError, match="does not fit this SD1.5 MODEL: down_blocks.0.motion_modules.0 is 64 wide"):
        pack.nodes.motion_nodes.ApplyMotionModule().apply(tiny_model, module, 1.0)


def test_applying_twice_does_not_stack_layers(pack, tiny_model, tmp_path):
    import comfy.model_management
    module = tiny_module(pack, tmp_path)
    first = pack.motion.injection.animate(tiny_model, module)
    comfy.model_management.load_models_gpu([first])  # first's patches are in the shared UNet now
    second = pack.motion.injection.animate(tiny_model, module, 0.5)
    comfy.model_management.load_models_gpu([second])
    motion = pack.motion.temporal_layer.MotionLayer
    assert sum(isinstance(m, motion) for m in second.model.diffusion_model.modules()) == 21
