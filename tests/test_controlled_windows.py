"""Controlled long videos: ControlNets, IP-Adapter-style patches, masks and hints under the pack's Context Windows.

Where the host has ComfyUI's conditioning-level hook (CALC_COND_BATCH, ComfyUI 0.3.x), each window's whole
conditioning pass runs on its frames alone, ControlNet included; the March 2024 host keeps the UNet-level
windows, where the ControlNet sees every frame at once and each window takes its own frames' residuals.
"""
import pytest
import torch

from fixture_controlnet import tiny_controlnet
from fixture_models import TINY_CHANNELS
from fixture_motion import motion_state_dict, save_safetensors
from fixture_sampling import one_step_sample

pytestmark = pytest.mark.usefixtures("nothing_loaded")

FRAMES, LENGTH, OVERLAP = 20, 8, 2
SCHEDULES = [("uniform", False), ("static", False), ("batched", False), ("uniform", True)]


@pytest.fixture(scope="module")
def cw(pack):
    return pack.motion.context_windows


@pytest.fixture(scope="module")
def conditioning_level(pack):
    return pack.motion.windowed_conditioning.host_has_conditioning_windows()


@pytest.fixture(scope="module")
def animated(pack, tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("module") / "animatelcm_t2v.safetensors"
    save_safetensors(motion_state_dict("animatelcm_t2v", TINY_CHANNELS), path)
    return pack.motion.injection.animate(tiny_model, pack.motion.motion_module.load_motion_module(str(path)))


def windowed(pack, model, schedule="static", closed_loop=False, fuse="pyramid"):
    node = pack.nodes.context_nodes.ContextWindows()
    return node.apply(model, LENGTH, OVERLAP, schedule, closed_loop, fuse, False)[0]


def unet_level_only(pack, model):
    """The same MODEL without the conditioning-level wrappers: the UNet-level windows of the 2024 host."""
    import comfy.patcher_extension
    plain = model.clone()
    for kind in (comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, comfy.patcher_extension.WrappersMP.PREPARE_SAMPLING):
        plain.remove_wrappers_with_key(kind, pack.motion.windowed_conditioning.WRAPPER_KEY)
    return plain


def frame_hints(frames=FRAMES, seed=5):
    """IMAGE hints whose red channel at (0, 0) holds the frame's number / 100, so a recorder can read them."""
    generator = torch.Generator().manual_seed(seed)
    hint = torch.rand(frames, 64, 64, 3, generator=generator) * torch.linspace(0.2, 1, frames).view(-1, 1, 1, 1)
    hint[:, 0, 0, 0] = torch.arange(frames) / 100
    return hint


def frames_in(hint_nchw):
    return [round(float(v) * 100) for v in hint_nchw[:, 0, 0, 0]]


def recording(control, calls, on_call=None):
    """The control with a get_control that records the hint frames and batch it is run on (a test-only hook)."""
    base = type(control)

    class RecordingControlNet(base):
        def get_control(self, x_noisy, t, cond, batched_number, *rest):
            calls.append((frames_in(self.cond_hint_original), x_noisy.shape[0]))
            if on_call is not None:
                on_call(len(calls))
            return super().get_control(x_noisy, t, cond, batched_number, *rest)

        def copy(self):  # ControlNet Apply copies the control: keep recording
            c = super().copy()
            c.__class__ = RecordingControlNet
            return c
    control.__class__ = RecordingControlNet
    return control


def apply_control(control, hint, positive, negative, strength=1.0):
    import nodes
    return nodes.ControlNetApplyAdvanced().apply_controlnet(positive, negative, control, hint, strength, 0.0, 1.0)[:2]


def prompts(frames=FRAMES, seed=6):
    generator = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, 77, 768, generator=generator), {}]], [[torch.zeros(1, 77, 768), {}]]


def noise_for(frames=FRAMES, seed=7):
    return torch.randn(frames, 4, 8, 8, generator=torch.Generator().manual_seed(seed))


# --- each ControlNet call sees one window's hint frames --------------------------------------------------

@pytest.mark.parametrize("cfg", [1.0, 1.5])
@pytest.mark.parametrize("schedule,closed_loop", SCHEDULES)
def test_each_controlnet_call_sees_one_windows_hint_frames(pack, cw, conditioning_level, tiny_model, animated,
                                                            schedule, closed_loop, cfg):
    calls, steps = [], 3
    control = recording(tiny_controlnet(tiny_model), calls)
    positive, negative = apply_control(control, frame_hints(), *prompts())
    model = windowed(pack, animated, schedule, closed_loop)
    hint_before = positive[0][1]["control"].cond_hint_original
    one_step_sample(pack, model, noise_for(), positive, negative, steps=steps, cfg=cfg)
    chunks = 1 if cfg == 1.0 else 2
    opts = model.model_options["transformer_options"][cw.CONTEXT_KEY]
    if conditioning_level:  # one call per window, on that window's frames, cond and uncond together
        expected = [(window, len(window) * chunks) for step in range(steps) for window in cw.context_windows(FRAMES, opts, step)]
    else:  # the 2024 host: one call per step on every frame (each UNet window then takes its own rows)
        expected = [(list(range(FRAMES)), FRAMES * chunks)] * steps
    assert calls == expected
    assert positive[0][1]["control"].cond_hint_original is hint_before  # the CONDITIONING is left as it was


def test_windowed_controlnet_equals_each_window_run_alone(pack, cw, tiny_model, animated):
    """The fused video is the windows run alone on their own hint frames, fused: never frame 0's hints broadcast."""
    control, hint = tiny_controlnet(tiny_model), frame_hints()
    positive, negative = prompts()
    noise = noise_for()
    model = windowed(pack, animated)
    out = one_step_sample(pack, model, noise, *apply_control(control, hint, positive, negative), cfg=1.5)
    opts = model.model_options["transformer_options"][cw.CONTEXT_KEY]

    def fused(hint_of):
        total, weight = torch.zeros_like(out), torch.zeros(FRAMES)
        for window in cw.context_windows(FRAMES, opts):
            alone = one_step_sample(pack, animated, noise[window], *apply_control(control, hint_of(window), positive,
                                                                                   negative), cfg=1.5)
            w = cw.fuse_weights(window, FRAMES, opts)
            total[window] += alone * w.view(-1, 1, 1, 1)
            weight[window] += w
        return total / weight.view(-1, 1, 1, 1)
    expected = fused(lambda window: hint[window])
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
    broadcast = fused(lambda window: hint[:len(window)])  # what core's frame-0 broadcast would give
    assert (out - broadcast).abs().max() > 100 * (out - expected).abs().max()


def test_a_video_of_one_window_with_controlnet_is_sampled_as_without_windows(pack, tiny_model, animated):
    frames = 8
    control, hint = tiny_controlnet(tiny_model), frame_hints(frames)
    conditioning = apply_control(control, hint, *prompts())
    plain = one_step_sample(pack, animated, noise_for(frames), *conditioning, steps=2, cfg=1.5)
    under_windows = one_step_sample(pack, windowed(pack, animated), noise_for(frames), *conditioning, steps=2, cfg=1.5)
    torch.testing.assert_close(under_windows, plain, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("schedule,closed_loop", SCHEDULES)
def test_without_controlnet_the_conditioning_level_windows_give_the_unet_level_numbers(
        pack, conditioning_level, animated, schedule, closed_loop):
    """Schedules, fuse weights and FreeNoise's maths are the same bit for bit whichever level windows the video."""
    if not conditioning_level:
        pytest.skip("this host has no conditioning-level hook: the UNet-level windows are the only ones (tested "
                    "in test_context_windows.py)")
    generator = torch.Generator().manual_seed(8)
    per_frame = [[torch.randn(FRAMES, 77, 768, generator=generator), {}]]  # prompt travel: a row per frame
    negative = [[torch.randn(1, 77, 768, generator=generator), {}]]
    for fuse in ("pyramid", "overlap-linear"):
        model = windowed(pack, animated, schedule, closed_loop, fuse)
        new = one_step_sample(pack, model, noise_for(), per_frame, negative, steps=3, cfg=1.5)
        old = one_step_sample(pack, unet_level_only(pack, model), noise_for(), per_frame, negative, steps=3, cfg=1.5)
        assert torch.equal(new, old), fuse


# --- what the ecosystem reads: ad_params ------------------------------------------------------------------

def tensor_to_size(source, dest_size):
    """IPAdapter_plus utils.py `tensor_to_size` (line 315), as it is."""
    source_size = source.shape[0]
    if source_size < dest_size:
        shape = [dest_size - source_size] + [1] * (source.dim() - 1)
        source = torch.cat((source, source[-1:].repeat(shape)), dim=0)
    elif source_size > dest_size:
        source = source[:dest_size]
    return source


def ipadapter_like_patch(images, calls):
    """An attention patch that picks each frame's image exactly as IPAdapter_plus does (cubiq/ComfyUI_IPAdapter_plus
    9d076a3, CrossAttentionPatch.py `ipadapter_attention`, unfold_batch) from the same `extra_options`, and
    records, per chunk (cond, uncond), the frame each row's prompt says it is and the image it was given.
    (IP-Adapter replaces attn2; this reads the same options one step earlier, where the prompt rows are still
    readable, in the first transformer block only.)"""
    def patch(n, context_attn2, value_attn2, extra_options):
        if tuple(extra_options["block"]) != ("input", 1):
            return n, context_attn2, value_attn2
        cond_or_uncond = extra_options["cond_or_uncond"]                                    # line 69
        ad_params = extra_options['ad_params'] if "ad_params" in extra_options else None    # line 78
        b = n.shape[0]                                                                      # line 80
        batch_prompt = b // len(cond_or_uncond)                                             # line 82
        if ad_params is not None and ad_params["sub_idxs"] is not None:                     # line 128
            if images.shape[0] >= ad_params["full_length"]:                                 # line 139
                picked = torch.Tensor(images[ad_params["sub_idxs"]])                        # line 140
            else:
                picked = tensor_to_size(images, ad_params["full_length"])                   # line 144
                picked = picked[ad_params["sub_idxs"]]                                      # line 146
        else:
            picked = tensor_to_size(images, batch_prompt)                                   # line 157
        for chunk in range(len(cond_or_uncond)):
            rows = context_attn2[chunk * batch_prompt:(chunk + 1) * batch_prompt, 0, 0]
            calls.append(([round(float(v)) % 1000 for v in rows], [round(float(v)) for v in picked[:, 0]]))
        return n, context_attn2, value_attn2
    return patch


@pytest.mark.parametrize("images", [FRAMES, 1], ids=["an image per frame", "one image"])
@pytest.mark.parametrize("cfg", [1.0, 1.5])
def test_an_ipadapter_batch_gives_each_frame_its_own_image_in_every_window(pack, cw, animated, images, cfg):
    """The contract: IP-Adapter reads ad_params as published and indexes its image batch with them."""
    calls = []
    image_batch = torch.arange(images, dtype=torch.float32).view(-1, 1).repeat(1, 4)  # image k's features hold k
    model = windowed(pack, animated, "uniform")
    model.set_model_attn2_patch(ipadapter_like_patch(image_batch, calls))
    frame_rows = torch.arange(FRAMES, dtype=torch.float32).view(-1, 1, 1).expand(-1, 77, 768)
    positive, negative = [[frame_rows.clone(), {}]], [[frame_rows + 1000, {}]]  # every prompt row names its frame
    one_step_sample(pack, model, noise_for(), positive, negative, steps=3, cfg=cfg)
    opts = model.model_options["transformer_options"][cw.CONTEXT_KEY]
    windows = [w for step in range(3) for w in cw.context_windows(FRAMES, opts, step)]
    chunks = 1 if cfg == 1.0 else 2
    assert [frames for frames, _ in calls] == [w for w in windows for _ in range(chunks)]  # each window, in order
    for frames_of_rows, picked in calls:
        assert picked == (frames_of_rows if images == FRAMES else [0] * LENGTH)


def test_advanced_controlnet_style_controls_cut_their_own_hints_from_ad_params(pack, cw, conditioning_level,
                                                                             tiny_model, animated):
    """A control that reads ad_params as Advanced-ControlNet's get_control_inject does (adv_control/utils.py
    lines 689-692) and cuts its hint with sub_idxs (adv_control/control.py lines 76-80) is left to do so."""
    if not conditioning_level:
        pytest.skip("the 2024 host runs ControlNets before any window (documented in docs/nodes.md)")
    calls = []
    base = type(tiny_controlnet(tiny_model))

    class AdvancedStyle(base):
        sub_idxs, full_latent_length, context_length = None, 0, 0

        def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
            if "ad_params" in transformer_options:
                self.sub_idxs = transformer_options["ad_params"]["sub_idxs"]
                self.full_latent_length = transformer_options["ad_params"]["full_length"]
                self.context_length = transformer_options["ad_params"]["context_length"]
            calls.append((frames_in(self.cond_hint_original[self.sub_idxs]), self.full_latent_length,
                          self.context_length))
            return None

        def copy(self):
            c = super().copy()
            c.__class__ = AdvancedStyle
            return c
    control = tiny_controlnet(tiny_model)
    control.__class__ = AdvancedStyle
    model = windowed(pack, animated, "uniform")
    one_step_sample(pack, model, noise_for(), *apply_control(control, frame_hints(), *prompts()), steps=2)
    opts = model.model_options["transformer_options"][cw.CONTEXT_KEY]
    assert calls == [(window, FRAMES, LENGTH) for step in range(2) for window in cw.context_windows(FRAMES, opts, step)]


# --- masks, memory planning, bad hints, Cancel --------------------------------------------------------------

def test_a_per_frame_mask_follows_each_window(pack, cw, animated):
    import nodes
    generator = torch.Generator().manual_seed(9)
    masks = (torch.rand(FRAMES, 64, 64, generator=generator) > 0.5).float()
    positive, negative = prompts()
    other = [[torch.randn(1, 77, 768, generator=generator), {}]]
    masked = nodes.ConditioningSetMask().append(other, masks, "default", 1.0)[0]
    positive = nodes.ConditioningCombine().combine(positive, masked)[0]
    model = windowed(pack, animated)
    out = one_step_sample(pack, model, noise_for(), positive, negative, cfg=1.5)
    opts = model.model_options["transformer_options"][cw.CONTEXT_KEY]
    total, weight = torch.zeros_like(out), torch.zeros(FRAMES)
    for window in cw.context_windows(FRAMES, opts):
        window_positive = nodes.ConditioningCombine().combine(
            prompts()[0], nodes.ConditioningSetMask().append(other, masks[window], "default", 1.0)[0])[0]
        alone = one_step_sample(pack, animated, noise_for()[window], window_positive, negative, cfg=1.5)
        w = cw.fuse_weights(window, FRAMES, opts)
        total[window] += alone * w.view(-1, 1, 1, 1)
        weight[window] += w
    torch.testing.assert_close(out, total / weight.view(-1, 1, 1, 1), atol=1e-5, rtol=1e-5)


def test_memory_is_planned_for_one_window(pack, conditioning_level, animated):
    if not conditioning_level:
        pytest.skip("the 2024 host has no PREPARE_SAMPLING wrapper to plan memory with")
    import comfy.patcher_extension
    shapes = []
    model = windowed(pack, animated)

    def record(executor, model, noise_shape, *args, **kwargs):
        shapes.append(list(noise_shape))
        return executor(model, noise_shape, *args, **kwargs)
    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.PREPARE_SAMPLING, "test", record)
    one_step_sample(pack, model, noise_for(), *prompts())
    assert shapes == [[LENGTH, 4, 8, 8]]


@pytest.mark.parametrize("hint_frames", [12, 24])
def test_a_hint_that_fits_neither_one_frame_nor_the_video_is_refused_before_anything_runs(
        pack, conditioning_level, tiny_model, animated, hint_frames):
    calls = []
    control = recording(tiny_controlnet(tiny_model), calls)
    conditioning = apply_control(control, frame_hints(hint_frames), *prompts())
    refused = f"hint of {hint_frames} images, but the video has {FRAMES} frames"
    sampler = pack.nodes.sampler_nodes.AnimateLCMSampler()
    with pytest.raises(ValueError, match=refused):  # the AnimateLCM Sampler checks, with or without windows
        with torch.inference_mode():
            sampler.sample(animated, conditioning[0], conditioning[1], {"samples": torch.zeros(FRAMES, 4, 8, 8)},
                           0, 1, 1.5, 1.0, "text-to-video", False)
    if conditioning_level:  # and the windows themselves, for any sampler (SamplerCustom, KSampler)
        with pytest.raises(ValueError, match=refused):
            one_step_sample(pack, windowed(pack, animated), noise_for(), *conditioning)
    assert calls == []  # refused before any ControlNet (or UNet) call
    one_hint = apply_control(control, frame_hints(1), *prompts())  # one picture steers every frame: fine
    one_step_sample(pack, windowed(pack, animated), noise_for(), *one_hint)


def test_cancel_inside_a_window_leaves_the_conditioning_as_it_was(pack, tiny_model, animated):
    import comfy.model_management

    def cancel_at_the_second_call(count):
        if count == 2:  # the second window's (or, on the 2024 host, the second step's) ControlNet call
            comfy.model_management.interrupt_current_processing(True)
            comfy.model_management.throw_exception_if_processing_interrupted()
    calls = []
    control = recording(tiny_controlnet(tiny_model), calls, cancel_at_the_second_call)
    positive, negative = apply_control(control, frame_hints(), *prompts())
    applied = positive[0][1]["control"]
    hint = applied.cond_hint_original
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            one_step_sample(pack, windowed(pack, animated), noise_for(), positive, negative, steps=2)
    finally:
        comfy.model_management.interrupt_current_processing(False)
    assert len(calls) == 2 and applied.cond_hint_original is hint
