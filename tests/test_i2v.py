"""Image-to-video (AnimateLCM-I2V): the image encoder, where its features go, the schedule, the colour match."""
import math

import cv2
import numpy as np
import pytest
import torch

from fixture_i2v import reference_encoder
from fixture_models import TINY_CHANNELS
from fixture_motion import image_encoder_weights, motion_state_dict, save_safetensors
from fixture_sampling import denoise

pytestmark = pytest.mark.usefixtures("nothing_loaded")  # each test starts with no patched model loaded

ENCODER_CHANNELS = (8, 16, 32, 32)


def tiny_module(pack, tmp_path, family="animatelcm_i2v"):
    path = tmp_path / f"{family}.safetensors"
    save_safetensors(motion_state_dict(family, TINY_CHANNELS), path)
    return pack.motion.motion_module.load_motion_module(str(path))


def encoder_weights(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {k[len("img_encoder."):]: v for k, v in image_encoder_weights(ENCODER_CHANNELS, generator).items()}


def test_fixture_has_the_official_adapter_keys(host):
    keys = set(image_encoder_weights((320, 640, 1280, 1280), torch.Generator().manual_seed(0)))
    assert len(keys) == 2 + 8 * 4 + 2 * 2  # conv_in; block1/block2 of 8 blocks; in_conv where the width changes
    assert {"img_encoder.body.2.in_conv.weight", "img_encoder.body.4.in_conv.weight"} <= keys
    assert not any("skep" in k or "down_opt" in k or k.startswith("img_encoder.body.6.in_conv") for k in keys)


def test_encoder_equals_the_formulas(pack, host):
    w = encoder_weights()
    encoder = pack.motion.image_encoder.build_image_encoder(w, torch.float32, "tiny")
    latent = torch.randn(3, 4, 9, 7, generator=torch.Generator().manual_seed(1))  # odd sides: the padding runs
    with torch.no_grad():
        ours = encoder(latent, 0.7)
    expected = reference_encoder(w, latent, 0.7)
    assert [tuple(f.shape) for f in ours] == [(3, 8, 9, 7), (3, 16, 5, 4), (3, 32, 3, 2), (3, 32, 2, 1)]
    for got, want in zip(ours, expected):
        torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
    assert encoder.conv_in.weight.data_ptr() == w["conv_in.weight"].data_ptr()  # assigned, not copied


def test_motion_scale_zero_makes_every_frame_the_same(pack, host):
    encoder = pack.motion.image_encoder.build_image_encoder(encoder_weights(), torch.float32, "tiny")
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2)).expand(4, -1, -1, -1)
    with torch.no_grad():
        still, moving = encoder(latent, 0.0), encoder(latent, 0.8)
    for feature in still:
        assert all(torch.equal(feature[0], feature[i]) for i in range(1, 4))
    assert not torch.allclose(moving[0][0], moving[0][1])


def i2v_model(pack, model, module, motion_scale=0.8, frames=4, seed=3):
    reference = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(seed))}
    node = pack.nodes.i2v_nodes.ImageToVideo()
    return node.apply(model, module, None, None, 64, 64, frames, motion_scale, reference_latent=reference)


def inputs(frames=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(frames, 4, 8, 8, generator=generator), torch.randn(frames, 77, 768, generator=generator)


def test_features_go_to_the_four_down_levels_before_the_motion_layer(pack, tiny_model, tmp_path):
    import comfy.model_management
    model, latent = i2v_model(pack, tiny_model, tiny_module(pack, tmp_path))
    assert latent["samples"].shape == (4, 4, 8, 8)
    comfy.model_management.load_models_gpu([model])
    unet = model.model.diffusion_model
    blocks = {(name, i): [type(c).__name__ for c in block]
              for name in ("input_blocks", "output_blocks") for i, block in enumerate(getattr(unet, name))}
    blocks[("middle_block", 0)] = [type(c).__name__ for c in unet.middle_block]
    with_image = sorted(k for k, kinds in blocks.items() if "ImageFeatureLayer" in kinds)
    assert with_image == [("input_blocks", i) for i in (2, 5, 8, 11)]
    assert blocks[("input_blocks", 2)] == ["ResBlock", "SpatialTransformer", "ImageFeatureLayer", "MotionLayer"]
    assert blocks[("input_blocks", 8)] == ["ResBlock", "SpatialTransformer", "ImageFeatureLayer", "MotionLayer"]
    assert blocks[("input_blocks", 11)] == ["ResBlock", "ImageFeatureLayer", "MotionLayer"]
    assert [unet.input_blocks[i].image_features.level for i in (2, 5, 8, 11)] == [0, 1, 2, 3]
    # the encoder is part of the UNet (ComfyUI moves it with the model), once
    encoders = [m for m in unet.modules() if type(m).__name__ == "ImageEncoder"]
    assert len(encoders) == 1


def test_features_are_added_to_every_frame_of_every_chunk(pack, tiny_model, tmp_path):
    module = tiny_module(pack, tmp_path)
    animated = pack.motion.injection.animate(tiny_model, module)
    model, _ = i2v_model(pack, tiny_model, module)
    x, context = inputs()
    plain = denoise(animated, x, context, [0])
    alone = denoise(model, x, context, [0])
    assert not torch.allclose(alone, plain)
    both = denoise(model, x, context, [1, 0])  # positive and negative batched: each gets the features
    torch.testing.assert_close(both[:4], alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both[4:], alone, atol=1e-5, rtol=1e-5)


def test_zero_features_leave_the_animated_model_exactly(pack, tiny_model, tmp_path):
    """An encoder of zeros at motion_scale 0 gives zero features: the output is the animated MODEL's, bit for bit,
    so the layers only add the features."""
    module = tiny_module(pack, tmp_path)
    module.image_encoder = {k: torch.zeros_like(v) for k, v in module.image_encoder.items()}
    animated = pack.motion.injection.animate(tiny_model, module)
    model, _ = i2v_model(pack, tiny_model, module, motion_scale=0.0)
    x, context = inputs(seed=4)
    assert torch.equal(denoise(model, x, context, [1, 0]), denoise(animated, x, context, [1, 0]))


def test_a_model_without_the_i2v_node_is_unchanged(pack, tiny_model, tmp_path):
    import comfy.model_management
    module = tiny_module(pack, tmp_path)
    animated = pack.motion.injection.animate(tiny_model, module)
    patches_before, wrapper_before = dict(animated.object_patches), animated.model_options["model_function_wrapper"]
    x, context = inputs(seed=5)
    before = denoise(animated, x, context, [1, 0])
    model, _ = i2v_model(pack, animated, module)  # on an already animated MODEL: only the features are added
    denoise(model, x, context, [1, 0])
    comfy.model_management.unload_all_models()
    assert animated.object_patches == patches_before
    assert animated.model_options["model_function_wrapper"] is wrapper_before
    assert torch.equal(denoise(animated, x, context, [1, 0]), before)
    assert not pack.motion.image_injection.carries_image(animated)
    assert pack.samplers.video_sampling.sampling_for(animated).original_inference_steps == 100


def test_after_an_i2v_run_the_unet_and_model_are_as_before(pack, tiny_model, tmp_path):
    import comfy.model_management
    unet = tiny_model.model.diffusion_model
    blocks_before = list(unet.input_blocks) + list(unet.output_blocks) + [unet.middle_block]
    weights_before = {k: v.clone() for k, v in unet.state_dict().items()}
    options_before = dict(tiny_model.model_options)
    model, latent = i2v_model(pack, tiny_model, tiny_module(pack, tmp_path))
    with torch.inference_mode():
        pack.samplers.video_sampling.sample_video(model, conditioning(0.2), conditioning(-0.1), latent, 1, 2, 1.5)
    comfy.model_management.unload_all_models()
    assert list(unet.input_blocks) + list(unet.output_blocks) + [unet.middle_block] == blocks_before
    assert unet.state_dict().keys() == weights_before.keys()
    assert all(torch.equal(v, weights_before[k]) for k, v in unet.state_dict().items())
    assert tiny_model.object_patches == {} and tiny_model.model_options == options_before


def conditioning(value):
    return [[torch.full((1, 77, 768), value), {}]]


def test_the_sampler_computes_the_features_once_per_run_and_repeats_by_seed(pack, tiny_model, tmp_path):
    model, latent = i2v_model(pack, tiny_model, tiny_module(pack, tmp_path), frames=2)
    encoder = model.object_patches["diffusion_model.input_blocks.2"].image_features.conditioning.encoder
    calls = []
    hook = encoder.register_forward_hook(lambda *_: calls.append(1))
    node = pack.nodes.sampler_nodes.AnimateLCMSampler()
    try:
        def run(seed):
            with torch.inference_mode():
                return node.sample(model, conditioning(0.2), conditioning(-0.1), latent, seed, 3, 1.0, 1.0)["result"][0]["samples"]
        first = run(7)
        assert len(calls) == 1  # 3 steps, 3 UNet calls: one encoder run
        again, other = run(7), run(8)
        assert len(calls) == 3  # nothing kept from one run to the next
    finally:
        hook.remove()
    assert torch.equal(first, again) and not torch.allclose(first, other) and torch.isfinite(first).all()


def test_i2v_sigmas_are_the_official_ones(pack, tiny_model, tmp_path):
    model, _ = i2v_model(pack, tiny_model, tiny_module(pack, tmp_path))
    sampling_for = pack.samplers.video_sampling.sampling_for
    betas = np.linspace(0.00085, 0.014, 1000, dtype=np.float64)
    alphas_cumprod = np.cumprod(1 - betas)
    expected = [math.sqrt((1 - alphas_cumprod[t]) / alphas_cumprod[t]) for t in (999, 749, 499, 249)] + [0.0]
    sigmas = sampling_for(model).sigmas_for(4)
    assert sampling_for(model).original_inference_steps == 200
    np.testing.assert_allclose(sigmas.double().numpy(), expected, rtol=1e-4)
    assert abs(sigmas[0].item() - 41.67) < 0.01
    forced = sampling_for(model, "text-to-video")
    assert forced.original_inference_steps == 100 and abs(forced.sigmas_for(4)[0].item() - 41.67) > 1
    assert sampling_for(tiny_model, "image-to-video schedule").original_inference_steps == 200


def official_adjust_colors(src_img, target_img):
    """animatelcm/utils/util.py adjust_colors, as published (BGR uint8 in, BGR uint8 out)."""
    src_hsv = cv2.cvtColor(src_img, cv2.COLOR_BGR2HSV)
    target_hsv = cv2.cvtColor(target_img, cv2.COLOR_BGR2HSV)
    for idx in range(3):
        diff = np.mean(src_hsv[:, :, idx]) - np.mean(target_hsv[:, :, idx])
        if idx == 0:
            target_hsv[:, :, idx] = np.clip(target_hsv[:, :, idx] + 0.03 * diff, 0, 180)
        else:
            target_hsv[:, :, idx] = np.clip(target_hsv[:, :, idx] + 1.0 * diff, 0, 255)
    return cv2.cvtColor(target_hsv, cv2.COLOR_HSV2BGR)


def test_colour_match_is_the_official_function(pack, host):
    generator = torch.Generator().manual_seed(9)
    start = (torch.rand(1, 20, 30, 3, generator=generator) * 255).round() / 255  # an 8-bit picture, as loaded
    start[..., 0] = start[..., 0] * 0.5 + 0.5  # reddish, so the match has something to do
    frames = torch.rand(3, 16, 24, 3, generator=generator) * 0.6
    out = pack.nodes.i2v_nodes.MatchColors().match(frames, start, 1.0)[0]
    src_bgr = cv2.cvtColor((start[0].numpy() * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)
    for i in range(3):
        target = cv2.cvtColor((frames[i].numpy() * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
        expected = cv2.cvtColor(official_adjust_colors(src_bgr, target), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal((out[i].numpy() * 255).round().astype(np.uint8), expected)
    assert (out - frames).abs().mean() > 0.05
    assert torch.equal(pack.nodes.i2v_nodes.MatchColors().match(frames, start, 0.0)[0], frames)
    half = pack.nodes.i2v_nodes.MatchColors().match(frames, start, 0.5)[0]
    torch.testing.assert_close(half, (frames + out) / 2, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="strength"):
        pack.nodes.i2v_nodes.MatchColors().match(frames, start, float("nan"))


def official_resize_and_crop(pixels, width, height):
    """animatelcm/utils/util.py resize_and_crop on a PIL image."""
    from PIL import Image
    image = Image.fromarray(pixels).convert("RGB")
    orig_width, orig_height = image.size
    if width / height > orig_width / orig_height:
        resize_width, resize_height = width, round((width / orig_width) * orig_height)
    else:
        resize_height, resize_width = height, round((height / orig_height) * orig_width)
    image = image.resize((resize_width, resize_height), Image.LANCZOS)
    x0, y0 = (resize_width - width) / 2, (resize_height - height) / 2
    return np.asarray(image.crop((x0, y0, x0 + width, y0 + height)))


@pytest.mark.parametrize("size", [(48, 32), (16, 40), (96, 96)])  # crop sides, top/bottom; upscaled
def test_start_image_is_resized_and_cropped_as_official(pack, host, size):
    pixels = (np.random.default_rng(0).random((37, 53, 3)) * 255).astype(np.uint8)
    image = torch.from_numpy(pixels.astype(np.float32) / 255)[None]
    out = pack.video.start_image.start_frames(image, *size, frames=4)
    assert out.shape == (1, size[1], size[0], 3)
    np.testing.assert_array_equal((out[0].numpy() * 255).round().astype(np.uint8), official_resize_and_crop(pixels, *size))


def test_start_image_batches_and_transparency(pack, host):
    start_frames = pack.video.start_image.start_frames
    images = torch.rand(4, 16, 16, 3, generator=torch.Generator().manual_seed(1))
    assert start_frames(images, 16, 16, frames=4).shape[0] == 4  # one per frame
    torch.testing.assert_close(start_frames(images, 16, 16, frames=8), start_frames(images[:1], 16, 16, frames=8),
                               atol=0, rtol=0)  # otherwise the first
    rgba = torch.cat([torch.zeros(1, 16, 16, 3), torch.full((1, 16, 16, 1), 0.0)], dim=-1)
    assert torch.equal(start_frames(rgba, 16, 16, frames=1), torch.ones(1, 16, 16, 3))  # flattened onto white


def test_bad_inputs_are_refused_by_name(pack, tiny_model, tmp_path):
    node = pack.nodes.i2v_nodes.ImageToVideo()
    image = torch.rand(1, 32, 32, 3)
    with pytest.raises(ValueError, match=r"'animatelcm_t2v.safetensors' has no image encoder: pick AnimateLCM_sd15_i2v.ckpt"):
        node.apply(tiny_model, tiny_module(pack, tmp_path, "animatelcm_t2v"), image, None, 64, 64, 4, 0.8)
    i2v = tiny_module(pack, tmp_path)
    with pytest.raises(ValueError, match="'width' is 500, not a multiple of 8.*use 504"):
        node.apply(tiny_model, i2v, image, None, 500, 64, 4, 0.8)
    with pytest.raises(ValueError, match="'height' is 61, not a multiple of 8.*use 64"):
        node.apply(tiny_model, i2v, image, None, 64, 61, 4, 0.8)
    with pytest.raises(ValueError, match="motion_scale"):
        node.apply(tiny_model, i2v, image, None, 64, 64, 4, float("nan"))


def test_reference_latent_per_frame_and_mismatched_sizes(pack, tiny_model, tmp_path):
    module = tiny_module(pack, tmp_path)
    node = pack.nodes.i2v_nodes.ImageToVideo()
    per_frame = {"samples": torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(5))}
    model, latent = node.apply(tiny_model, module, None, None, 512, 512, 4, 0.0, reference_latent=per_frame)
    assert latent["samples"].shape == (4, 4, 8, 8)  # the reference's size wins
    conditioning = model.object_patches["diffusion_model.input_blocks.2"].image_features.conditioning
    with torch.no_grad():
        features = conditioning.features(4)
    assert not torch.allclose(features[0][0], features[0][1])  # each frame its own reference, even at motion_scale 0
    x, context = inputs(frames=4)
    with pytest.raises(ValueError, match="reference latent is 64×64 pixels but the video latent is 128×128"):
        denoise(model, torch.randn(4, 4, 16, 16), context, [0])
    with pytest.raises(ValueError, match="reference has 4 frames but the video has 3"):
        denoise(model, x[:3], context[:3], [0])

