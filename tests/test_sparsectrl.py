"""SparseCtrl, the file and the network: every official key consumed, both layouts read, other files refused, and a
tiny random SparseCtrl through the pack's control equal to a float64 reference written from the official forward
(selfcheck/oracles.py `sparsectrl`), whole and window by window. (Through the executor: test_keyframes.py.)"""
import importlib

import pytest
import torch
from safetensors.torch import save_file

from fixture_models import TINY_CHANNELS, tiny_sd15_model
from fixture_motion import motion_state_dict
from fixture_selfcheck import oracles

KINDS = ["rgb", "scribble"]
# Two channels per GroupNorm group on the first level: with one (32 channels), a frame without a keyframe is a
# spatially constant input there (RGB: conv_in's and the condition conv's biases), its groups have no variance,
# and float32's rounding, divided by √eps, is all that is left of them: no reference can agree with that.
CHANNELS = (64, 64, 128, 128)


@pytest.fixture(scope="module")
def sc(pack):
    return importlib.import_module(pack.__name__ + ".control.sparsectrl")


@pytest.fixture(scope="module")
def shapes(pack):
    return importlib.import_module(pack.__name__ + ".stand_ins.random_sparsectrl")


@pytest.fixture(scope="module")
def tiny_files(shapes, tmp_path_factory):
    """{kind: (state dict, .safetensors path, .ckpt path)} of tiny random SparseCtrls in the released layout."""
    folder, files = tmp_path_factory.mktemp("sparsectrl"), {}
    for kind in KINDS:
        sd = shapes.sparsectrl_state_dict(kind, CHANNELS, seed=1, dtype=torch.float32)
        save_file(sd, str(folder / f"tiny_{kind}.safetensors"))
        torch.save(sd, folder / f"tiny_{kind}.ckpt")
        files[kind] = (sd, folder / f"tiny_{kind}.safetensors", folder / f"tiny_{kind}.ckpt")
    return files


# --- the key map -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_every_official_key_is_consumed_and_none_is_left_over(sc, shapes, kind):
    """The official state dict (SD1.5 widths, on the meta device), through the loader's own key map and tensor
    assembly into the network built on meta: each key used once, every parameter filled, strictly."""
    import comfy.ops
    official = {k: torch.empty(s, device="meta") for k, s in shapes.sparsectrl_shapes(kind).items()}
    found_kind, config = sc.network_config(official, "official")
    assert found_kind == {"rgb": sc.RGB, "scribble": sc.SCRIBBLE}[kind]
    network = sc.build_network(found_kind, config, torch.float32, comfy.ops.disable_weight_init, device="meta")
    names = sc.key_map(network, found_kind, config)
    used = [key for group in names.values() for key in group]
    stored_tables = {k for k in official if k.endswith(".pos_encoder.pe")}
    assert len(used) == len(set(used))  # no official key feeds two parameters
    assert set(used) == set(official) - stored_tables  # every key but the 8 position tables the official code drops
    assert len(stored_tables) == 8 and set(names) == set(network.state_dict())
    tensors = sc._network_tensors(official, names, network.state_dict(), "official", torch.float32, torch.float32)
    network.load_state_dict(tensors, strict=True, assign=True)
    layers = [m for m in network.modules() if type(m).__name__ == "MotionLayer"]
    assert len(layers) == 8 and all(len(layer.temporal_transformer.transformer_blocks[0].attention_blocks) == 1
                                    for layer in layers)


@pytest.mark.parametrize("kind", KINDS)
def test_the_ckpt_and_safetensors_layouts_load_the_same_network(sc, tiny_files, kind):
    sd, safetensors_path, ckpt_path = tiny_files[kind]
    loaded = [sc.load_sparsectrl(str(path)) for path in (safetensors_path, ckpt_path)]
    assert [s.kind for s in loaded] == [{"rgb": sc.RGB, "scribble": sc.SCRIBBLE}[kind]] * 2
    first, second = (s.network.state_dict() for s in loaded)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    qkv = "input_blocks.4.motion_module.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_qkv.weight"
    official = "down_blocks.1.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0."
    assert torch.equal(first[qkv], torch.cat([sd[official + p + ".weight"] for p in ("to_q", "to_k", "to_v")]))


def test_diffusers_sparsecontrolnetmodel_names_are_read_as_the_original(sc, tiny_files, tmp_path):
    """diffusers' SparseControlNetModel renames only the temporal layers (its converter, scripts/
    convert_animatediff_sparsectrl_to_diffusers.py, KEYS_RENAME_MAPPING, applied here in its order)."""
    renames = {".attention_blocks.0": ".attn1", ".attention_blocks.1": ".attn2", ".attn1.pos_encoder": ".pos_embed",
               ".ff_norm": ".norm3", ".norms.0": ".norm1", ".norms.1": ".norm2", ".temporal_transformer": ""}
    sd = tiny_files["scribble"][0]
    converted = {}
    for key, value in sd.items():
        for old, new in renames.items():
            key = key.replace(old, new)
        converted[key] = value
    assert "down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_q.weight" in converted
    diffusers = sc.load_sparsectrl(_write(tmp_path / "diffusion_pytorch_model.safetensors", converted))
    original = sc.load_sparsectrl(str(tiny_files["scribble"][1]))
    a, b = diffusers.network.state_dict(), original.network.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _write(path, sd):
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return str(path)


def test_other_files_are_refused_saying_what_they_are(sc, pack, tiny_files, tmp_path):
    random_weights = importlib.import_module(pack.__name__ + ".stand_ins.random_weights")
    generator = torch.Generator().manual_seed(0)
    controlnet = {k: torch.randn(s, generator=generator) for k, s in
                  random_weights.controlnet_shapes(ch=TINY_CHANNELS).items()}
    cases = {
        "plain ControlNet": (_write(tmp_path / "control_v11p_sd15_canny.safetensors", controlnet),
                             "is a plain ControlNet .*Load ControlNet Model.*v3_sd15_sparsectrl_rgb.ckpt"),
        "motion module": (_write(tmp_path / "v3_sd15_mm.safetensors", motion_state_dict("v3", TINY_CHANNELS)),
                          "is a motion module .*animatediff_models.*Load Motion Module"),
        "image checkpoint": (_write(tmp_path / "sd15.safetensors", {"model.diffusion_model.x": torch.zeros(1)}),
                             "is an image model checkpoint"),
        "LoRA": (_write(tmp_path / "style.safetensors", {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight":
                                                         torch.zeros(4, 1)}), "is a LoRA"),
    }
    sd, safetensors_path, ckpt_path = tiny_files["rgb"]
    incomplete = {k: v for k, v in sd.items() if "down_blocks.2.motion_modules.1" not in k}
    cases["incomplete"] = (_write(tmp_path / "incomplete.safetensors", incomplete),
                           r"is incomplete: it lacks down_blocks\.2\.motion_modules\.1\..*download it again")
    for source, name in ((safetensors_path, "cut.safetensors"), (ckpt_path, "cut.ckpt")):
        data = source.read_bytes()
        (tmp_path / name).write_bytes(data[:len(data) // 2])
        cases[name] = (str(tmp_path / name), f"'{name}' is corrupt or truncated .*Download it again")
    (tmp_path / "empty.ckpt").write_bytes(b"")
    cases["empty"] = (str(tmp_path / "empty.ckpt"), "is empty")
    for what, (path, message) in cases.items():
        with pytest.raises(sc.SparseCtrlError, match=message):
            sc.load_sparsectrl(path)


def test_a_pickle_that_runs_code_is_refused_and_not_run(sc, tmp_path):
    from fixture_models import RunsCode
    marker = tmp_path / "ran"
    torch.save({"conv_in.weight": torch.zeros(1), "payload": RunsCode(str(marker))}, tmp_path / "evil.ckpt")
    with pytest.raises(sc.SparseCtrlError, match="only weights are loaded"):
        sc.load_sparsectrl(str(tmp_path / "evil.ckpt"))
    assert not marker.exists()


# --- the forward, against the official one ------------------------------------------------------------------

FRAMES = 8


@pytest.fixture(scope="module")
def model(host):
    """The tiny SD1.5 MODEL: the control reads its model sampling (σ → t) and latent scaling in pre_run."""
    return tiny_sd15_model()


class StubVAE:
    """A VAE whose encoding is a fixed function of the pixels (the real VAE is ComfyUI's, tested there)."""

    def __init__(self):
        self.calls = 0

    def encode(self, pixels):  # [K, H, W, 3] 0-1 → [K, 4, H/8, W/8]
        self.calls += 1
        x = pixels.movedim(-1, 1) * 2 - 1
        pooled = torch.nn.functional.avg_pool2d(x, 8)
        return torch.cat([pooled, pooled.mean(dim=1, keepdim=True) * 3], dim=1)


def pictures(count, height, width, seed=3):
    return torch.rand(count, height, width, 3, generator=torch.Generator().manual_seed(seed))


def control_for(pack, sc, tiny_files, model, kind, written, images, strength=1.0, vae=None):
    keyframes = importlib.import_module(pack.__name__ + ".control.keyframe_control")
    parse = importlib.import_module(pack.__name__ + ".control.keyframes").parse_frames
    sparsectrl = sc.load_sparsectrl(str(tiny_files[kind][1]))
    control = keyframes.SparseCtrlKeyframes(sparsectrl, images, parse(written, images.shape[0]), vae)
    control.strength = strength
    control.pre_run(model.model, lambda percent: 1000.0 * (1 - percent))
    return control


def reference(pack, tiny_files, model, kind, conditions, indices, frames, sigma, text, videos, strength):
    """The official pipeline's condition and mask, the official forward in float64, for `videos` chunks."""
    cond, mask = oracles.sparsectrl_condition(conditions, indices, frames)
    t = model.model.model_sampling.timestep(torch.tensor([sigma])).item()
    return oracles.sparsectrl(tiny_files[kind][0], cond.repeat(videos, 1, 1, 1), mask.repeat(videos, 1, 1, 1), t,
                              text, videos, strength)


def official_conditions(pack, kind, images, size, vae, model):
    """The keyframes as the official script prepares them: fitted to the video, latents × 0.18215 for RGB."""
    fitted = importlib.import_module(pack.__name__ + ".control.keyframes").fit_images(images, size[1] * 8, size[0] * 8)
    if kind == "scribble":
        return fitted
    return vae.encode(fitted.movedim(1, -1)).double() * oracles.SD15_LATENT_SCALE


def residual_list(control_dict):
    return control_dict["output"] + control_dict["middle"]


@pytest.mark.parametrize("kind,videos", [("rgb", 2), ("scribble", 1), ("rgb", 1), ("scribble", 2)])
def test_the_pack_equals_the_official_forward_in_float64(pack, sc, tiny_files, model, kind, videos):
    size, sigma, strength = (8, 8), 2.5, 0.8
    images, vae = pictures(2, 80, 96), StubVAE()
    control = control_for(pack, sc, tiny_files, model, kind, "0, -1", images, strength, vae if kind == "rgb" else None)
    x = torch.randn(videos * FRAMES, 4, *size, generator=torch.Generator().manual_seed(4))
    text = torch.randn(videos * FRAMES, 77, 768, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        ours = residual_list(control.get_control(x, torch.full((videos * FRAMES,), sigma), {"c_crossattn": text},
                                                 videos, {}))
    conditions = official_conditions(pack, kind, images, size, StubVAE(), model)
    expected = reference(pack, tiny_files, model, kind, conditions, [0, -1], FRAMES, sigma, text, videos, strength)
    assert len(ours) == len(expected) == 13
    for index, (a, b) in enumerate(zip(ours, expected)):
        scale = b.abs().max().item()
        assert scale > 0, index
        error = ((a.double() - b).abs().max() / scale).item()
        assert error < 2e-5, f"residual {index}: {error:.2e} of its largest value"
    if kind == "rgb":
        assert vae.calls == 1  # encoded once per run and size, not per step or window


def test_each_window_gets_the_keyframes_inside_it_and_a_window_without_none(pack, sc, tiny_files, model):
    """Under the pack's windows (ad_params): the window's frames of the official condition, its own run."""
    frames, window, size, sigma = 20, list(range(6, 14)), (8, 8), 4.0
    images = pictures(3, 64, 64)
    control = control_for(pack, sc, tiny_files, model, "scribble", "0, 9, -1", images)
    x = torch.randn(len(window), 4, *size, generator=torch.Generator().manual_seed(6))
    text = torch.randn(len(window), 77, 768, generator=torch.Generator().manual_seed(7))
    params = {"ad_params": {"full_length": frames, "context_length": len(window), "sub_idxs": window}}
    with torch.inference_mode():
        ours = residual_list(control.get_control(x, torch.full((len(window),), sigma), {"c_crossattn": text}, 1, params))
        empty = {"ad_params": {"full_length": frames, "context_length": 5, "sub_idxs": [1, 2, 3, 4, 5]}}
        assert control.get_control(x[:5], torch.full((5,), sigma), {"c_crossattn": text[:5]}, 1, empty) is None
    conditions = official_conditions(pack, "scribble", images, size, None, model)
    cond, mask = oracles.sparsectrl_condition(conditions, [0, 9, -1], frames)
    assert mask[window].flatten(1).amax(1).tolist() == [0, 0, 0, 1, 0, 0, 0, 0]  # frame 9 only
    t = model.model.model_sampling.timestep(torch.tensor([sigma])).item()
    expected = oracles.sparsectrl(tiny_files["scribble"][0], cond[window], mask[window], t, text, 1)
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a.double(), b, atol=2e-5 * b.abs().max().item(), rtol=1e-4)


def test_a_call_over_more_frames_than_sparsectrl_covers_runs_it_in_its_own_windows(pack, sc, tiny_files, model):
    """40 frames in one call (no Context Windows, or the March 2024 ComfyUI's whole-video call): SparseCtrl's 32-frame
    position table is never run past; its own windows of 16 (static, overlap 4) are fused with pyramid weights, and
    the middle window, which holds no keyframe, adds zeros."""
    frames, size, sigma = 40, (8, 8), 3.0
    images = pictures(2, 64, 64)
    control = control_for(pack, sc, tiny_files, model, "scribble", "0, -1", images)
    x = torch.randn(frames, 4, *size, generator=torch.Generator().manual_seed(8))
    text = torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(9)).expand(frames, -1, -1)
    with torch.inference_mode():
        ours = residual_list(control.get_control(x, torch.full((frames,), sigma), {"c_crossattn": text}, 1, {}))
    cond, mask = oracles.sparsectrl_condition(official_conditions(pack, "scribble", images, size, None, model),
                                              [0, -1], frames)
    t = model.model.model_sampling.timestep(torch.tensor([sigma])).item()
    windows = [list(range(0, 16)), list(range(12, 28)), list(range(24, 40))]
    per_window = [oracles.sparsectrl(tiny_files["scribble"][0], cond[w], mask[w], t, text[w], 1)
                  if mask[w].any() else None for w in windows]
    assert per_window[1] is None
    for index, residual in enumerate(ours):
        total = torch.zeros(residual.shape, dtype=torch.float64)
        weight = torch.zeros(frames, dtype=torch.float64)
        for window, outs in zip(windows, per_window):
            w = torch.tensor(oracles.pyramid_weights(len(window)), dtype=torch.float64)
            if outs is not None:
                total[window] += w.view(-1, 1, 1, 1) * outs[index]
            weight[window] += w
        expected = total / weight.view(-1, 1, 1, 1)
        assert ((residual.double() - expected).abs().max() / expected.abs().max()).item() < 2e-5, index
