"""Sound: a video file's audio as ComfyUI's AUDIO, and an AUDIO written into a video beside its frames.

AUDIO is core's type (comfy_extras/nodes_audio.py): {"waveform": float tensor [batch, channels,
samples] in [-1, 1], "sample_rate": int}. Everything goes through PyAV (torchaudio, which core's
audio nodes import, is missing on many CPU installs).

Loading covers exactly the frames Load Video returns: from skip_first_frames / fps for
frame_count / loaded fps seconds (as VideoHelperSuite cuts it), silence where the file has no sound.
It happens when something reads the AUDIO (FileSound), so a Load Video whose audio output is not
connected never touches the file's sound. Saving writes the track a slice at a time as the frames go
out (after each frame, the sound up to its end), so the muxer interleaves the two and the track is
never converted whole; more than two channels are mixed down to stereo by FFmpeg's resampler, then
PyAV's encoder resamples each slice to what the codec takes (AAC: the track's rate if AAC has it,
else 48 kHz; Opus: 48 kHz) and cuts it into the codec's frame size. The track is cut, or padded with
silence, to the video's length.

Every sample goes through PyAV as packed ("flt") frames, never planar ("fltp") ones: PyAV's
AudioFrame.planes (still in 18.1) counts a frame's planes by walking FFmpeg's `extended_data` until a
NULL pointer, and FFmpeg does not end that array with one. With 8 planar channels the walk runs on
into AVFrame.linesize and takes linesize[0] (the plane's size in bytes) for a ninth plane's address:
to_ndarray copies from it (a segmentation fault, which ended ComfyUI with every queued job) and
from_ndarray writes a ninth row (IndexError: index 8 is out of bounds); with more than 8 it reads
past a heap array. A packed frame has one plane whatever its channel count.
"""
import logging
import math
import os
from collections.abc import Mapping
from fractions import Fraction

import av
from av.error import FFmpegError
import numpy as np
import torch

from .decode import available_memory
from .errors import AudioInputError, VideoFileError

log = logging.getLogger(__name__)

SILENCE_RATE = 44100  # the rate of the silent track a video without sound gives (mono)
CHECK_SAMPLES = 1 << 20  # samples per channel checked for NaN/inf at once (4 MiB a channel)
# The sample rates taken, in Hz: past every rate sound is recorded at (8 kHz telephone to 768 kHz
# studio converters); a header or an AUDIO outside it is damaged, and sizing a buffer by it is what
# once asked the allocator for 31-64 GB.
MIN_RATE, MAX_RATE = 1_000, 768_000
# The channel order a bare channel count is read in (an AUDIO has no layout): FFmpeg's default layout
# for each count, except quad for 4 (front and back pairs, as 4-channel WAV files and recorders have
# them; FFmpeg's 4.0 has a back centre instead). Above 8 there is no one standard order (FFmpeg alone
# knows several 16-channel layouts), so Save Video takes at most 8, and Load Video mixes a file with
# more down to stereo, from the layout the file names.
LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
MAX_CHANNELS = max(LAYOUTS)
FALLBACK_RATE = 48000  # for a codec that does not take the track's rate (Opus takes 8-48 kHz steps, AAC 7.35-96)


def silence(seconds, sample_rate=SILENCE_RATE, channels=1):
    """AUDIO of `seconds` of silence."""
    return {"waveform": torch.zeros(1, channels, round(seconds * sample_rate)), "sample_rate": sample_rate}


class FileSound(Mapping):
    """Load Video's AUDIO: the sound of `duration` seconds of a file from `start`, decoded the first time
    something reads it. ComfyUI does not tell a node which of its outputs are connected, so this is how a
    sound nobody uses is never decoded (VideoHelperSuite's Load Video does the same). `warnings` holds
    what went wrong once it is decoded, for the node that used it to show."""

    def __init__(self, path, start, duration):
        self.path, self.start, self.duration = path, start, duration
        self.audio, self.warnings = None, []

    def _decoded(self):
        if self.audio is None:
            self.audio, self.warnings = load_audio(self.path, self.start, self.duration)
            for warning in self.warnings:
                log.warning("%s", warning)
        return self.audio

    def __getitem__(self, key):
        return self._decoded()[key]

    def __iter__(self):  # the keys are known without decoding
        return iter(("waveform", "sample_rate"))

    def __contains__(self, key):  # Mapping's own would decode to find out
        return key in ("waveform", "sample_rate")

    def __len__(self):
        return 2


def load_audio(path, start, duration):
    """(AUDIO, warnings) of the file's first sound stream from `start` seconds of its video for `duration`
    seconds. No sound stream: silence of that length. A sound stream whose header no decoder can use:
    silence, and a warning says so; one that breaks while decoding: what was decoded, silence after it,
    and a warning. More than 8 channels are mixed down to stereo, with a warning."""
    name = os.path.basename(path)
    try:
        container = av.open(path)
    except FFmpegError:  # not a file FFmpeg reads (an animated WebP, GIF or APNG): no sound to give
        return silence(duration), []
    with container:
        if not container.streams.audio:
            return silence(duration), []
        stream = container.streams.audio[0]
        rate, layout = stream.codec_context.sample_rate, stream.codec_context.layout
        channels = len(layout.channels) if layout is not None else 0
        if not rate or not channels or not MIN_RATE <= rate <= MAX_RATE:
            return silence(duration), [
                f"'{name}': its sound stream says {rate:,} Hz, {channels} channels, which no decoder can use (sound "
                f"has 1 or more channels at {MIN_RATE:,} to {MAX_RATE:,} Hz): the header is damaged. The frames "
                "loaded; the audio output is silence. Re-encode the file's sound (or take it from a Load Audio node)."]
        warnings = []
        if channels > MAX_CHANNELS:  # mixed here, where the file's layout is known; an AUDIO has none
            named = "" if layout.name == f"{channels} channels" else f" ({layout.name})"  # FFmpeg's name, if any
            warnings.append(f"'{name}': its sound has {channels} channels{named}; the audio output is that sound "
                            "mixed down to stereo by FFmpeg (Save Video takes at most 8 channels).")
            layout, channels = av.AudioLayout("stereo"), 2
        check_sound_memory(name, duration, rate, channels)
        waveform, problem = _decode_span(name, container, stream, start, duration, rate, layout)
        return {"waveform": waveform, "sample_rate": rate}, warnings + ([problem] if problem else [])


def check_sound_memory(name, seconds, rate, channels):
    """Refuse a sound span that would not fit in free RAM, with the numbers."""
    needed = channels * round(seconds * rate) * 4  # float32, what AUDIO holds
    available = available_memory()
    if needed > available:
        raise VideoFileError(f"'{name}': {seconds:.1f} s of its sound ({channels} channels at {rate:,} Hz) need "
                             f"{needed / 2**20:,.1f} MiB as AUDIO, but only {available / 2**20:,.1f} MiB of RAM is "
                             "available. Load fewer frames (frame_cap), or leave the audio output unconnected.")


def _decode_span(name, container, stream, start, duration, rate, layout):
    """(waveform [1, channels, samples] of the span, a warning or None): the decoded sound in `layout`, at
    `rate`, as float32; silence where the stream breaks off."""
    origin = _video_start(container)  # the timeline time of the first video frame
    waveform = torch.zeros(1, len(layout.channels), round(duration * rate))
    done, at = 0, None  # samples of the span decoded; where the next decoded sample goes
    try:
        if start > 1:  # most of the file is before the span: seek near it instead of decoding it all
            container.seek(int((origin + start - 1) / av.time_base), backward=True, any_frame=False)
        # decoded samples in any layout and sample format, as packed float (see the module's docstring)
        resampler = av.AudioResampler(format="flt", layout=layout, rate=rate)
        for frame in container.decode(stream):
            if at is None:
                # the first frame's time places the sound; the rest follows on sample by sample, as FFmpeg
                # plays it: Matroska's times are whole milliseconds, and placing each AAC frame (21.33 ms at
                # 48 kHz) by its own time would cut or double a few samples at every frame
                at = round((frame.time - origin - start) * rate) if frame.time is not None else 0
            for converted in resampler.resample(frame):  # the same rate: no buffering, no delay
                samples = converted.to_ndarray().reshape(-1, len(layout.channels)).T  # [channels, samples]
                at = _place(waveform[0], samples, at)
            done = max(0, min(at, waveform.shape[2]))
            if at >= waveform.shape[2]:
                break
    # ValueError: PyAV's resampler refuses a frame whose format or layout changed mid-stream
    except (FFmpegError, ValueError) as error:
        return waveform, (
            f"'{name}': its sound could not be decoded after {done / rate:.2f} s of the {duration:.2f} s loaded "
            f"({type(error).__name__}: {error}); the frames loaded, the rest of the audio output is silence. "
            "Re-encode the file's sound (or take it from a Load Audio node).")
    return waveform, None


def _video_start(container):
    video = container.streams.video[0] if container.streams.video else None
    if video is None or video.start_time is None:
        return 0.0
    return float(video.start_time * video.time_base)


def _place(waveform, samples, at):
    """Copy decoded samples ([channels, n], starting at sample `at` of the span) into the span's part of
    `waveform`; returns the index after them."""
    end = at + samples.shape[1]
    lo, hi = max(at, 0), min(end, waveform.shape[1])
    if lo < hi:
        waveform[:, lo:hi] = torch.from_numpy(np.ascontiguousarray(samples[:, lo - at:hi - at]))
    return end


def check_audio(audio, node):
    """The AUDIO as {"waveform", "sample_rate": int} if it can be written; else refused, the message naming the
    node, the input and the fix."""
    where = f"{node}: the 'audio' input"
    # a Mapping, not only a dict: VideoHelperSuite's Load Video gives a lazy one, and so does ours
    if not isinstance(audio, Mapping) or "waveform" not in audio or "sample_rate" not in audio:
        raise AudioInputError(f"{where} is not ComfyUI's AUDIO (a dict with 'waveform' and 'sample_rate'): link a "
                              "Load Audio node or another node with an AUDIO output.")
    waveform, rate = audio["waveform"], sample_rate(audio["sample_rate"], where)
    if not torch.is_tensor(waveform) or waveform.dim() != 3 or not waveform.is_floating_point():
        shape = tuple(waveform.shape) if torch.is_tensor(waveform) else type(waveform).__name__
        raise AudioInputError(f"{where} has a waveform of {shape} ({getattr(waveform, 'dtype', '')}); AUDIO holds "
                              "float samples as [batch, channels, samples]: the node that made it is broken.")
    if waveform.shape[0] == 0 or waveform.shape[1] == 0:
        raise AudioInputError(f"{where} has {waveform.shape[0]} clips of {waveform.shape[1]} channels: it holds no "
                              "sound channel. Link an AUDIO with sound, or leave 'audio' unconnected.")
    if waveform.shape[1] > MAX_CHANNELS:
        raise AudioInputError(f"{where} has {waveform.shape[1]} channels; at most {MAX_CHANNELS} (7.1) can be mixed "
                              "into the video's stereo track, as above 8 no channel order is standard. Mix it down "
                              "first (Load Video mixes a file with more channels down to stereo itself).")
    clip = waveform[0]
    for start in range(0, clip.shape[1], CHECK_SAMPLES):
        finite = torch.isfinite(clip[:, start:start + CHECK_SAMPLES]).all(dim=0)
        if not finite.all():
            first = start + int((~finite).nonzero()[0])
            raise AudioInputError(f"{where} holds NaN or infinite samples (the first at {first / rate:.3f} s): the "
                                  "node that made it failed. Fix or replace that node.")
    if waveform.shape[0] > 1:
        log.warning("%s holds %d clips; the video takes the first", where, waveform.shape[0])
    return {"waveform": waveform, "sample_rate": rate}


def sample_rate(value, where):
    """An AUDIO's sample rate as an int: a whole number (a Python, NumPy or one-element torch number) of
    MIN_RATE to MAX_RATE Hz; anything else is refused, naming `where`."""
    one_number = torch.is_tensor(value) and value.numel() == 1 or \
        isinstance(value, (np.ndarray, np.generic)) and value.size == 1
    number = value.item() if one_number else value
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise AudioInputError(f"{where} has a sample rate of {value!r} ({type(value).__name__}); it must be a whole "
                              "number of samples per second (44100, 48000...): fix the node that made it.")
    if not math.isfinite(number) or number != int(number):
        raise AudioInputError(f"{where} has a sample rate of {number!r}, which is not a whole number of samples "
                              "per second (44100, 48000...): fix the node that made it.")
    if not MIN_RATE <= number <= MAX_RATE:
        raise AudioInputError(f"{where} has a sample rate of {int(number):,} Hz; sound is {MIN_RATE:,} to "
                              f"{MAX_RATE:,} Hz (44,100 and 48,000 are usual): fix the node that made it, or set "
                              "its rate right.")
    return int(number)


class AudioTrack:
    """An AUDIO muxed into an open PyAV container beside its video, written a slice at a time and cut, or
    padded with silence, to `duration` seconds."""

    def __init__(self, container, codec, audio, duration):
        waveform = audio["waveform"]
        self.clip = waveform[0]  # [channels, samples]; the only copies made are one slice at a time
        self.rate = int(audio["sample_rate"])
        self.layout = LAYOUTS[self.clip.shape[0]]
        self.total = round(duration * self.rate)  # samples of the track in the file
        self.written = 0
        # 3-8 channels: mixed to stereo by FFmpeg's default matrix (ITU-R BS.775: centre and surrounds at
        # -3 dB, LFE left out), in float, so mp4 and webm get the same mix. Left to the encoder, Opus's
        # 16-bit input would make FFmpeg scale the mix down to never clip and AAC's float input would not.
        self.mixer = av.AudioResampler(format="flt", layout="stereo", rate=self.rate) \
            if self.clip.shape[0] > 2 else None
        supported = av.codec.Codec(codec, "w").audio_rates
        stream_rate = self.rate if not supported or self.rate in supported else FALLBACK_RATE
        self.stream = container.add_stream(codec, rate=stream_rate)
        self.stream.codec_context.layout = "mono" if self.clip.shape[0] == 1 else "stereo"
        self.stream.time_base = Fraction(1, stream_rate)
        self.container = container

    def write_until(self, seconds):
        """Encode and mux the track up to `seconds` (the end of the frames written so far)."""
        end = min(self.total, round(seconds * self.rate))
        if end <= self.written:
            return
        # the track's samples where it has them, silence after its end; packed: [samples, channels]
        have = min(end, self.clip.shape[1])
        part = self.clip[:, self.written:have] if have > self.written else self.clip[:, :0]
        block = np.zeros((end - self.written, self.clip.shape[0]), dtype=np.float32)
        block[:part.shape[1]] = part.T.float().clamp(-1, 1).cpu().numpy()
        frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="flt", layout=self.layout)
        frame.sample_rate, frame.pts, frame.time_base = self.rate, self.written, Fraction(1, self.rate)
        self._encode(frame)
        self.written = end

    def _encode(self, frame):
        for mixed in self.mixer.resample(frame) if self.mixer is not None else [frame]:
            self.container.mux(self.stream.encode(mixed))  # PyAV resamples to the codec's rate, format, frame size

    def close(self):
        """Pad to the full length and flush what the mixer and the encoder hold back."""
        self.write_until(self.total / self.rate)
        held = self.mixer.resample(None) if self.mixer is not None else []
        for frame in [*held, None]:
            self.container.mux(self.stream.encode(frame))
