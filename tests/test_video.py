"""Save Video / Load Video: every format round trip, the workflow read back the way the frontend reads
it, pingpong and loops, refused paths and files, and the nodes through ComfyUI's executor."""
import json
import math
import struct

import pytest
import torch
from PIL import Image

FRAMES, SIZE, FPS = 8, 64, 8
# Error bounds on the smooth pattern, in 1/255: per-pixel max, mean, and max of 4x4 block means
# (GIF dithers: single pixels move far, what the eye sees does not). Measured: webp 12/1.6/5.6,
# webm 17/2.8/8.6, mp4 20/3.1/10.2, gif 94/5.7/14.9, apng 0.
BOUNDS = {"webp": (24, 4, 12), "webm": (32, 6, 16), "mp4": (32, 6, 16), "gif": (255, 8, 24), "apng": (0, 0, 0)}
METADATA = {"prompt": {"1": {"class_type": "X", "inputs": {"text": "a {red|blue} fox } in snow, naïve"}}},
            "workflow": {"nodes": [{"id": 1, "widgets_values": ["{"]}], "links": [], "version": 0.4}}


@pytest.fixture(scope="module")
def video(pack):
    return pack.video


def smooth(n=FRAMES, size=SIZE):
    """Gradients drifting sideways: lossy codecs keep smooth content close, and a wrong frame order,
    channel order or size shows up as a large error."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    t = torch.arange(n).view(n, 1, 1) / n
    return torch.stack([0.5 + 0.35 * torch.sin(2 * math.pi * (x + t)), 0.5 + 0.35 * torch.cos(2 * math.pi * (y - t)),
                        0.5 + 0.25 * torch.sin(math.pi * (x + y)).expand(n, -1, -1)], dim=-1)


def save(video, tmp_path, format_name, images=None, **options):
    path = tmp_path / f"clip{video.encode.FORMATS[format_name].extension}"
    saved = video.encode.save_video(smooth() if images is None else images, str(path), format_name, FPS, **options)
    return path, saved


# --- the frontend's readers, ported from comfyui-frontend-package 1.32.9 (the version ComfyUI 0.3.75 pins;
# src/scripts/pnginfo.ts, metadata/ebml.ts, metadata/isobmff.ts). They are the acceptance test that the
# files carry the workflow where the frontend looks; tests/test_browser.py drops the files on a real one. ---

def frontend_webp(data):
    offset = 12
    while offset < len(data):  # RIFF chunks, odd sizes padded
        length = struct.unpack("<I", data[offset + 4:offset + 8])[0]
        if data[offset:offset + 4] == b"EXIF":
            exif = data[offset + 8:offset + 8 + length]
            exif = exif[6:] if exif[:6] == b"Exif\0\0" else exif
            order = "<" if exif[:2] == b"II" else ">"
            ifd, texts = struct.unpack(order + "I", exif[4:8])[0], {}
            for i in range(struct.unpack(order + "H", exif[ifd:ifd + 2])[0]):
                _, kind, count, at = struct.unpack(order + "HHII", exif[ifd + 2 + 12 * i:ifd + 14 + 12 * i])
                if kind == 2:  # ASCII "key:value"
                    key, _, value = exif[at:at + count - 1].decode().partition(":")
                    texts[key] = json.loads(value)
            return texts
        offset += 8 + length + length % 2
    return {}


def frontend_png(data):
    offset, texts = 8, {}
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if kind == b"tEXt":
            keyword, text = data[offset + 8:offset + 8 + length].split(b"\0", 1)
            texts[keyword.decode()] = json.loads(text)
        offset += 12 + length
    return texts


def _box(data, start, end, kind):
    pos = start
    while pos < end - 8:
        size = struct.unpack(">I", data[pos:pos + 4])[0]
        if size < 8:
            pos += 1
            continue
        if data[pos + 4:pos + 8] == kind:
            return pos + 8, pos + size
        if pos + size > end:
            return None
        pos += size
    return None


def frontend_mp4(data):
    udta = _box(data, 0, len(data), b"udta")
    moov = _box(data, 0, len(data), b"moov")
    udta = udta or (moov and _box(data, *moov, b"udta"))
    meta = udta and _box(data, *udta, b"meta")
    keys, ilst = (_box(data, meta[0] + 4, meta[1], kind) for kind in (b"keys", b"ilst"))
    names, pos, out = {}, keys[0] + 8, {}
    for i in range(1, struct.unpack(">I", data[keys[0] + 4:keys[0] + 8])[0] + 1):
        size = struct.unpack(">I", data[pos:pos + 4])[0]
        names[i], pos = data[pos + 8:pos + size].decode(), pos + size
    pos = ilst[0]
    while pos < ilst[1] - 8:
        size, index = struct.unpack(">II", data[pos:pos + 8])
        value = _box(data, pos + 8, pos + size, b"data")
        text = data[value[0] + 8:value[1]].decode()
        if names[index].lower() in ("prompt", "workflow"):  # other keys (FFmpeg's "encoder") are not JSON
            out[names[index].lower()] = json.loads(text[text.index("{"):])
        pos += size
    return out


def _vint(data, pos):
    length = next(i for i in range(1, 9) if data[pos] & (0x80 >> (i - 1)))
    return int.from_bytes(data[pos:pos + length], "big") & ((1 << (7 * length)) - 1), length


def frontend_webm(data):
    """Scans the first 2 MiB for SimpleTags; a PROMPT/WORKFLOW value ends at the brace that balances
    the first, counting braces inside strings too (1.32.9; later versions skip strings)."""
    data, out, pos = data[:2 << 20], {}, 0

    def find(start, end, element_id):
        p = data.index(element_id, start, end)
        size, length = _vint(data, p + 2)
        return data[p + 2 + length:p + 2 + length + size].split(b"\0")[0].decode()
    while pos < len(data) - 2:
        if data[pos:pos + 2] != b"\x67\xc8":
            pos += 1
            continue
        size, length = _vint(data, pos + 2)
        end = pos + 2 + length + size
        name, text = find(pos, end, b"\x45\xa3").strip(), find(pos, end, b"\x44\x87")
        if name in ("PROMPT", "WORKFLOW"):
            text, depth, i = text[text.index("{"):], 1, 1
            while depth and i < len(text):
                depth, i = depth + {"{": 1, "}": -1}.get(text[i], 0), i + 1
            out[name.lower()] = json.loads(text[:i])
        pos = end
    return out


FRONTEND = {"webp": frontend_webp, "apng": frontend_png, "mp4": frontend_mp4, "webm": frontend_webm}


# --- the engine ------------------------------------------------------------------------------------

@pytest.mark.parametrize("format_name", list(BOUNDS))
def test_round_trip(video, tmp_path, format_name):
    path, saved = save(video, tmp_path, format_name)
    assert saved.frame_count == FRAMES and not list(tmp_path.glob(".*"))  # no temporary file left
    frames, fps = video.decode.load_video(str(path))
    assert frames.shape == (FRAMES, SIZE, SIZE, 3) and frames.dtype == torch.float32 and fps == pytest.approx(FPS)
    error = frames - (smooth() * 255).round() / 255
    blocks = torch.nn.functional.avg_pool2d(error.permute(0, 3, 1, 2), 4)
    max_error, mean_error, block_error = BOUNDS[format_name]
    assert error.abs().max() * 255 <= max_error + 1e-3
    assert error.abs().mean() * 255 <= mean_error + 1e-3
    assert blocks.abs().max() * 255 <= block_error + 1e-3
    if format_name in ("webp", "gif", "apng"):  # an independent reader agrees on the container
        with Image.open(path) as image:
            assert (image.n_frames, image.size) == (FRAMES, (SIZE, SIZE))


@pytest.mark.parametrize("format_name", list(BOUNDS))
def test_workflow_reads_back_as_the_frontend_reads_it(video, tmp_path, format_name):
    path, saved = save(video, tmp_path, format_name, metadata=METADATA)
    if format_name == "gif":  # the frontend reads nothing from a GIF: the workflow is the .json beside it
        assert json.loads(path.with_suffix(".json").read_text()) == METADATA["workflow"]
        return
    assert saved.sidecar is None and not path.with_suffix(".json").exists()
    assert FRONTEND[format_name](path.read_bytes()) == METADATA


@pytest.mark.parametrize("format_name", ["mp4", "webm"])
def test_workflow_reads_back_from_a_video_with_sound(video, tmp_path, format_name):
    """A sound track beside the frames leaves the prompt and workflow where the frontend reads them (issue 22)."""
    import av
    sound = {"waveform": torch.sin(torch.arange(16000) / 16000 * 2 * math.pi * 440).expand(1, 2, -1),
             "sample_rate": 16000}
    path, _ = save(video, tmp_path, format_name, metadata=METADATA, audio=sound)
    data = path.read_bytes()
    assert FRONTEND[format_name](data) == METADATA
    if format_name == "webm":  # the tags still come before the first Cluster
        assert 0 < data.index(b"\x67\xc8") < data.index(b"\x1f\x43\xb6\x75")
    with av.open(str(path)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]


def test_metadata_sits_where_the_frontend_reads_first(video, tmp_path):
    """WebM: the tags before the first Cluster (the frontend reads 2 MiB); MP4: moov, which holds them,
    before the media data (newer frontends read 64 MiB)."""
    webm, _ = save(video, tmp_path, "webm", metadata=METADATA)
    data = webm.read_bytes()
    assert 0 < data.index(b"\x67\xc8") < data.index(b"\x1f\x43\xb6\x75")  # SimpleTag, Cluster
    mp4, _ = save(video, tmp_path, "mp4", metadata=METADATA)
    data = mp4.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")


def test_pingpong_order_and_loop_counts(video, tmp_path):
    class Recorded:  # the saver must take one frame at a time, in play order
        def __init__(self, images):
            self.images, self.shape, self.taken = images, images.shape, []

        def __getitem__(self, key):
            self.taken.append(key[0])
            return self.images[key]
    images = Recorded(smooth())
    path, saved = save(video, tmp_path, "apng", images=images, pingpong=True, loop_count=3)
    order = [0, 1, 2, 3, 4, 5, 6, 7, 6, 5, 4, 3, 2, 1]
    assert saved.frame_count == 2 * FRAMES - 2 and images.taken == order
    frames, _ = video.decode.load_video(str(path))
    assert torch.equal(frames, (smooth()[order] * 255).round() / 255)
    with Image.open(path) as image:
        assert image.info["loop"] == 3
    for loop_count, webp_loop, gif_loop in ((0, 0, 0), (3, 3, 2), (1, 1, None)):
        for format_name, expected in (("webp", webp_loop), ("gif", gif_loop)):
            path, _ = save(video, tmp_path, format_name, loop_count=loop_count)
            with Image.open(path) as image:  # GIF stores repeats after the first play; absent: play once
                assert image.info.get("loop") == expected and image.n_frames == FRAMES


@pytest.mark.parametrize("format_name", ["webm", "gif", "mp4"])
def test_a_cancelled_save_leaves_no_file(video, tmp_path, format_name):
    class Cancelled(Exception):
        pass

    def cancel_at_frame_3(done, total):
        if done == 3:
            raise Cancelled
    with pytest.raises(Cancelled):
        save(video, tmp_path, format_name, metadata=METADATA, progress=cancel_at_frame_3)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extension, encoder, rate", [(".mov", "libx264", (24000, 1001)), (".mkv", "libvpx-vp9", (25, 1)),
                                                      (".avi", "mpeg4", (12, 1))])
def test_containers_other_programs_write_load_with_their_exact_rate(video, tmp_path, extension, encoder, rate):
    """Written by FFmpeg directly (not our writer): 7 frames, NTSC's 23.976 fps kept exact."""
    import av
    from fractions import Fraction
    path, images = tmp_path / f"other{extension}", smooth(7)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(encoder, rate=Fraction(*rate))
        stream.width, stream.height, stream.pix_fmt = SIZE, SIZE, "yuv420p"
        for frame in images:
            container.mux(stream.encode(av.VideoFrame.from_ndarray((frame * 255).byte().numpy(), format="rgb24")))
        container.mux(stream.encode(None))
    frames, fps = video.decode.load_video(str(path))
    assert frames.shape == (7, SIZE, SIZE, 3) and fps == pytest.approx(rate[0] / rate[1], rel=1e-9)
    assert (frames - images).abs().mean() * 255 < 6


def test_memory_refusal_gives_the_numbers(video, tmp_path, monkeypatch):
    path, _ = save(video, tmp_path, "mp4")
    monkeypatch.setattr(video.decode, "available_memory", lambda: 100_000)
    with pytest.raises(video.decode.VideoFileError, match=r"'clip.mp4': 8 frames of 64x64 need 0.4 MiB .*"
                                                          r"8x64x64x3x4 bytes.* only 0.1 MiB"):
        video.decode.load_video(str(path))
    assert video.decode.load_video(str(path), frame_cap=2)[0].shape[0] == 2  # 98 KiB fits


# --- the nodes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["../x", "/abs", "a/../../b", "", "a/.."])
def test_prefixes_outside_the_output_folder_are_refused(pack, host, video, prefix):
    around = host.output_dir.parent  # where "../x" and "a/../../b" would land
    before = set(around.iterdir())
    with pytest.raises(video.errors.OutputPathError, match="filename_prefix .*(empty|absolute|outside)"):
        pack.nodes.video_nodes.SaveVideo().save(smooth(2), prefix, "webp", 8.0, 0, False, 90)
    assert set(around.iterdir()) == before and not any(around.parent.glob("b_*")) and not any(around.glob("x_*"))


def load_node(pack, name, **options):
    values = {"frame_cap": 0, "skip_first_frames": 0, "select_every_nth": 1, "resize_to_multiple_of_8": True}
    return pack.nodes.video_nodes.LoadVideo().load(name, **{**values, **options})


def test_bad_video_files_are_named_in_the_error(pack, host):
    (host.input_dir / "empty.mp4").write_bytes(b"")
    (host.input_dir / "noise.mp4").write_bytes(bytes(range(256)) * 40)
    (host.input_dir / "noise.webp").write_bytes(b"RIFF" + bytes(100))
    pack.video.encode.save_video(smooth(), str(host.input_dir / "eight.webm"), "webm", FPS)
    for name, options, message in (
            ("empty.mp4", {}, "'empty.mp4' is empty"),
            ("noise.mp4", {}, "'noise.mp4' is not a video FFmpeg can read"),
            ("noise.webp", {}, "'noise.webp' is not an animation Pillow can read"),
            ("eight.webm", {"frame_cap": 9}, "'eight.webm' has 8 frames .* fewer than frame_cap=9. Set frame_cap to 8"),
            ("eight.webm", {"frame_cap": 4, "select_every_nth": 3},
             r"'eight.webm' has 8 frames \(3 after skip_first_frames=0 and select_every_nth=3\)"),
            ("eight.webm", {"skip_first_frames": 8},
             "'eight.webm' has 8 frames, and skip_first_frames=8 skips them all")):
        with pytest.raises(pack.video.errors.VideoFileError, match=message):
            load_node(pack, name, **options)
    frames, count, fps, latent, audio = load_node(pack, "eight.webm", skip_first_frames=1, select_every_nth=2)
    assert frames.shape == (4, SIZE, SIZE, 3) and count == 4 and fps == pytest.approx(FPS / 2) and latent is None
    assert audio["waveform"].shape == (1, 1, 44100) and not audio["waveform"].any()  # no sound: 1 s of silence
    node = pack.nodes.video_nodes.LoadVideo
    assert "is not in the input folder" in node.VALIDATE_INPUTS("missing.mp4")
    assert "points outside" in node.VALIDATE_INPUTS("../eight.webm")
    assert node.VALIDATE_INPUTS("eight.webm") is True and "eight.webm" in node.INPUT_TYPES()["required"]["video"][0]


def test_resize_to_multiple_of_8(pack, host):
    pack.video.encode.save_video(smooth(3, 60), str(host.input_dir / "sixty.apng"), "apng", FPS)
    assert load_node(pack, "sixty.apng")[0].shape == (3, 64, 64, 3)  # 60 is nearer 64 than 56
    assert torch.equal(load_node(pack, "sixty.apng", resize_to_multiple_of_8=False)[0],
                       (smooth(3, 60) * 255).round() / 255)


def save_prompt(format_name, prefix="alcm_exec/clip", frames=4, frame_rate=8.0):
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": frames,
                                                          "color": 0x3366CC}},
            "2": {"class_type": "ALCM_SaveVideo", "inputs": {
                "images": ["1", 0], "filename_prefix": prefix, "format": format_name, "frame_rate": frame_rate,
                "loop_count": 0, "pingpong": False, "quality": 90}}}


@pytest.mark.parametrize("format_name", ["webp", "mp4", "webm", "gif"])
def test_save_node_runs_in_the_executor_and_previews_its_file(host, format_name):
    import av
    prompt = save_prompt(format_name)
    ui = host.run(prompt).ui("2")
    saved = sorted((host.output_dir / "alcm_exec").glob(f"clip_*_.{format_name}"))[-1]
    # the node shows the saved file itself, as core SaveVideo does: "animated" makes the frontend play
    # .mp4/.webm in a <video>; a GIF goes without it, into an <img> (a <video> cannot play it)
    assert list(ui["animated"]) == [format_name != "gif"]
    assert ui["images"] == [{"filename": saved.name, "subfolder": "alcm_exec", "type": "output"}]
    if format_name == "gif":
        assert json.loads(saved.with_suffix(".json").read_text()) == prompt  # no workflow in the UI-less run
        return
    assert FRONTEND[format_name](saved.read_bytes()) == {"prompt": prompt}
    if format_name != "webp":  # H.264 and VP9 in yuv420p, what browsers play
        with av.open(str(saved)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == {"mp4": "h264", "webm": "vp9"}[format_name]
            assert stream.codec_context.format.name == "yuv420p"
    frames, _ = host.pack.video.decode.load_video(str(saved))
    assert frames.shape == (4, SIZE, SIZE, 3)
    assert (frames.mean(dim=(0, 1, 2)) * 255 - torch.tensor([0x33, 0x66, 0xCC])).abs().max() < 3


def load_prompt(video_input):
    return {"1": {"class_type": "ALCM_LoadVideo", "inputs": {
        "video": video_input, "frame_cap": 0, "skip_first_frames": 0, "select_every_nth": 1,
        "resize_to_multiple_of_8": True}}}


@pytest.mark.parametrize("format_name", list(BOUNDS))
def test_save_then_load_through_load_videos_own_list(host, video, format_name):
    """What Save Video writes, moved to the input folder, is in Load Video's list and loads back."""
    import shutil
    host.run(save_prompt(format_name, f"alcm_trip/{format_name}"))
    saved = sorted((host.output_dir / "alcm_trip").glob(f"{format_name}_*{video.encode.FORMATS[format_name].extension}"))[-1]
    shutil.copy(saved, host.input_dir / f"trip_{saved.name}")
    listed = host.pack.nodes.video_nodes.LoadVideo.INPUT_TYPES()["required"]["video"][0]
    assert f"trip_{saved.name}" in listed
    result = host.run(load_prompt(f"trip_{saved.name}"), want=["1"])
    frames, count, fps = (result.output("1", i) for i in range(3))
    assert count == 4 and frames.shape == (4, SIZE, SIZE, 3) and fps == pytest.approx(FPS)
    assert (frames - torch.tensor([0x33, 0x66, 0xCC]) / 255).abs().mean() * 255 < 3


def test_load_videos_latent_without_a_vae_says_what_to_connect(host):
    """The latent output linked (here into a sampler's latent_image) without a vae: Load Video names the cause,
    instead of the sampler failing on a missing latent."""
    import comfy_host
    host.run(save_prompt("webp", "alcm_nolatent/webp"))
    saved = sorted((host.output_dir / "alcm_nolatent").glob("webp_*.webp"))[-1]
    (host.input_dir / "no_vae.webp").write_bytes(saved.read_bytes())
    prompt = load_prompt("no_vae.webp")
    prompt["2"] = {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["1", 3], "upscale_method": "nearest-exact",
                                                              "scale_by": 1.0}}
    with pytest.raises(comfy_host.PromptFailed, match="'latent' output is connected but no vae"):
        host.run(prompt, want=["2"])
    assert host.run(load_prompt("no_vae.webp"), want=["1"]).output("1", 1) == 4  # unlinked: frames only, as before


def test_still_pngs_stay_out_of_load_videos_list(host):
    Image.new("RGB", (8, 8)).save(host.input_dir / "still.png")
    assert "still.png" not in host.pack.nodes.video_nodes.LoadVideo.INPUT_TYPES()["required"]["video"][0]


# --- refusals through the executor (issue 15) -------------------------------------------------------

def test_a_prefix_as_long_as_core_savers_take_works_in_every_format(host):
    """A 240-character file name part: core SaveImage takes it (name_00001_.png is 252 characters)."""
    prefix = "alcm_long/" + "v" * 240
    for format_name in BOUNDS:
        host.run(save_prompt(format_name, prefix=prefix, frames=2))
    names = sorted(p.name for p in (host.output_dir / "alcm_long").iterdir())
    assert sorted(n.rsplit(".", 1)[1] for n in names) == ["gif", "json", "mp4", "png", "webm", "webp"]
    assert all(len(n) <= 255 for n in names)


def test_a_nul_byte_in_the_prefix_is_refused_by_name(host):
    import comfy_host
    with pytest.raises(comfy_host.PromptFailed, match="filename_prefix 'bad\\\\x00name' contains a NUL") as failure:
        host.run(save_prompt("webp", prefix="bad\0name"))
    assert failure.value.node_type == "ALCM_SaveVideo"


def test_a_non_finite_frame_rate_is_refused_by_name(host):
    import comfy_host
    with pytest.raises(comfy_host.PromptFailed, match="'frame_rate' is nan; it must be a finite number"):
        host.run(save_prompt("webm", frame_rate=float("nan")))  # ComfyUI's min/max check lets NaN through
    for value in (float("inf"), float("-inf")):  # these ComfyUI's own check refuses
        with pytest.raises((comfy_host.PromptFailed, comfy_host.PromptInvalid), match="frame_rate"):
            host.run(save_prompt("webm", frame_rate=value))


def test_pillows_own_errors_become_a_file_error_naming_the_file(host):
    """A GIF header claiming 65535x65535 px, then garbage: Pillow raises DecompressionBombError."""
    import comfy_host
    (host.input_dir / "bomb.gif").write_bytes(b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0) + bytes(64))
    (host.input_dir / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (host.input_dir / "garbage.webp").write_bytes(b"RIFF\x10\0\0\0WEBPVP8X" + bytes(64))
    for name in ("bomb.gif", "garbage.png", "garbage.webp"):
        with pytest.raises(comfy_host.PromptFailed, match=f"'{name}' is not an animation Pillow can read") as failure:
            host.run(load_prompt(name), want=["1"])
        assert failure.value.exception_type.endswith("VideoFileError")


class AnyType(str):
    """The "*" type other packs give their outputs (rgthree, Impact...): it links to any input."""

    def __ne__(self, other):
        return False


class FileNameNode:
    """Another pack's node that gives a file name: a linked `video` input."""
    RETURN_TYPES = (AnyType("*"),)
    FUNCTION = "name"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": ""})}}

    def name(self, text):
        return (text,)


def test_a_linked_video_input_validates_and_loads(host):
    import comfy_host
    import nodes
    host.pack.video.encode.save_video(smooth(), str(host.input_dir / "linked.webm"), "webm", FPS)
    nodes.NODE_CLASS_MAPPINGS["ALCM_TestFileName"] = FileNameNode
    try:
        prompt = {"9": {"class_type": "ALCM_TestFileName", "inputs": {"text": "linked.webm"}},
                  **load_prompt(["9", 0])}
        frames = host.run(prompt, want=["1"]).output("1")
        assert frames.shape == (FRAMES, SIZE, SIZE, 3)
        prompt["9"]["inputs"]["text"] = "missing.webm"
        with pytest.raises(comfy_host.PromptFailed, match="'missing.webm' does not exist"):
            host.run(prompt, want=["1"])
    finally:
        del nodes.NODE_CLASS_MAPPINGS["ALCM_TestFileName"]
