"""The host, the pack's registration, the fixtures and the prompt runner, before any node of ours runs."""

import pytest
import torch

import comfy_host
from fixture_models import E2E_SIZE, core_t2i_prompt


def test_pack_is_a_loaded_custom_node(host):
    import nodes
    for node_id, cls in host.pack.NODE_CLASS_MAPPINGS.items():
        assert node_id.startswith("ALCM_"), node_id
        assert nodes.NODE_CLASS_MAPPINGS[node_id] is cls
        assert node_id in host.pack.NODE_DISPLAY_NAME_MAPPINGS


def test_model_folders_are_registered(host):
    import folder_paths
    for folder in ("animatediff_models", "animatediff_motion_lora"):
        paths, extensions = folder_paths.folder_names_and_paths[folder]
        assert paths and ".safetensors" in extensions and ".ckpt" in extensions
    assert "loras" in folder_paths.folder_names_and_paths


def test_registration_keeps_a_folder_another_pack_registered(host, tmp_path):
    import folder_paths
    from_other_pack = ([str(tmp_path)], {".safetensors"})
    saved = folder_paths.folder_names_and_paths["animatediff_models"]
    folder_paths.folder_names_and_paths["animatediff_models"] = from_other_pack
    try:
        host.pack.weights.model_folders.register_model_folders()
        assert folder_paths.folder_names_and_paths["animatediff_models"] is from_other_pack
    finally:
        folder_paths.folder_names_and_paths["animatediff_models"] = saved


def test_fixture_checkpoint_has_every_key_comfyui_expects(host, sd15_checkpoint):
    """The random SD1.5 file has the real layout: ComfyUI finds nothing missing or extra."""
    import comfy.sd
    import folder_paths
    path = folder_paths.get_full_path("checkpoints", sd15_checkpoint)
    with torch.inference_mode():  # as ComfyUI's executor runs node code
        model, clip, vae = comfy.sd.load_checkpoint_guess_config(path, output_vae=True, output_clip=True)[:3]
    from safetensors import safe_open
    with safe_open(path, "pt") as f:
        file_keys = set(f.keys())
    unet_expected = {"model.diffusion_model." + k for k in model.model.diffusion_model.state_dict()}
    vae_expected = {"first_stage_model." + k for k in vae.first_stage_model.state_dict()}
    assert unet_expected == {k for k in file_keys if k.startswith("model.diffusion_model.")}
    assert vae_expected == {k for k in file_keys if k.startswith("first_stage_model.")}
    assert type(model.model.model_config).__name__ == "SD15"


@pytest.mark.slow
def test_core_graph_runs_end_to_end_and_is_seed_deterministic(host, sd15_checkpoint):
    # a fresh executor per run: ComfyUI 0.3.6x+ would otherwise serve the repeated prompt from its cache
    first = host.run(core_t2i_prompt(sd15_checkpoint, seed=1), want=["6"], executor=host.fresh_executor()).output("6")
    sent = [data for event, data in host.server.messages if event == "progress"]
    assert host.progress or sent, "the sampler reported no progress through comfy.utils.ProgressBar"
    other = host.run(core_t2i_prompt(sd15_checkpoint, seed=2), want=["6"], executor=host.fresh_executor()).output("6")
    again = host.run(core_t2i_prompt(sd15_checkpoint, seed=1), want=["6"], executor=host.fresh_executor()).output("6")
    assert first.shape == (4, E2E_SIZE, E2E_SIZE, 3)
    assert torch.isfinite(first).all()
    assert 0.0 <= first.min() and first.max() <= 1.0
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_runner_reports_a_node_error_with_its_message(host):
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "missing.safetensors"}},
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
              "3": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
              "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}}
    with pytest.raises(comfy_host.PromptInvalid, match="missing.safetensors"):
        host.run(prompt)


@pytest.mark.slow
@pytest.mark.parametrize("alpha", [None, 2.0])
def test_fixture_kohya_lora_is_read_by_comfyuis_own_lora_loader(host, sd15_checkpoint, alpha):
    """The kohya fixture has the real layout: core LoraLoader maps every module of it."""
    from fixture_lora import text_encoder_modules, unet_modules, write_kohya_lora
    write_kohya_lora(host.models_dir("loras") / f"style_alpha_{alpha}.safetensors", alpha=alpha)
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": sd15_checkpoint}},
              "2": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1], "strength_model": 1.0,
                                                          "strength_clip": 1.0, "lora_name": f"style_alpha_{alpha}.safetensors"}}}
    result = host.run(prompt, want=["2"])
    model, clip = result.output("2", 0), result.output("2", 1)
    assert len(model.patches) == len(unet_modules()) == 128
    assert len(clip.patcher.patches) == len(text_encoder_modules()) == 48
