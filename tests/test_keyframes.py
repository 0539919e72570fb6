"""Keyframes through ComfyUI's executor: Load SparseCtrl → Apply SparseCtrl Keyframes → AnimateLCM Sampler, with the
pack's motion module and Context Windows. A recorder sees each SparseCtrl call's condition and mask per frame, per
window: the keyframes land on the frames written; the same seed gives the same video; bad frames are refused by
name. (The network against the official forward: test_sparsectrl.py.)"""
import importlib

import pytest
import torch
from safetensors.torch import save_file

import comfy_host
from fixture_models import TINY_CHANNELS
from fixture_motion import motion_state_dict, save_safetensors

pytestmark = pytest.mark.usefixtures("nothing_loaded")

FRAMES = 20
WINDOWS = {"context_length": 8, "overlap": 2, "schedule": "uniform", "closed_loop": False, "fuse": "pyramid",
           "freenoise": True}
COLOURS = (0x404040, 0x808080, 0xC0C0C0)  # keyframe k is a flat grey of (k + 1) / 4: readable in the condition


@pytest.fixture(scope="module")
def files(host, pack):
    """Tiny random SparseCtrls (both kinds, both file layouts) in models/controlnet; a tiny AnimateLCM module."""
    shapes = importlib.import_module(pack.__name__ + ".stand_ins.random_sparsectrl")
    folder = host.models_dir("controlnet")
    for kind in ("rgb", "scribble"):
        sd = shapes.sparsectrl_state_dict(kind, TINY_CHANNELS, seed=2, dtype=torch.float32)
        save_file(sd, str(folder / f"sparsectrl_{kind}_tiny.safetensors"))
        torch.save(sd, folder / f"sparsectrl_{kind}_tiny.ckpt")
    for family in ("animatelcm_t2v", "v3"):
        save_safetensors(motion_state_dict(family, TINY_CHANNELS),
                         host.models_dir("animatediff_models") / f"{family}_tiny.safetensors")


@pytest.fixture(scope="module")
def test_nodes(host, pack, tiny_model):
    """Test-only nodes: the tiny MODEL, a random prompt, a random full-size VAE, and a recorder that swaps each
    SparseCtrl control of the prompts for a recording copy (class swap, as test_controlled_windows.py does)."""
    import nodes
    from fixture_sd15 import random_tensor, vae_shapes
    calls, vaes = [], []

    class TinyModel:
        RETURN_TYPES, FUNCTION, CATEGORY = ("MODEL",), "load", "testing"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        def load(self):
            return (tiny_model.clone(),)

    class Prompt:
        RETURN_TYPES, FUNCTION, CATEGORY = ("CONDITIONING",), "make", "testing"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"seed": ("INT", {"default": 0}), "frames": ("INT", {"default": 1})}}

        def make(self, seed, frames):
            """`frames` rows (prompt travel's per-frame conditioning), row f holding 1000·seed + f everywhere."""
            return ([[(1000.0 * seed + torch.arange(frames, dtype=torch.float32)).view(-1, 1, 1).expand(-1, 77, 768)
                      .clone(), {}]],)

    class RandomVAE:
        RETURN_TYPES, FUNCTION, CATEGORY = ("VAE",), "make", "testing"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        def make(self):
            import comfy.sd

            class CountingVAE(comfy.sd.VAE):
                encodes = 0

                def encode(self, pixels):
                    self.encodes += 1
                    return super().encode(pixels)
            generator = torch.Generator().manual_seed(0)
            sd = {k: random_tensor(k, s, generator, torch.float32) for k, s in vae_shapes(prefix="").items()}
            vaes.append(CountingVAE(sd=sd))
            return (vaes[-1],)

    class Record:
        RETURN_TYPES, RETURN_NAMES, FUNCTION, CATEGORY = ("CONDITIONING", "CONDITIONING"), ("positive", "negative"), \
            "record", "testing"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"positive": ("CONDITIONING",), "negative": ("CONDITIONING",)}}

        def record(self, positive, negative):
            copies = {}

            def swapped(conditioning):
                out = []
                for tensor, options in conditioning:
                    options = dict(options)
                    if options["control"] not in copies:
                        copies[options["control"]] = recording(options["control"], calls)
                    options["control"] = copies[options["control"]]
                    out.append([tensor, options])
                return out
            return swapped(positive), swapped(negative)

    added = {"ALCM_TestKeyframeModel": TinyModel, "ALCM_TestKeyframePrompt": Prompt, "ALCM_TestRandomVAE": RandomVAE,
             "ALCM_TestRecordKeyframes": Record}
    nodes.NODE_CLASS_MAPPINGS.update(added)
    yield calls, vaes
    for name in added:
        del nodes.NODE_CLASS_MAPPINGS[name]


def recording(control, calls):
    """A copy of the SparseCtrl control that appends (the video's frames of the call, videos, hint) per SparseCtrl run."""
    base = type(control)

    class RecordingKeyframes(base):
        def get_control(self, x_noisy, t, cond, batched_number, *rest):
            params = (rest[0] if rest else {}).get("ad_params")
            self.frames_of_call = params["sub_idxs"] if params else list(range(x_noisy.shape[0] // batched_number))
            return super().get_control(x_noisy, t, cond, batched_number, *rest)

        def residuals(self, x, hint, timesteps, context, videos):
            calls.append((list(self.frames_of_call), videos, hint.detach().float().clone(),
                          [round(float(v)) for v in context[:, 0, 0]]))
            return super().residuals(x, hint, timesteps, context, videos)

        def copy(self):
            c = super().copy()
            c.__class__ = RecordingKeyframes
            return c
    copy = control.copy()
    copy.__class__ = RecordingKeyframes
    return copy


def graph(sparsectrl, frames_written, colours=COLOURS[:3], frames=FRAMES, windows=True, seed=3, cfg=1.5,
          module="animatelcm_t2v"):
    """Tiny MODEL → motion module → (Context Windows 8/2) → AnimateLCM Sampler, 64×64, 2 steps; the prompts (the
    positive one row per frame, as a prompt schedule gives) through Apply SparseCtrl Keyframes (flat grey keyframes)
    and the recorder."""
    prompt = {
        "1": {"class_type": "ALCM_TestKeyframeModel", "inputs": {}},
        "2": {"class_type": "ALCM_LoadMotionModule", "inputs": {"motion_module_name": f"{module}_tiny.safetensors"}},
        "3": {"class_type": "ALCM_ApplyMotionModule", "inputs": {"model": ["1", 0], "motion_module": ["2", 0],
                                                                 "strength": 1.0, "motion_precision": "auto"}},
        "4": {"class_type": "ALCM_ContextWindows", "inputs": {"model": ["3", 0], **WINDOWS}},
        "5": {"class_type": "ALCM_TestKeyframePrompt", "inputs": {"seed": 1, "frames": frames}},
        "6": {"class_type": "ALCM_TestKeyframePrompt", "inputs": {"seed": 2, "frames": 1}},
        "7": {"class_type": "ALCM_LoadSparseCtrl", "inputs": {"sparsectrl_name": sparsectrl}},
        "8": {"class_type": "ALCM_TestRandomVAE", "inputs": {}},
        "10": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": frames}},
    }
    images = None
    for k, colour in enumerate(colours):
        prompt[f"2{k}"] = {"class_type": "EmptyImage", "inputs": {"width": 96, "height": 80, "batch_size": 1,
                                                                  "color": colour}}
        images = [f"2{k}", 0] if images is None else _batched(prompt, k, images, [f"2{k}", 0])
    prompt["11"] = {"class_type": "ALCM_ApplySparseCtrlKeyframes", "inputs": {
        "positive": ["5", 0], "negative": ["6", 0], "sparsectrl": ["7", 0], "images": images,
        "keyframe_frames": frames_written, "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0, "vae": ["8", 0]}}
    prompt["12"] = {"class_type": "ALCM_TestRecordKeyframes", "inputs": {"positive": ["11", 0], "negative": ["11", 1]}}
    prompt["13"] = {"class_type": "ALCM_Sampler", "inputs": {
        "model": ["4", 0] if windows else ["3", 0], "positive": ["12", 0], "negative": ["12", 1],
        "latent_image": ["10", 0], "seed": seed, "steps": 2, "cfg": cfg, "denoise": 1.0, "mode": "text-to-video",
        "warn_without_spatial_lora": False}}
    return prompt


def _batched(prompt, k, first, second):
    prompt[f"3{k}"] = {"class_type": "ImageBatch", "inputs": {"image1": first, "image2": second}}
    return [f"3{k}", 0]


def expected_windows(pack, host_windows, frames, steps=2):
    cw = pack.motion.context_windows
    if not host_windows:  # the March 2024 ComfyUI: controls run once per step on every frame
        return [list(range(frames))] * steps
    return [w for step in range(steps) for w in cw.context_windows(frames, cw.ContextOptions(**WINDOWS), step)]


def check_landing(calls, windows, keyframes, videos, condition_of):
    """Each window with a keyframe ran once (videos chunks at a time), a window without none did not; on every row
    the mask is 1 exactly on keyframe frames, where the condition is that keyframe's, and zeros elsewhere."""
    with_keyframes = [w for w in windows if any(f in keyframes for f in w)]
    assert [frames for frames, _, _, _ in calls] == with_keyframes
    assert len(with_keyframes) < len(windows) or len(windows) <= 2  # some window holds none (when there are windows)
    for frames, chunks, hint, text in calls:
        assert chunks == videos and hint.shape[0] == videos * len(frames)
        # the text SparseCtrl attends to: each chunk's rows, the positive's per frame (1000 + f), the negative's 2000
        chunks_text = sorted(text[c * len(frames):(c + 1) * len(frames)] for c in range(videos))
        assert chunks_text == sorted([[1000 + f for f in frames], [2000] * len(frames)][:videos])
        for row in range(hint.shape[0]):
            frame = frames[row % len(frames)]
            mask = hint[row, -1]
            if frame in keyframes:
                assert torch.all(mask == 1), (frames, frame)
                torch.testing.assert_close(hint[row, :-1], condition_of(keyframes[frame]), atol=1e-4, rtol=1e-4)
            else:
                assert torch.all(mask == 0) and torch.all(hint[row, :-1] == 0), (frames, frame)


@pytest.mark.parametrize("layout,module", [("safetensors", "animatelcm_t2v"), ("ckpt", "v3")])
def test_scribble_keyframes_land_on_their_frames_in_every_window(host, pack, files, test_nodes, layout, module):
    """With AnimateLCM's module and AnimateDiff v3's (SparseCtrl's own), each file layout, a prompt per frame."""
    calls, _ = test_nodes
    calls.clear()
    host.run(graph(f"sparsectrl_scribble_tiny.{layout}", "0, 9, -1", module=module), want=["13"],
             executor=host.fresh_executor())
    windowed = pack.motion.windowed_conditioning.host_has_conditioning_windows()

    def grey(k):  # the scribble condition is the picture itself, at 8× the latent size
        return torch.full((3, 64, 64), ((k + 1) * 0x40) / 255)
    check_landing(calls, expected_windows(pack, windowed, FRAMES), {0: 0, 9: 1, 19: 2}, 2, grey)


def test_rgb_keyframes_are_the_vae_latents_of_the_pictures_on_their_frames(host, pack, files, test_nodes):
    """RGB SparseCtrl: each keyframe's condition is the VAE's latent of the picture, × 0.18215, on its frame; 16 frames
    and no windows: one call per step over the whole video, cond and uncond together."""
    import comfy.model_management
    calls, vaes = test_nodes
    calls.clear()
    host.run(graph("sparsectrl_rgb_tiny.safetensors", "0, -1", COLOURS[:2], frames=16, windows=False),
             want=["13"], executor=host.fresh_executor())
    vae = vaes[-1]
    assert vae.encodes == 1  # the keyframes are encoded once per run, not once per step
    pictures = torch.stack([torch.full((64, 64, 3), (colour & 0xFF) / 255) for colour in COLOURS[:2]])
    with torch.inference_mode(), torch.random.fork_rng():
        torch.manual_seed(0)  # the March 2024 ComfyUI samples the VAE's posterior: the control seeds it so
        latents = vae.encode(pictures) * 0.18215
    comfy.model_management.unload_all_models()
    check_landing(calls, [list(range(16))] * 2, {0: 0, 15: 1}, 2, lambda k: latents[k].float())


def test_the_same_seed_gives_the_same_video(host, files, test_nodes):
    prompt = graph("sparsectrl_rgb_tiny.safetensors", "0, 9, -1")
    first = host.run(prompt, want=["13"], executor=host.fresh_executor()).output("13")["samples"]
    again = host.run(prompt, want=["13"], executor=host.fresh_executor()).output("13")["samples"]
    assert first.shape == (FRAMES, 4, 8, 8) and torch.isfinite(first).all() and torch.equal(first, again)
    prompt["11"]["inputs"]["keyframe_frames"] = "0, 5, -1"  # the keyframes elsewhere: another video
    moved = host.run(prompt, want=["13"], executor=host.fresh_executor()).output("13")["samples"]
    assert not torch.equal(first, moved)


@pytest.mark.parametrize("written, colours, message", [
    ("0, 25", 2, r"keyframe frame 25 in 'keyframe_frames' is past the end of this 20-frame video \(its frames are 0 "
                 r"to 19; -1 is the last\)"),
    ("0, -21", 2, "keyframe frame -21 in 'keyframe_frames' is before the first frame of this 20-frame video"),
    ("15, -5", 2, "'15' and '-5' in 'keyframe_frames' are both frame 15 of this 20-frame video"),
    ("4, 4", 2, "'keyframe_frames' gives frame 4 twice"),
    ("0, -1", 3, r"3 picture\(s\) but 2 frame\(s\) in 'keyframe_frames' \('0, -1'\): more pictures than frames"),
    ("0, 8, -1", 2, r"2 picture\(s\) but 3 frame\(s\)"),
    ("0, ten", 2, "'keyframe_frames' has 'ten', which is not a frame"),
], ids=["past the end", "before the start", "same frame", "duplicate", "more images", "more frames", "not a number"])
def test_bad_keyframe_frames_are_refused_by_name(host, files, test_nodes, written, colours, message):
    with pytest.raises(comfy_host.PromptFailed, match="Apply SparseCtrl Keyframes \\(AnimateLCM\\): " + message):
        host.run(graph("sparsectrl_scribble_tiny.safetensors", written, COLOURS[:colours]), want=["13"],
                 executor=host.executor())


def test_frames_are_read_as_the_prompt_schedules_indices(pack):
    """n, -n from the end, a fraction with a point (int(f·frames); 1.0 the last frame), as prompts/schedule.py reads them."""
    keyframes = importlib.import_module(pack.__name__ + ".control.keyframes")
    written = keyframes.parse_frames(" 0, 0.33,\n0.67 , 1.0", 4)
    assert written == ("0", "0.33", "0.67", "1.0")
    assert keyframes.resolve(written, 64) == {0: 0, 21: 1, 42: 2, 63: 3}
    assert keyframes.resolve(keyframes.parse_frames("-1, 5, .5", 3), 16) == {15: 0, 5: 1, 8: 2}
    with pytest.raises(keyframes.KeyframeError, match="'0' and '0.33' in 'keyframe_frames' are both frame 0 of this "
                                                      "2-frame video"):
        keyframes.resolve(written, 2)
    with pytest.raises(keyframes.KeyframeError, match="the fraction 1.5, which is not between 0 and 1"):
        keyframes.parse_frames("0, 1.5", 2)
    with pytest.raises(keyframes.KeyframeError, match="'keyframe_frames' is empty"):
        keyframes.parse_frames("  ", 2)


def test_pictures_are_cropped_about_their_centre_to_the_videos_aspect(pack):
    """scripts/animate.py's RandomResizedCrop(scale (1, 1), the video's ratio) always falls back to the centre crop."""
    keyframes = importlib.import_module(pack.__name__ + ".control.keyframes")
    picture = torch.zeros(1, 40, 60, 3)
    picture[:, :, 10:50] = 1.0  # a 3:2 picture whose centre square is white, its sides black
    assert torch.equal(keyframes.fit_images(picture, 40, 40), torch.ones(1, 3, 40, 40))
    fitted = keyframes.fit_images(picture, 16, 16)
    assert fitted.shape == (1, 3, 16, 16) and fitted.min() > 0.99
    transparent = torch.cat([torch.zeros(1, 8, 8, 3), torch.zeros(1, 8, 8, 1)], dim=-1)  # fully transparent black
    assert torch.equal(keyframes.fit_images(transparent, 8, 8), torch.ones(1, 3, 8, 8))  # white, as Image to Video
