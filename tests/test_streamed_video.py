"""Streamed decode and save, streamed load and encode: the same frames and latents, a chunk in RAM at a time."""
import pytest
import torch

from fixture_sd15 import random_tensor, vae_shapes


@pytest.fixture(scope="module")
def vae(host):
    """ComfyUI's VAE object around a random SD1.5-shaped VAE (the real architecture, per-frame)."""
    import comfy.sd
    generator = torch.Generator().manual_seed(0)
    state_dict = {k: random_tensor(k, shape, generator, torch.float32) for k, shape in vae_shapes(prefix="").items()}
    return comfy.sd.VAE(sd=state_dict)


def latents(frames, seed=0):
    """32×32 frames' latents: the VAE's whole architecture at a quarter of 64×64's decoding time."""
    return torch.randn(frames, 4, 4, 4, generator=torch.Generator().manual_seed(seed))


def saved_frames(pack, host, result):
    entry = result["ui"]["images"][0]
    path = host.output_dir / entry["subfolder"] / entry["filename"]
    return pack.video.decode.load_video(str(path))[0]


def test_decoded_frames_hold_one_chunk_and_match_a_full_decode(pack, vae):
    samples = latents(20)
    with torch.inference_mode():
        full = vae.decode(samples)
        view = pack.video.latent_frames.DecodedFrames(vae, samples, chunk_frames=8)
        assert tuple(view.shape) == tuple(full.shape) == (20, 32, 32, 3)
        held = []
        for index in list(range(20)) + [-1, 3]:
            torch.testing.assert_close(view[index, :, :, :3], full[index, :, :, :3], atol=1e-5, rtol=0)
            held.append(view._frames.shape[0])
    assert max(held) == 8  # never more than one chunk of frames decoded at once


@pytest.mark.parametrize("pingpong", [False, True])
def test_streamed_save_writes_the_frames_of_decode_then_save(pack, host, vae, pingpong):
    node = pack.nodes.video_nodes.SaveVideo()
    samples = latents(19, seed=1)
    options = {"format": "apng", "frame_rate": 8.0, "loop_count": 0, "pingpong": pingpong, "quality": 90}
    with torch.inference_mode():
        decoded = vae.decode(samples)
        whole = node.save(decoded, "long/whole", **options)
        streamed = node.save(filename_prefix="long/streamed", latent={"samples": samples}, vae=vae, **options)
    expected, got = saved_frames(pack, host, whole), saved_frames(pack, host, streamed)
    assert got.shape == expected.shape == ((36 if pingpong else 19), 32, 32, 3)
    assert (got - expected).abs().max() <= 1 / 255 + 1e-6  # apng is lossless: at most one 8-bit step of float noise
    assert (got != expected).float().mean() < 0.001
    assert streamed["ui"]["animated"] == (True,)  # the node previews its file as with images


def test_streamed_save_carries_the_sound(pack, host, vae):
    """LATENT + VAE with audio: the frames decoded a chunk at a time, the sound written beside them (issue 22)."""
    import av
    node = pack.nodes.video_nodes.SaveVideo()
    rate = 16000
    sound = torch.sin(torch.arange(3 * rate) / rate * 2 * torch.pi * 440)
    audio = {"waveform": sound.expand(1, 1, -1), "sample_rate": rate}  # 3 s under a 19-frame (2.375 s) video
    with torch.inference_mode():
        result = node.save(filename_prefix="long/sound", format="mp4", frame_rate=8.0, loop_count=0, pingpong=False,
                           quality=90, latent={"samples": latents(19, seed=4)}, vae=vae, audio=audio)
    entry = result["ui"]["images"][0]
    with av.open(str(host.output_dir / entry["subfolder"] / entry["filename"])) as container:
        samples = sum(frame.samples for frame in container.decode(container.streams.audio[0]))
    assert abs(samples / rate - 19 / 8) <= 1 / 8  # cut to the video's length, to one frame
    assert saved_frames(pack, host, result).shape == (19, 32, 32, 3)


def test_save_video_says_what_to_connect(pack, vae):
    node = pack.nodes.video_nodes.SaveVideo()
    options = {"format": "webp", "frame_rate": 8.0, "loop_count": 0, "pingpong": False, "quality": 90}
    with pytest.raises(ValueError, match="nothing to save: connect images"):
        node.save(filename_prefix="x", **options)
    with pytest.raises(ValueError, match="latent but no vae"):
        node.save(filename_prefix="x", latent={"samples": latents(2)}, **options)
    with pytest.raises(ValueError, match="both images and latent"):
        node.save(torch.zeros(2, 64, 64, 3), "x", latent={"samples": latents(2)}, vae=vae,
                  **options)


def test_streamed_load_gives_the_latents_of_load_then_encode(pack, host, vae):
    import nodes
    generator = torch.Generator().manual_seed(2)
    frames = torch.rand(21, 64, 64, 3, generator=generator)
    pack.video.encode.save_video(frames, str(host.input_dir / "long_input.png"), "apng", 8.0)
    load = pack.nodes.video_nodes.LoadVideo()
    options = {"frame_cap": 0, "skip_first_frames": 1, "select_every_nth": 1, "resize_to_multiple_of_8": True}
    with torch.inference_mode():
        images, count, fps, nothing, _ = load.load("long_input.png", **options)
        # ComfyUI's VAE encode samples the posterior from torch's global generator (older versions): the same
        # seed before each gives the same draws, chunk after chunk, as one draw for the whole batch
        torch.manual_seed(3)
        expected = nodes.VAEEncode().encode(vae, images)[0]["samples"]
        torch.manual_seed(3)
        first, streamed_count, streamed_fps, latent, _ = load.load("long_input.png", vae=vae, **options)
    assert nothing is None and count == streamed_count == 20 and fps == streamed_fps
    assert latent["samples"].shape == expected.shape == (20, 4, 8, 8)
    torch.testing.assert_close(latent["samples"], expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(first, images[:1])


def test_streamed_load_gives_every_frame_too_when_a_node_takes_them(pack, host, vae):
    """A ControlNet graph takes Load Video's frames (for the hints) and its latents: every frame comes out, and the
    VAE still encodes a chunk at a time, giving the latents of Load Video then VAE Encode."""
    import nodes
    generator = torch.Generator().manual_seed(4)
    pack.video.encode.save_video(torch.rand(11, 32, 32, 3, generator=generator), str(host.input_dir / "hint_input.png"),
                                 "apng", 8.0)
    options = {"frame_cap": 0, "skip_first_frames": 0, "select_every_nth": 1, "resize_to_multiple_of_8": True}
    encoded = []

    class CountingVAE:  # the node's vae, counting the frames each encode is given
        def encode(self, pixels):
            encoded.append(pixels.shape[0])
            return vae.encode(pixels)
    takes_frames = {"1": {"class_type": "ALCM_LoadVideo", "inputs": {}},
                    "2": {"class_type": "ALCM_CannyEdges", "inputs": {"images": ["1", 0]}}}
    load = pack.nodes.video_nodes.LoadVideo()
    with torch.inference_mode():
        images = load.load("hint_input.png", **options)[0]
        torch.manual_seed(5)
        expected = nodes.VAEEncode().encode(vae, images)[0]["samples"]
        torch.manual_seed(5)
        frames, count, _, latent, _ = load.load("hint_input.png", vae=CountingVAE(), prompt=takes_frames, unique_id="1",
                                                **options)
        first = load.load("hint_input.png", vae=vae, prompt={"1": takes_frames["1"]}, unique_id="1", **options)[0]
    assert torch.equal(frames, images) and count == 11
    assert encoded == [8, 3]  # a chunk at a time, never the whole video
    torch.testing.assert_close(latent["samples"], expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(first, images[:1])  # frames not taken: the first one only, as before
