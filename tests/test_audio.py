"""Sound: Load Video's audio output and Save Video's audio input (issue 22). Every source file is written
here by PyAV directly (not by the pack's writer); every saved track is read back by PyAV directly."""
import importlib.util
import json
import math
import struct
import sys
import time
import types
import urllib.request
from collections.abc import Mapping
from unittest import mock

import av
import numpy as np
import pytest
import torch

SIZE, FPS = 32, 8.0
TONE = 440.0


def tone(seconds, rate, channels=2, click_at=None):
    """[channels, samples] float32: a 440 Hz tone at half scale; a click (5 ms at full scale) at `click_at` s."""
    t = np.arange(round(seconds * rate)) / rate
    wave = (0.5 * np.sin(2 * np.pi * TONE * t)).astype(np.float32)
    if click_at is not None:
        wave[:] = 0  # the click alone, on silence, so its time is unambiguous
        start = round(click_at * rate)
        wave[start:start + round(0.005 * rate)] = 1.0
    return np.ascontiguousarray(np.broadcast_to(wave, (channels, wave.size)))


def write_clip(path, frames, fps=FPS, sound=None, rate=48000):
    """A video of `frames` grey frames (mpeg4), with `sound` ([channels, samples]) as AAC when given."""
    layouts = {1: "mono", 2: "stereo"}
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=int(fps))
        video.width, video.height, video.pix_fmt = SIZE, SIZE, "yuv420p"
        if sound is not None:
            audio = container.add_stream("aac", rate=rate)
            audio.codec_context.layout = layouts[sound.shape[0]]
            for start in range(0, sound.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(sound[:, start:start + 1024]), format="fltp",
                                                   layout=layouts[sound.shape[0]])
                frame.sample_rate, frame.pts = rate, start
                container.mux(audio.encode(frame))
            container.mux(audio.encode(None))
        for i in range(frames):
            picture = np.full((SIZE, SIZE, 3), 8 * i % 256, dtype=np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(video.encode(None))
    return path


def track(path):
    """(samples [channels, n] float32, sample rate, codec name, time of the first sample) of a file's sound."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp")
        parts, first = [], None
        for frame in container.decode(stream):
            first = frame.time if first is None else first
            parts += [f.to_ndarray() for f in resampler.resample(frame)]
        return np.concatenate(parts, axis=1), stream.codec_context.sample_rate, stream.codec_context.name, first


def dominant_hz(samples, rate):
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return np.argmax(spectrum) * rate / samples.size


def click_time(samples, rate):
    """When the click starts: the first sample above half its peak (a lossy codec smears its 5 ms)."""
    level = np.abs(samples)
    return np.argmax(level > level.max() / 2) / rate


def saved_path(host, ui):
    entry = ui["images"][0]
    return host.output_dir / entry["subfolder"] / entry["filename"]


def load_and_save(video, format_name, frame_cap=0, skip=0, nth=1, prefix="alcm_audio/v2v"):
    """Load Video → Save Video, the audio and the frame rate linked, as animatelcm_v2v.json wires them."""
    return {"1": {"class_type": "ALCM_LoadVideo", "inputs": {
                "video": video, "frame_cap": frame_cap, "skip_first_frames": skip, "select_every_nth": nth,
                "resize_to_multiple_of_8": True}},
            "2": {"class_type": "ALCM_SaveVideo", "inputs": {
                "images": ["1", 0], "audio": ["1", 4], "frame_rate": ["1", 2], "filename_prefix": prefix,
                "format": format_name, "loop_count": 0, "pingpong": False, "quality": 90}}}


class AudioSource:
    """Another pack's node with an AUDIO output; `make` builds it (class attribute, set by each test)."""
    RETURN_TYPES = ("AUDIO",)
    FUNCTION = "give"
    CATEGORY = "testing"
    make = None

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0})}}

    def give(self, seed):
        return (type(self).make(),)


@pytest.fixture
def audio_node(host):
    import nodes
    nodes.NODE_CLASS_MAPPINGS["ALCM_TestAudioSource"] = AudioSource
    yield AudioSource
    del nodes.NODE_CLASS_MAPPINGS["ALCM_TestAudioSource"]


# --- through the executor ----------------------------------------------------------------------------

@pytest.mark.parametrize("format_name, codec", [("mp4", "aac"), ("webm", "opus")])
def test_a_tone_keeps_its_pitch_and_the_videos_length(host, format_name, codec):
    write_clip(host.input_dir / "tone.mp4", 20, sound=tone(3.0, 48000))  # sound longer than the 2.5 s of video
    result = host.run(load_and_save("tone.mp4", format_name), want=["1"])
    audio = result.output("1", 4)
    assert audio["sample_rate"] == 48000 and audio["waveform"].shape == (1, 2, 120000)  # 20 frames at 8 fps
    path = saved_path(host, result.ui("2"))
    samples, rate, name, first = track(path)
    assert name == codec and samples.shape[0] == 2 and abs(first) < 1e-3
    assert abs(samples.shape[1] / rate - 20 / FPS) <= 1 / FPS  # the video's length, to one frame
    assert abs(dominant_hz(samples[0, :rate * 2], rate) - TONE) <= 2
    assert 0.3 < np.sqrt(np.mean(samples[:, rate // 4:rate * 2] ** 2)) * math.sqrt(2) < 0.6  # half scale, as written
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames in (0, 20)  # webm does not count its frames; mp4 does
    assert host.pack.video.decode.load_video(str(path))[0].shape[0] == 20


@pytest.mark.parametrize("container", ["mkv", "mp4"])
def test_sound_from_a_file_keeps_every_sample(host, container):
    """AAC frames are 1024 samples (23.2 ms at 44.1 kHz) and Matroska times them in whole milliseconds: the
    sound follows on from the first frame, so none is cut or doubled (placed by its own time, each frame
    was, and the tone lost a third of its level to the phase jumps)."""
    write_clip(host.input_dir / f"whole.{container}", 16, sound=tone(2.0, 44100), rate=44100)
    result = host.run(load_and_save(f"whole.{container}", "mp4", prefix="alcm_audio/whole"), want=["1"])
    waveform = result.output("1", 4)["waveform"][0].numpy()
    second = waveform[:, 11025:11025 + 44100]  # 440 whole cycles: the tone is exactly one FFT bin
    level = np.abs(np.fft.rfft(second, axis=1))[:, 440] / (44100 / 2)
    assert level == pytest.approx([0.5, 0.5], abs=0.01)


@pytest.mark.parametrize("skip, cap, nth, click_at", [(12, 8, 1, 0.5), (8, 6, 2, 1.0)])
def test_a_click_lands_where_the_loaded_frames_put_it(host, skip, cap, nth, click_at):
    """Source: 32 frames at 8 fps, a click at 2.0 s. Skipping 12 frames (1.5 s, past the 1 s from which the
    reader seeks instead of decoding from the start) puts it at 0.5 s; skipping 8 and keeping every 2nd
    frame, at 1.0 s of a span as long as the frames kept play (6 frames at 4 fps)."""
    write_clip(host.input_dir / "click.mp4", 32, sound=tone(4.0, 44100, click_at=2.0), rate=44100)
    result = host.run(load_and_save("click.mp4", "mp4", frame_cap=cap, skip=skip, nth=nth), want=["1"])
    audio, span = result.output("1", 4), cap * nth / FPS
    assert result.output("1", 2) == pytest.approx(FPS / nth) and audio["waveform"].shape == (1, 2, round(span * 44100))
    assert click_time(audio["waveform"][0, 0].numpy(), 44100) == pytest.approx(click_at, abs=0.002)
    samples, rate, _, _ = track(saved_path(host, result.ui("2")))
    assert click_time(samples[0], rate) == pytest.approx(click_at, abs=0.003)
    assert abs(samples.shape[1] / rate - span) <= nth / FPS


def test_a_video_without_sound_gives_silence_of_its_length(host):
    write_clip(host.input_dir / "mute.mp4", 12)
    host.pack.video.encode.save_video(torch.rand(6, SIZE, SIZE, 3), str(host.input_dir / "mute.gif"), "gif", 6.0)
    for name, seconds in (("mute.mp4", 1.5), ("mute.gif", 1.0)):
        result = host.run(load_and_save(name, "mp4"), want=["1"])
        audio = result.output("1", 4)
        assert audio["sample_rate"] == 44100 and audio["waveform"].shape == (1, 1, round(seconds * 44100))
        assert not audio["waveform"].any()
        samples, rate, _, _ = track(saved_path(host, result.ui("2")))
        assert samples.shape[0] == 1 and abs(samples.shape[1] / rate - seconds) <= 1 / FPS
        assert np.abs(samples).max() < 1e-3


def core_load_audio_class():
    """ComfyUI's own LoadAudio class from the host's comfy_extras/nodes_audio.py, or None where the host has no
    audio nodes (March 2024). That file imports torchaudio at its top for resampling and saving; its Load Audio
    decodes with PyAV alone. Where torchaudio is missing (no build for these CPU hosts' torch), an empty module
    stands in for that import only, so core's loading code itself runs."""
    spec = importlib.util.find_spec("comfy_extras.nodes_audio")
    if spec is None:
        return None
    placeholder = {} if importlib.util.find_spec("torchaudio") else {"torchaudio": types.ModuleType("torchaudio")}
    with mock.patch.dict(sys.modules, placeholder):
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module.LoadAudio


def test_audio_from_core_load_audio(host, audio_node):
    """Core Load Audio → Save Video: core's node where it is registered, else core's LoadAudio code run by a test
    node (0.3.75 without torchaudio); the March-2024 host has no audio nodes, and the test says so."""
    import nodes
    write_clip(host.input_dir / "music.mp4", 4, sound=tone(2.0, 44100, channels=1), rate=44100)
    core_class = None if "LoadAudio" in nodes.NODE_CLASS_MAPPINGS else core_load_audio_class()
    if "LoadAudio" in nodes.NODE_CLASS_MAPPINGS:
        source = {"class_type": "LoadAudio", "inputs": {"audio": "music.mp4"}}
    elif core_class is not None:
        AudioSource.make = staticmethod(lambda: core_class().load("music.mp4")[0])
        source = {"class_type": "ALCM_TestAudioSource", "inputs": {"seed": 0}}
    else:
        pytest.skip(f"{host.description} has no audio nodes (comfy_extras/nodes_audio.py came later): core Load "
                    "Audio is tested in the 0.3.75 host")
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 12,
                                                          "color": 0}},
              "3": source,
              "2": {"class_type": "ALCM_SaveVideo", "inputs": {
                  "images": ["1", 0], "audio": ["3", 0], "filename_prefix": "alcm_audio/core", "format": "webm",
                  "frame_rate": 8.0, "loop_count": 0, "pingpong": True, "quality": 90}}}
    samples, rate, _, _ = track(saved_path(host, host.run(prompt).ui("2")))
    # pingpong: 22 frames (2.75 s); the 2 s of sound play once, forward, and silence fills the rest
    assert rate == 48000 and samples.shape[0] == 1 and abs(samples.shape[1] / rate - 22 / FPS) <= 1 / FPS
    assert abs(dominant_hz(samples[0, :rate], rate) - TONE) <= 2
    assert np.abs(samples[0, round(2.1 * rate):]).max() < 0.01


class LazyAudio(Mapping):
    """An AUDIO that is a Mapping but no dict, as VideoHelperSuite's Load Video gives (LazyAudioMap)."""

    def __init__(self, audio):
        self.audio = audio

    def __getitem__(self, key):
        return self.audio[key]

    def __iter__(self):
        return iter(self.audio)

    def __len__(self):
        return len(self.audio)


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_mono_and_stereo_at_every_rate_load_and_save(pack, tmp_path, rate, channels):
    """The file's rate and channels come out of Load Video as they are; mp4 keeps them (AAC has these rates),
    webm resamples to Opus's 48 kHz."""
    path = write_clip(tmp_path / "source.mp4", 10, sound=tone(1.25, rate, channels), rate=rate)
    audio, warnings = pack.video.audio.load_audio(str(path), 0.0, 10 / FPS)
    assert warnings == [] and audio["sample_rate"] == rate
    assert audio["waveform"].shape == (1, channels, round(1.25 * rate))
    for format_name, expected_rate in (("mp4", rate), ("webm", 48000)):
        out = tmp_path / f"saved.{format_name}"
        pack.video.encode.save_video(torch.rand(10, SIZE, SIZE, 3), str(out), format_name, FPS, audio=LazyAudio(audio))
        samples, saved_rate, _, _ = track(out)
        assert (saved_rate, samples.shape[0]) == (expected_rate, channels)
        assert abs(samples.shape[1] / saved_rate - 10 / FPS) <= 1 / FPS
        assert abs(dominant_hz(samples[-1, :saved_rate], saved_rate) - TONE) <= 2


# --- more than two channels (issue 38) ----------------------------------------------------------------

H = 1 / math.sqrt(2)
# ITU-R BS.775's stereo downmix (Lo = L + 0.707 C + 0.707 Ls, Ro likewise; LFE left out), a back centre
# split evenly over both sides (0.707 x 0.707): each channel's gain into (left, right)
TO_STEREO = {"FL": (1, 0), "FR": (0, 1), "FC": (H, H), "LFE": (0, 0), "BL": (H, 0), "BR": (0, H), "SL": (H, 0),
             "SR": (0, H), "BC": (0.5, 0.5)}
# the channel order of each count, as WAV files have them (FFmpeg's defaults, quad for 4)
ORDER = {3: "FL FR LFE", 4: "FL FR BL BR", 5: "FL FR FC BL BR", 6: "FL FR FC LFE BL BR", 7: "FL FR FC LFE BC SL SR",
         8: "FL FR FC LFE BL BR SL SR"}
LEVEL = 0.1  # each channel's tone: eight of them mixed stay far from clipping


def channel_hz(channel):
    return 300 + 100 * channel


def channel_tones(channels, seconds, rate):
    """[channels, samples] float32: channel i plays its own tone, channel_hz(i), at LEVEL."""
    t = np.arange(round(seconds * rate)) / rate
    return np.stack([LEVEL * np.sin(2 * np.pi * channel_hz(i) * t) for i in range(channels)]).astype(np.float32)


def channel_gains(samples, rate, channels):
    """[2, channels]: how loud each source channel's tone is in each output channel, over 1 s from 0.25 s
    (a whole number of cycles of every tone, so each is exactly one FFT bin)."""
    second = samples[:, rate // 4:rate // 4 + rate]
    spectrum = np.abs(np.fft.rfft(second, axis=1)) / (rate / 2)
    return spectrum[:, [channel_hz(i) for i in range(channels)]] / LEVEL


def expected_gains(channels):
    return np.array([[TO_STEREO[name][side] for name in ORDER[channels].split()] for side in (0, 1)])


def write_channels(path, layout, channels, codec="pcm_s16le", rate=48000, seconds=2.0, frames=16):
    """A video of `frames` grey frames with `seconds` of channel_tones in `layout` (an FFmpeg layout name, or
    "16c", FFmpeg's default for 16 channels), written by PyAV from packed samples (its planar frames break at
    8 channels: video/audio.py)."""
    sound = channel_tones(channels, seconds, rate)
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=int(FPS))
        video.width, video.height, video.pix_fmt = SIZE, SIZE, "yuv420p"
        audio = container.add_stream(codec, rate=rate)
        audio.codec_context.layout = layout
        for start in range(0, sound.shape[1], 1024):
            block = np.ascontiguousarray(sound[:, start:start + 1024].T).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(block, format="flt", layout=layout)
            frame.sample_rate, frame.pts = rate, start
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
        for i in range(frames):
            container.mux(video.encode(av.VideoFrame.from_ndarray(np.full((SIZE, SIZE, 3), 8 * i, np.uint8),
                                                                  format="rgb24")))
        container.mux(video.encode(None))
    return path


def audio_into_save_video(format_name, frames=16, prefix="alcm_audio/mixed"):
    """Test node's AUDIO → Save Video, under `frames` black frames."""
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": frames,
                                                         "color": 0}},
            "3": {"class_type": "ALCM_TestAudioSource", "inputs": {"seed": 0}},
            "2": {"class_type": "ALCM_SaveVideo", "inputs": {
                "images": ["1", 0], "audio": ["3", 0], "filename_prefix": prefix, "format": format_name,
                "frame_rate": FPS, "loop_count": 0, "pingpong": False, "quality": 90}}}


@pytest.mark.parametrize("channels", range(3, 9))
def test_3_to_8_channels_are_mixed_to_stereo_by_the_standard_downmix(host, audio_node, channels):
    """Centre and surrounds at -3 dB, LFE left out, the same in mp4 and webm; keeping the first two channels
    (or 8 channels failing with IndexError, as before) fails here."""
    AudioSource.make = staticmethod(lambda: {"waveform": torch.from_numpy(channel_tones(channels, 2.0, 48000))[None],
                                             "sample_rate": 48000})
    for format_name in ("mp4", "webm"):
        samples, rate, _, _ = track(saved_path(host, host.run(audio_into_save_video(format_name)).ui("2")))
        assert samples.shape[0] == 2
        np.testing.assert_allclose(channel_gains(samples, rate, channels), expected_gains(channels), atol=0.02,
                                   err_msg=f"{format_name}, {channels} channels ({ORDER[channels]})")


def test_more_than_8_channels_are_refused_by_save_video(host, audio_node):
    import comfy_host
    AudioSource.make = staticmethod(lambda: {"waveform": torch.zeros(1, 16, 48000), "sample_rate": 48000})
    with pytest.raises(comfy_host.PromptFailed, match="'audio' input has 16 channels; at most 8 .* Mix it down first"):
        host.run(audio_into_save_video("mp4"))


# --- sample rates (issue 38) ------------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [np.int64(44100), torch.tensor(44100), np.float64(44100.0), torch.tensor(44100.0),
                                  np.array(44100)], ids=["numpy-int", "tensor-int", "numpy-float", "tensor-float",
                                                         "numpy-0d-array"])
def test_a_numpy_or_tensor_rate_is_a_rate(host, audio_node, rate):
    AudioSource.make = staticmethod(lambda: {"waveform": torch.from_numpy(tone(2.0, 44100))[None], "sample_rate": rate})
    samples, saved_rate, _, _ = track(saved_path(host, host.run(audio_into_save_video("mp4")).ui("2")))
    assert saved_rate == 44100 and abs(dominant_hz(samples[0, :44100], 44100) - TONE) <= 2


@pytest.mark.parametrize("rate, message", [
    (10 ** 12, r"sample rate of 1,000,000,000,000 Hz; sound is 1,000 to 768,000 Hz"),
    (1_000_000, r"sample rate of 1,000,000 Hz"),
    (999, r"sample rate of 999 Hz"),
    (np.float64("nan"), r"sample rate of nan, which is not a whole number"),
    (torch.tensor(44100.5), r"sample rate of 44100.5, which is not a whole number"),
    (float("inf"), r"sample rate of inf, which is not a whole number"),
    ("44100", r"sample rate of '44100' \(str\)"),
    (torch.tensor([44100, 48000]), r"sample rate of tensor\(\[44100, 48000\]\) \(Tensor\)"),
], ids=["1e12", "1MHz", "999", "numpy-nan", "tensor-fraction", "inf", "text", "two-rates"])
def test_a_rate_that_is_no_rate_is_refused_by_name(host, audio_node, rate, message):
    """Before, 10^12 Hz reached the allocator (its message naming neither the input nor the rate)."""
    import comfy_host
    AudioSource.make = staticmethod(lambda: {"waveform": torch.zeros(1, 2, 4800), "sample_rate": rate})
    with pytest.raises(comfy_host.PromptFailed, match=r"Save Video \(AnimateLCM\): the 'audio' input has a " + message):
        host.run(audio_into_save_video("mp4", prefix="alcm_audio/refused_rate"))
    assert not list((host.output_dir / "alcm_audio").glob("refused_rate_*"))


def declare_rate(path, rate):
    """Rewrite a Matroska file's sound header to declare `rate` Hz (its SamplingFrequency element, 0xB5, an
    8-byte float), the samples left as they are."""
    data = path.read_bytes()
    written = b"\xb5\x88" + struct.pack(">d", 48000.0)
    assert data.count(written) == 1
    path.write_bytes(data.replace(written, b"\xb5\x88" + struct.pack(">d", float(rate))))


def test_a_file_declaring_2_ghz_loads_its_frames_and_says_its_sound_is_silence(host):
    """Before, the span's buffer was sized by the header's rate: 32 GB asked of the allocator."""
    declare_rate(write_channels(host.input_dir / "two_ghz.mkv", "stereo", 2), 2_000_000_000)
    result = host.run(load_and_save("two_ghz.mkv", "mp4"), want=["1"])
    assert result.output("1", 1) == 16
    [warning] = result.ui("2")["animatelcm_warnings"]
    assert warning.startswith("'two_ghz.mkv': its sound stream says 2,000,000,000 Hz, 2 channels, which no decoder "
                              "can use") and "the audio output is silence" in warning
    samples, _, _, _ = track(saved_path(host, result.ui("2")))
    assert np.abs(samples).max() < 1e-3


def test_an_unconnected_audio_output_is_never_decoded(host):
    """Load Video → Save Video without the audio link: the file's sound (here a header of 2 GHz, which once
    cost a 32 GB allocation) is not read, and no warning speaks of it."""
    declare_rate(write_channels(host.input_dir / "unheard.mkv", "stereo", 2), 2_000_000_000)
    frames_only = load_and_save("unheard.mkv", "webp", prefix="alcm_audio/unheard")
    del frames_only["2"]["inputs"]["audio"]
    result = host.run(frames_only, want=["1"])
    assert "animatelcm_warnings" not in result.ui("2") and result.output("1", 1) == 16
    sound = result.output("1", 4)
    assert isinstance(sound, host.pack.video.audio.FileSound) and sound.audio is None  # still undecoded
    assert "waveform" in sound and len(sound) == 2 and sound.audio is None  # nor by asking what it holds
    assert sound["sample_rate"] == 44100 and sound.warnings  # read now: silence, and the header named


def test_a_sound_too_long_for_free_ram_is_refused_with_the_numbers(host, monkeypatch):
    write_channels(host.input_dir / "six_channels.mkv", "5.1", 6)
    monkeypatch.setattr(host.pack.video.audio, "available_memory", lambda: 2**20)
    node = host.pack.nodes.video_nodes.LoadVideo()
    frames, count, fps, _, audio = node.load("six_channels.mkv", 0, 0, 1, True)  # the frames need no sound
    assert count == 16
    with pytest.raises(host.pack.video.errors.VideoFileError, match=r"'six_channels.mkv': 2.0 s of its sound \(6 "
                                                                     r"channels at 48,000 Hz\) need 2.2 MiB as AUDIO, "
                                                                     r"but only 1.0 MiB of RAM is available"):
        audio["waveform"]


# --- refusals and warnings ------------------------------------------------------------------------------

def test_bad_audio_is_refused_by_name(host, audio_node):
    import comfy_host
    node = host.pack.nodes.video_nodes.SaveVideo()
    good = torch.zeros(1, 2, 8000)
    for audio, message in (
            ({"waveform": torch.full((1, 2, 8000), float("nan")), "sample_rate": 8000}, "NaN or infinite samples"),
            ({"waveform": good.index_fill(2, torch.tensor([7000]), float("inf")), "sample_rate": 8000},
             r"NaN or infinite samples \(the first at 0.875 s\)"),
            ({"waveform": torch.zeros(1, 0, 8000), "sample_rate": 8000}, "holds no sound channel"),
            ({"waveform": good, "sample_rate": 0}, "sample rate of 0"),
            ({"waveform": good, "sample_rate": float("nan")}, "sample rate of nan"),
            ({"waveform": torch.zeros(2, 8000), "sample_rate": 8000}, r"waveform of \(2, 8000\)"),
            ({"samples": good}, "is not ComfyUI's AUDIO")):
        with pytest.raises(host.pack.video.errors.AudioInputError, match="Save Video \\(AnimateLCM\\): the 'audio' "
                                                                         f"input .*{message}"):
            node.save(torch.rand(2, SIZE, SIZE, 3), "alcm_audio/bad", "mp4", 8.0, 0, False, 90, audio=audio)
    assert not list((host.output_dir / "alcm_audio").glob("bad_*"))
    AudioSource.make = staticmethod(lambda: {"waveform": torch.full((1, 1, 100), float("nan")), "sample_rate": 8000})
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 2, "color": 0}},
              "3": {"class_type": "ALCM_TestAudioSource", "inputs": {"seed": 0}},
              "2": {"class_type": "ALCM_SaveVideo", "inputs": {
                  "images": ["1", 0], "audio": ["3", 0], "filename_prefix": "alcm_audio/bad", "format": "mp4",
                  "frame_rate": 8.0, "loop_count": 0, "pingpong": False, "quality": 90}}}
    with pytest.raises(comfy_host.PromptFailed, match="'audio' input holds NaN or infinite samples") as failure:
        host.run(prompt)
    assert failure.value.node_type == "ALCM_SaveVideo"


@pytest.mark.parametrize("format_name", ["webp", "apng", "gif"])
def test_a_format_without_sound_saves_the_video_and_warns(host, format_name, caplog):
    node = host.pack.nodes.video_nodes.SaveVideo()
    audio = {"waveform": torch.zeros(1, 2, 8000), "sample_rate": 8000}
    with caplog.at_level("WARNING"):
        result = node.save(torch.rand(2, SIZE, SIZE, 3), "alcm_audio/silent", format_name, 8.0, 0, False, 90,
                           audio=audio)
    [warning] = result["ui"]["animatelcm_warnings"]
    assert f"{format_name} cannot hold sound" in warning and "Pick mp4 or webm" in warning
    assert warning in caplog.text
    assert saved_path(host, result["ui"]).is_file()


def write_damaged(path, fps=8, rate=48000):
    """16 frames; the sound's second half is AAC packets of random bytes (the container is sound)."""
    sound = tone(2.0, rate, channels=1)
    generator = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = SIZE, SIZE, "yuv420p"
        audio = container.add_stream("aac", rate=rate)
        audio.codec_context.layout = "mono"
        packets = []
        for start in range(0, sound.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(sound[:, start:start + 1024]), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = rate, start
            packets += audio.encode(frame)
        packets += audio.encode(None)
        for index, packet in enumerate(packets):
            if index > len(packets) // 2:
                garbage = av.Packet(generator.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
                garbage.pts, garbage.dts, garbage.time_base = packet.pts, packet.dts, packet.time_base
                garbage.stream = audio
                packet = garbage
            container.mux(packet)
        for i in range(16):
            container.mux(video.encode(av.VideoFrame.from_ndarray(np.full((SIZE, SIZE, 3), i * 8, np.uint8),
                                                                  format="rgb24")))
        container.mux(video.encode(None))


def test_a_damaged_sound_stream_is_reported_and_the_frames_load(host):
    write_damaged(host.input_dir / "damaged.mkv")
    node = host.pack.nodes.video_nodes.LoadVideo()
    frames, count, fps, _, audio = node.load("damaged.mkv", 0, 0, 1, True)
    assert frames.shape == (16, SIZE, SIZE, 3) and count == 16 and fps == FPS
    waveform = audio["waveform"][0, 0]  # decoded now, as a node reads it
    [warning] = audio.warnings
    assert "'damaged.mkv': its sound could not be decoded after" in warning and "the frames loaded" in warning
    assert waveform.shape == (96000,) and waveform[:40000].abs().max() > 0.3 and not waveform[-4000:].any()
    through_executor = host.run(load_and_save("damaged.mkv", "mp4"), want=["1"])  # runs, and saves the sound it has
    assert through_executor.ui("2")["animatelcm_warnings"] == [warning]  # on the node that used the sound
    assert saved_path(host, through_executor.ui("2")).is_file()


# --- files that took the whole server down (issue 38), replayed on a real ComfyUI server --------------------
# A segmentation fault ends the process it happens in, so these run on the host's own main.py in a
# subprocess (conftest's comfyui_server), which answers after each or has crashed.

SURROUND_FILES = {  # name: (layout, channels, codec)
    "seven_one.mp4": ("7.1", 8, "aac"),  # AAC decodes to planar float
    "seven_one.mov": ("7.1", 8, "pcm_s16le"),
    "eight_unnamed.mkv": ("7.1", 8, "pcm_s16le"),  # Matroska keeps the count, not the layout
    "sixteen.mov": ("hexadecagonal", 16, "pcm_s16le"),
    "sixteen_unnamed.mkv": ("16c", 16, "pcm_f32le"),  # read back as 16 channels of no layout, packed float
}


def server_get(url, path):
    with urllib.request.urlopen(url + path, timeout=30) as response:
        return json.loads(response.read())


def run_on_server(server, prompt, what, timeout=180):
    """Queue `prompt` on the server as the frontend does and wait for its history entry; fails, naming `what`
    ran and with the end of the server's log, if the server stops answering."""
    url, base = server
    request = urllib.request.Request(url + "/prompt", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"prompt": prompt, "client_id": "alcm-audio"}).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        prompt_id = json.loads(response.read())["prompt_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            entry = server_get(url, f"/history/{prompt_id}").get(prompt_id)
        except OSError as error:
            log = (base / "server.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"the server stopped answering while it ran {what} ({error}); its log ends:\n{log}")
        if entry:
            return entry
        time.sleep(0.2)
    pytest.fail(f"{what} did not finish within {timeout} s")


def server_answers(server):
    """The server answers, its queue empty (a crash would have ended it; nothing is left stuck)."""
    url, _ = server
    queue = server_get(url, "/queue")
    return bool(server_get(url, "/system_stats")) and queue["queue_running"] == queue["queue_pending"] == []


def test_files_with_8_or_more_sound_channels_never_take_the_server_down(comfyui_server):
    """Each file twice: Load Video with its audio output unconnected (the sound is not even decoded), then into
    Save Video's audio (8 channels mixed to stereo by the standard downmix; 16 mixed to stereo by Load Video
    from the file's layout, with a warning). Before, each one ended the server with a segmentation fault."""
    _, base = comfyui_server
    (base / "input").mkdir(exist_ok=True)
    for name, (layout, channels, codec) in SURROUND_FILES.items():
        write_channels(base / "input" / name, layout, channels, codec)
        frames_only = load_and_save(name, "webp", prefix="alcm_audio/frames_only")
        del frames_only["2"]["inputs"]["audio"]
        entry = run_on_server(comfyui_server, frames_only, f"Load Video of {name}, its audio unconnected")
        assert entry["status"]["status_str"] == "success", (name, entry["status"])
        assert "animatelcm_warnings" not in entry["outputs"]["2"]  # nothing read the sound, nothing to say
        assert server_answers(comfyui_server), name

        entry = run_on_server(comfyui_server, load_and_save(name, "mp4", prefix="alcm_audio/with_sound"),
                              f"Load Video of {name} into Save Video's audio")
        assert entry["status"]["status_str"] == "success", (name, entry["status"])
        assert server_answers(comfyui_server), name
        ui = entry["outputs"]["2"]
        samples, rate, _, _ = track(base / "output" / ui["images"][0]["subfolder"] / ui["images"][0]["filename"])
        assert samples.shape[0] == 2, name
        gains = channel_gains(samples, rate, channels)
        if channels == 8:
            assert "animatelcm_warnings" not in ui
            np.testing.assert_allclose(gains, expected_gains(8), atol=0.02, err_msg=name)
        else:
            [warning] = ui["animatelcm_warnings"]
            named = " (hexadecagonal)" if layout == "hexadecagonal" else ""
            assert warning == (f"'{name}': its sound has 16 channels{named}; the audio output is that sound mixed "
                               "down to stereo by FFmpeg (Save Video takes at most 8 channels).")
            # the front pair keeps its sides, whatever FFmpeg makes of the other fourteen
            assert gains[0, 0] > 0.3 and gains[1, 0] < 0.02 and gains[1, 1] > 0.3 and gains[0, 1] < 0.02, name
