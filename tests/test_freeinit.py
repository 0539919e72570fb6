"""FreeInit: its filters and noise re-initialisation against numpy, and the passes in ComfyUI's sampling path."""
import math

import numpy as np
import pytest
import torch

from fixture_sampling import conditioning, model_around

SD15_LATENT_SCALE = 0.18215
FILTERS = ["gaussian", "butterworth", "ideal", "box"]


# --- an independent implementation of FreeInit's filters, in numpy, on the official (fftshifted) grid ----------

def numpy_filter(shape, kind, d_s, d_t, n=4):
    """FreeInit's low-pass masks for a (frames, height, width) volume, written from freeinit_utils.py's
    formulas (the zero frequency at the centre, index N//2); ideal compares d² with d_s² (see samplers/freeinit.py)."""
    T, H, W = shape
    if kind == "box":
        mask = np.zeros(shape)
        r_t, r_h, r_w = round(T // 2 * d_t), round(H // 2 * d_s), round(W // 2 * d_s)
        mask[T // 2 - r_t:T // 2 + r_t, H // 2 - r_h:H // 2 + r_h, W // 2 - r_w:W // 2 + r_w] = 1.0
        return mask
    t, h, w = np.meshgrid(np.arange(T), np.arange(H), np.arange(W), indexing="ij")
    d2 = ((d_s / d_t) * (2 * t / T - 1)) ** 2 + (2 * h / H - 1) ** 2 + (2 * w / W - 1) ** 2
    if kind == "gaussian":
        return np.exp(-1 / (2 * d_s ** 2) * d2)
    if kind == "butterworth":
        return 1 / (1 + (d2 / d_s ** 2) ** n)
    return (d2 <= d_s ** 2).astype(np.float64)


def numpy_mix(x, noise, mask):
    """freq_mix_3d on [frames, C, H, W]: shifted 3-D FFT over frames, height, width; low of x, high of noise."""
    axes = (0, 2, 3)
    x_freq = np.fft.fftshift(np.fft.fftn(x, axes=axes), axes=axes)
    noise_freq = np.fft.fftshift(np.fft.fftn(noise, axes=axes), axes=axes)
    mask = mask[:, None]
    mixed = x_freq * mask + noise_freq * (1 - mask)
    return np.fft.ifftn(np.fft.ifftshift(mixed, axes=axes), axes=axes).real


@pytest.fixture
def freeinit(pack):
    return pack.samplers.freeinit


@pytest.mark.parametrize("kind", FILTERS)
@pytest.mark.parametrize("shape,d_s,d_t", [((16, 8, 8), 0.25, 0.25), ((8, 12, 6), 0.4, 0.15), ((4, 8, 8), 0.5, 1.0)])
def test_filters_match_numpy(freeinit, kind, shape, d_s, d_t):
    options = freeinit.FreeInit(2, kind, d_s, d_t, butterworth_order=3)
    ours = freeinit.low_pass_filter(*shape, options)
    assert ours.shape == (shape[0], 1, shape[1], shape[2])
    expected = np.fft.ifftshift(numpy_filter(shape, kind, d_s, d_t, n=3))  # torch.fft's order: zero frequency first
    np.testing.assert_allclose(ours[:, 0].numpy(), expected, atol=1e-6)
    assert 0 < ours.sum() < ours.numel()  # a real low pass at these settings: keeps some, drops some


@pytest.mark.parametrize("kind", ["gaussian", "butterworth", "ideal"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (5, 7, 9)])
def test_odd_sizes_keep_the_zero_frequency_and_are_symmetric(freeinit, kind, shape):
    mask = freeinit.low_pass_filter(*shape, freeinit.FreeInit(2, kind))[:, 0]
    assert mask[0, 0, 0] == 1.0
    mirrored = torch.roll(torch.flip(mask, dims=(0, 1, 2)), shifts=(1, 1, 1), dims=(0, 1, 2))  # f -> -f
    torch.testing.assert_close(mask, mirrored)


def test_stop_frequency_zero_keeps_nothing_of_the_previous_pass(freeinit):
    assert freeinit.low_pass_filter(4, 8, 8, freeinit.FreeInit(2, "gaussian", 0.0, 0.25)).abs().sum() == 0


def test_mix_matches_numpy(freeinit):
    generator = torch.Generator().manual_seed(0)
    x, noise = torch.randn(16, 4, 8, 8, generator=generator), torch.randn(16, 4, 8, 8, generator=generator)
    for kind in FILTERS:
        lpf = freeinit.low_pass_filter(16, 8, 8, freeinit.FreeInit(2, kind))
        expected = numpy_mix(x.double().numpy(), noise.double().numpy(), numpy_filter((16, 8, 8), kind, 0.25, 0.25))
        np.testing.assert_allclose(freeinit.mix_frequencies(x, noise, lpf).numpy(), expected, atol=1e-5)


def test_reinitialised_noise_diffuses_with_the_first_noise_then_mixes(freeinit):
    generator = torch.Generator().manual_seed(1)
    clean, first, fresh = (torch.randn(8, 4, 8, 8, generator=generator) for _ in range(3))
    lpf = freeinit.low_pass_filter(8, 8, 8, freeinit.FreeInit(2, "butterworth"))
    alphas_cumprod = np.cumprod(1 - np.linspace(0.00085, 0.012, 1000))
    a = alphas_cumprod[999]
    sigma = math.sqrt((1 - a) / a)
    diffused = math.sqrt(a) * clean.double().numpy() + math.sqrt(1 - a) * first.double().numpy()  # DDPM add_noise
    expected = numpy_mix(diffused, fresh.double().numpy(), numpy_filter((8, 8, 8), "butterworth", 0.25, 0.25))
    np.testing.assert_allclose(freeinit.reinitialised_noise(clean, first, fresh, sigma, lpf).numpy(), expected, atol=1e-5)


def test_options_refuse_what_cannot_work(freeinit):
    with pytest.raises(ValueError, match="'lanczos' is not one of butterworth, gaussian, ideal, box"):
        freeinit.FreeInit(2, "lanczos")
    with pytest.raises(ValueError, match="spatial_stop is 1.5"):
        freeinit.FreeInit(2, "gaussian", 1.5)


# --- the passes, inside ComfyUI's sampling path, with a closed-form UNet stand-in -------------------------------

class AnalyticEps(torch.nn.Module):
    """A UNet stand-in with a closed-form ε that mixes frames (so FreeInit's temporal filter matters)."""

    dtype = torch.float32
    frames = None  # frames per video; None: the whole batch is one video

    def __init__(self):
        super().__init__()
        self.calls = []
        self.inputs = []

    @staticmethod
    def eps(x, t, text_mean):
        return 0.3 * x + 0.2 * x.mean(dim=0, keepdim=True) + 0.1 * torch.cos(t / 300.0) + text_mean

    def forward(self, x, timesteps, context=None, **kwargs):
        self.calls.append(x.shape[0])
        self.inputs.append(x.detach().clone())
        frames = self.frames or x.shape[0]
        t = timesteps.view(-1, 1, 1, 1).to(x.dtype)
        text = context.mean(dim=(1, 2)).view(-1, 1, 1, 1).to(x.dtype)
        # cond and uncond come batched in one call: each chunk of `frames` is one video
        return torch.cat([self.eps(x[i:i + frames], t[i:i + frames], text[i:i + frames])
                          for i in range(0, x.shape[0], frames)])


@pytest.fixture
def analytic_model(host):
    unet = AnalyticEps()
    return model_around(unet), unet


def official_freeinit(noise, step_noise, fresh, timesteps, cfg, text_pos, text_neg, iterations, lpf):
    """FreeInit around AnimateLCM's text-to-video loop (diffusers LCMScheduler.step), float64, VP scale."""
    ac = torch.tensor(np.cumprod(1 - np.linspace(0.00085, 0.012, 1000)))

    def eps(x, t, text):
        return AnalyticEps.eps(x, torch.tensor(float(t), dtype=torch.float64), text)

    def lcm(x):
        for i, t in enumerate(timesteps):
            e = eps(x, t, text_pos)
            if cfg > 1:
                uncond = eps(x, t, text_neg)
                e = uncond + cfg * (e - uncond)
            x0 = (x - (1 - ac[t]).sqrt() * e) / ac[t].sqrt()
            denoised = 10 * t / math.sqrt((10 * t) ** 2 + 0.25) * x0 + 0.25 / ((10 * t) ** 2 + 0.25) * x
            x = (ac[timesteps[i + 1]].sqrt() * denoised + (1 - ac[timesteps[i + 1]]).sqrt() * step_noise[i]
                 if i + 1 < len(timesteps) else denoised)
        return x
    x = lcm(noise)
    for i in range(1, iterations):
        z_t = ac[999].sqrt() * x + (1 - ac[999]).sqrt() * noise  # DDPM forward to t=999 with the first noise
        x = lcm(torch.from_numpy(numpy_mix(z_t.numpy(), fresh[i].numpy(), lpf)))
    return x


@pytest.mark.parametrize("kind", ["butterworth", "box"])
@pytest.mark.parametrize("cfg", [1.0, 1.5])
def test_full_freeinit_loop_equals_the_official_procedure(pack, analytic_model, kind, cfg):
    model, unet = analytic_model
    seed, frames, steps, iterations = 42, 4, 4, 3
    unet.frames = frames
    options = pack.samplers.freeinit.FreeInit(iterations, kind, 0.25, 0.5)
    latent = torch.zeros(frames, 4, 8, 8)
    with torch.inference_mode():
        out = pack.nodes.sampler_nodes.AnimateLCMSampler().sample(
            model, conditioning(0.2), conditioning(-0.1), {"samples": latent}, seed, steps, cfg, 1.0,
            freeinit=options)["result"][0]["samples"]
    noise = torch.randn(latent.shape, generator=torch.manual_seed(seed)).double()  # comfy.sample.prepare_noise
    fresh = {i: torch.randn(latent.shape, generator=torch.manual_seed(seed + i)).double() for i in range(1, iterations)}
    step_generator = torch.Generator().manual_seed(seed + 1)  # each pass draws the same step noise
    step_noise = [torch.randn(latent.shape, generator=step_generator).double() for _ in range(steps)]
    expected = official_freeinit(noise, step_noise, fresh, [999, 749, 499, 249], cfg, 0.2, -0.1, iterations,
                                 numpy_filter((frames, 8, 8), kind, 0.25, 0.5))
    torch.testing.assert_close(out.double() * SD15_LATENT_SCALE, expected, atol=1e-5, rtol=1e-5)
    assert sum(unet.calls) == iterations * steps * frames * (2 if cfg > 1 else 1)


@pytest.mark.parametrize("iterations,cfg", [(1, 1.0), (2, 1.0), (3, 1.5), (5, 2.0)])
def test_unet_calls_are_iterations_times_steps(pack, analytic_model, iterations, cfg):
    model, unet = analytic_model
    unet.frames = 3
    with torch.inference_mode():
        pack.nodes.sampler_nodes.AnimateLCMSampler().sample(
            model, conditioning(0.2), conditioning(-0.1), {"samples": torch.zeros(3, 4, 4, 4)}, 0, 4, cfg, 1.0,
            freeinit=pack.samplers.freeinit.FreeInit(iterations))
    assert sum(unet.calls) == iterations * 4 * 3 * (2 if cfg > 1 else 1)


def test_progress_bar_counts_every_pass(pack, host, analytic_model):
    model, unet = analytic_model
    unet.frames = 2
    host.progress.clear()
    with torch.inference_mode():
        pack.nodes.sampler_nodes.AnimateLCMSampler().sample(
            model, conditioning(0.2), conditioning(-0.1), {"samples": torch.zeros(2, 4, 4, 4)}, 0, 4, 1.0, 1.0,
            freeinit=pack.samplers.freeinit.FreeInit(3))
    assert [(value, total) for value, total, _ in host.progress] == [(i, 12) for i in range(1, 13)]


def test_same_seed_same_video_and_one_iteration_is_plain_sampling(pack, analytic_model):
    model, unet = analytic_model
    unet.frames = 4
    node = pack.nodes.sampler_nodes.AnimateLCMSampler()

    def run(seed, freeinit):
        with torch.inference_mode():
            return node.sample(model, conditioning(0.2), conditioning(-0.1), {"samples": torch.zeros(4, 4, 8, 8)},
                               seed, 4, 1.5, 1.0, freeinit=freeinit)["result"][0]["samples"]
    options = pack.samplers.freeinit.FreeInit(3, "gaussian")
    first, again, other = run(7, options), run(7, options), run(8, options)
    assert torch.equal(first, again) and not torch.allclose(first, other)
    plain = run(7, None)
    assert torch.equal(run(7, pack.samplers.freeinit.FreeInit(1)), plain)
    assert not torch.allclose(first, plain)


def test_fresh_noise_of_later_passes_follows_freenoises_frame_map(pack, analytic_model):
    """Under Context Windows with FreeNoise, each pass's fresh noise is made like the first pass's: later
    windows start from shuffles of earlier windows' noise in every pass, not only the first."""
    model, unet = analytic_model
    cw = pack.motion.context_windows
    model = model.clone()
    # FreeNoise maps only an animated MODEL's noise: give the stand-in a motion layer where Apply Motion Module puts one
    block = torch.nn.Module()
    block.add_module(pack.motion.injection.MOTION_CHILD, torch.nn.Identity())
    unet.input_blocks = torch.nn.ModuleList([torch.nn.Identity(), torch.nn.Identity()])
    model.add_object_patch("diffusion_model.input_blocks.1", block)
    assert pack.motion.image_injection.is_animated(model)
    model.model_options["transformer_options"] = {cw.CONTEXT_KEY: cw.ContextOptions(8, 2, freenoise=True)}
    only_fresh = pack.samplers.freeinit.FreeInit(2, spatial_stop=0.0)  # pass 2 starts from its fresh noise alone
    with torch.inference_mode():
        pack.nodes.sampler_nodes.AnimateLCMSampler().sample(
            model, conditioning(0.2), conditioning(-0.1), {"samples": torch.zeros(20, 4, 4, 4)}, 4, 1, 1.0, 1.0,
            freeinit=only_fresh)
    assert len(unet.inputs) == 2
    for x, seed in zip(unet.inputs, (4, 5)):  # pass i draws with seed + i, and FreeNoise shuffles by that seed
        frame_map = pack.samplers.noise.freenoise_frame_map(20, 8, 2, seed=seed)
        copied = [f for f, source in enumerate(frame_map) if source != f]
        assert copied  # 20 frames in windows of 8: frames 8.. repeat earlier ones
        for frame in copied:
            assert torch.allclose(x[frame], x[frame_map[frame]], atol=1e-5), (seed, frame)
    assert not torch.allclose(*unet.inputs)  # a new draw


def test_denoise_below_one_is_refused_before_sampling(pack, analytic_model):
    model, unet = analytic_model
    unet.frames = 2
    with pytest.raises(ValueError, match="FreeInit .* needs denoise 1.0 .*0.6"):
        pack.nodes.sampler_nodes.AnimateLCMSampler().sample(
            model, conditioning(0.2), conditioning(-0.1), {"samples": torch.zeros(2, 4, 4, 4)}, 0, 4, 1.0, 0.6,
            freeinit=pack.samplers.freeinit.FreeInit(2))
    assert unet.calls == []


def test_cancel_between_or_during_passes_stops_and_leaves_the_model(pack, host, analytic_model):
    import comfy.model_management
    model, unet = analytic_model
    unet.frames = 2
    options_before, patches_before = dict(model.model_options), dict(model.object_patches)
    original_forward = unet.forward

    def forward(*args, **kwargs):  # the user presses Cancel during the second pass
        if len(unet.calls) == 5:
            comfy.model_management.interrupt_current_processing(True)
        return original_forward(*args, **kwargs)
    unet.forward = forward
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException), torch.inference_mode():
            pack.nodes.sampler_nodes.AnimateLCMSampler().sample(
                model, conditioning(0.2), conditioning(-0.1), {"samples": torch.zeros(2, 4, 4, 4)}, 0, 4, 1.0, 1.0,
                freeinit=pack.samplers.freeinit.FreeInit(3))
    finally:
        comfy.model_management.interrupt_current_processing(False)
    assert len(unet.calls) <= 6
    assert model.model_options == options_before and model.object_patches == patches_before


def test_options_node_in_a_comfyui_graph(host, pack):
    import comfy_host
    prompt = {"1": {"class_type": "ALCM_FreeInitOptions", "inputs": {
        "iterations": 3, "filter": "gaussian", "spatial_stop": 0.3, "temporal_stop": 0.2, "butterworth_order": 4}}}
    options = host.run(prompt, want=["1"]).output("1")
    assert (options.iterations, options.filter, options.spatial_stop, options.temporal_stop) == (3, "gaussian", 0.3, 0.2)
    prompt["1"]["inputs"]["temporal_stop"] = float("nan")
    with pytest.raises((comfy_host.PromptFailed, comfy_host.PromptInvalid), match="temporal_stop"):
        host.run(prompt, want=["1"])
    sampler_inputs = pack.nodes.sampler_nodes.AnimateLCMSampler.INPUT_TYPES()
    assert sampler_inputs["optional"]["freeinit"][0] == "FREEINIT"
