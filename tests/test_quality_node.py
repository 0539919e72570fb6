"""Video Quality (AnimateLCM) through ComfyUI's executor: the numbers are the engine's on the same frames, the
plot is shown in the node, the windows are read from the MODEL, the streamed LATENT + VAE form measures what
VAE Decode gives, and bad input is refused by name."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import comfy_host
import stand_ins
from fixture_quality import moving, with_seams
from fixture_sd15 import random_tensor, vae_shapes

MEASURES = ("flicker", "warping_error", "motion", "window_seam", "loop_seam")


def write_clip(host, pack, name, frames):
    """uint8 frames as a lossless APNG in the input folder (Load Video gives them back exactly)."""
    images = torch.from_numpy(np.stack(frames)).float() / 255
    pack.video.encode.save_video(images, str(host.input_dir / name), "apng", 8.0)
    return name


def load(name):
    return {"class_type": "ALCM_LoadVideo", "inputs": {"video": name, "frame_cap": 0, "skip_first_frames": 0,
                                                       "select_every_nth": 1, "resize_to_multiple_of_8": False}}


def quality(**inputs):
    return {"class_type": "ALCM_VideoQuality", "inputs": {"steps": 4, **inputs}}


def outputs(result, node_id):
    return [result.output(node_id, i) for i in range(7)]


def test_the_numbers_are_the_engines_and_the_plot_shows_in_the_node(host, pack):
    frames = moving(10, step=(0.5, 0.25))
    name = write_clip(host, pack, "quality_moving.png", frames)
    result = host.run({"1": load(name), "2": quality(images=["1", 0])})
    *numbers, report, plot = outputs(result, "2")
    expected = pack.quality.report.measure_video(iter(frames))
    assert numbers == [pack.quality.report.summary(expected)[k] for k in MEASURES]
    assert json.loads(report)["pairs"] == expected["pairs"] and json.loads(report)["frames"] == 10
    assert abs(numbers[2] - np.hypot(0.5, 0.25)) < 0.1
    # the plot: an IMAGE output, and the same picture as a temp PNG the node shows (core Preview Image's way)
    [shown] = result.ui("2")["images"]
    assert shown["type"] == "temp" and shown["filename"].endswith(".png")
    picture = np.asarray(Image.open(host.work_dir / "temp" / shown["subfolder"] / shown["filename"]))
    assert plot.shape == (1, *picture.shape) and plot.dtype == torch.float32
    assert torch.equal((plot[0] * 255).round().to(torch.uint8), torch.from_numpy(picture.copy()))
    assert "animatelcm_warnings" not in result.ui("2")


def test_a_still_canvas(host):
    canvas = {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 24, "batch_size": 3, "color": 0x808080}}
    result = host.run({"1": canvas, "2": quality(images=["1", 0])})
    assert outputs(result, "2")[:5] == [1.0, 0.0, 0.0, 1.0, 1.0]


def test_the_window_seams_come_from_the_models_context_windows(host, pack):
    """A seam injected at the static 16/4 windows' edges: the MODEL after Context Windows finds it; the same
    MODEL without them measures no seam and says why on screen."""
    name = write_clip(host, pack, "quality_seams.png", with_seams(moving(40), [12, 16, 24, 28]))
    checkpoint = stand_ins.narrow_sd15_checkpoint(host)
    windows = {"class_type": "ALCM_ContextWindows", "inputs": {
        "model": ["1", 0], "context_length": 16, "overlap": 4, "schedule": "static", "closed_loop": False,
        "fuse": "pyramid", "freenoise": False}}
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
              "2": windows, "3": load(name),
              "4": quality(images=["3", 0], model=["2", 0]), "5": quality(images=["3", 0], model=["1", 0])}
    result = host.run(prompt)
    windowed, plain = outputs(result, "4"), outputs(result, "5")
    assert windowed[3] > 5 and json.loads(windowed[5])["window_seam"]["seams"] == [12, 16, 24, 28]
    assert plain[3] == 1.0 and windowed[:3] == plain[:3]
    [warning] = result.ui("5")["animatelcm_warnings"]
    assert "the MODEL has no Context Windows (AnimateLCM), so no window seams are measured" in warning


def test_the_streamed_latent_is_measured_as_its_decoded_frames(pack):
    """latent + vae (as Save Video takes them, decoded a chunk at a time) gives the numbers of VAE Decode's IMAGE."""
    import comfy.sd
    generator = torch.Generator().manual_seed(0)
    vae = comfy.sd.VAE(sd={k: random_tensor(k, shape, generator, torch.float32) for k, shape in vae_shapes("").items()})
    samples = torch.randn(10, 4, 4, 4, generator=generator)  # 10 frames of 32x32: two chunks of 8
    node = pack.nodes.quality_nodes.VideoQuality()
    with torch.inference_mode():
        streamed = node.measure(latent={"samples": samples}, vae=vae)["result"]
        decoded = node.measure(images=vae.decode(samples))["result"]
    assert streamed[:6] == decoded[:6] and json.loads(streamed[5])["frames"] == 10


@pytest.mark.parametrize("inputs, message", [
    ({"images": ["1", 0]}, "images has 1 frame: the measures compare consecutive frames, so a video needs at "
                           "least 2"),
    ({}, "has no video to measure: connect images"),
    ({"latent": ["2", 0]}, "got a latent but no vae"),
    ({"images": ["1", 0], "latent": ["2", 0]}, "got both images and latent"),
], ids=["one-frame", "nothing", "latent-without-vae", "both"])
def test_bad_input_is_refused_by_name(host, inputs, message):
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0}},
              "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 2}},
              "3": quality(**inputs)}
    with pytest.raises(comfy_host.PromptFailed, match=message):
        host.run(prompt)
