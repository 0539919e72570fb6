"""The ControlNet video-to-video graph's own parts: the SD1.5 ControlNet stand-in's layout and Canny Edges (Load
Video's frames beside streamed latents: test_streamed_video.py)."""
import cv2
import numpy as np
import pytest
import torch


def test_the_controlnet_stand_in_has_comfyuis_sd15_controlnet_layout(pack):
    """Every key and shape of the ControlNet ComfyUI builds when it loads the stand-in (its own detection of the
    file's config, its own cldm.ControlNet), nothing missing and nothing left over."""
    import comfy.cldm.cldm
    import comfy.model_detection
    import comfy.ops
    shapes = pack.stand_ins.random_weights.controlnet_shapes()
    on_meta = {k: torch.empty(shape, device="meta", dtype=torch.float16) for k, shape in shapes.items()}
    config = dict(comfy.model_detection.model_config_from_unet(on_meta, "", True).unet_config)
    assert (config["model_channels"], config["context_dim"]) == (320, 768)  # detected as SD1.5
    config.pop("out_channels", None)
    config["hint_channels"] = shapes["input_hint_block.0.weight"][1]
    with torch.device("meta"):
        built = comfy.cldm.cldm.ControlNet(**config, operations=getattr(comfy.ops, "disable_weight_init", comfy.ops))
    assert {k: tuple(v.shape) for k, v in built.state_dict().items()} == {k: tuple(v) for k, v in shapes.items()}
    assert sum(torch.Size(s).numel() for s in shapes.values()) == pytest.approx(361e6, rel=0.01)  # 723 MB in fp16


def test_canny_edges_are_opencvs_on_the_8_bit_frame(host):
    import nodes
    generator = torch.Generator().manual_seed(0)
    frames = torch.rand(3, 40, 48, 3, generator=generator)
    frames[:, 10:30, 12:36] = 0.9  # a bright box: strong edges
    [edges] = nodes.NODE_CLASS_MAPPINGS["ALCM_CannyEdges"]().detect(frames, 100, 200)
    assert edges.shape == (3, 40, 48, 3) and edges.dtype == torch.float32
    for index in range(3):
        picture = (frames[index].numpy() * 255).round().astype(np.uint8)
        expected = cv2.Canny(picture, 100, 200) / 255
        for channel in range(3):
            assert np.array_equal(edges[index, :, :, channel].numpy(), expected)
    assert edges.untyped_storage().nbytes() == 3 * 40 * 48 * 4  # one plane stored for the three channels


def test_canny_edges_refuse_crossed_thresholds(host):
    import nodes
    with pytest.raises(ValueError, match=r"high_threshold \(50\) is below low_threshold \(100\)"):
        nodes.NODE_CLASS_MAPPINGS["ALCM_CannyEdges"]().detect(torch.rand(1, 8, 8, 3), 100, 50)
