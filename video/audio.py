"""Sound: a video file's audio as ComfyUI's AUDIO, and an AUDIO written into a video beside its frames.

AUDIO is core's type (comfy_extras/nodes_audio.py): {"waveform": float tensor [batch, channels,
samples] in [-1, 1], "sample_rate": int}. Everything goes through PyAV (torchaudio, which core's
audio nodes import, is missing on many CPU installs).

Loading covers exactly the frames Load Video returns: from skip_first_frames / fps for
frame_count / loaded fps seconds (as VideoHelperSuite cuts it), silence where the file has no sound.
Saving writes the track a slice at a time as the frames go out (after each frame, the sound up to
its end), so the muxer interleaves the two and the track is never converted whole; PyAV's encoder
resamples each slice to what the codec takes (AAC: the track's rate if AAC has it, else 48 kHz;
Opus: 48 kHz) and cuts it into the codec's frame size. The track is cut, or padded with silence,
to the video's length.
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

from .errors import AudioInputError

log = logging.getLogger(__name__)

SILENCE_RATE = 44100  # the rate of the silent track a video without sound gives (mono)
CHECK_SAMPLES = 1 << 20  # samples per channel checked for NaN/inf at once (4 MiB a channel)
# Channel layouts by channel count (FFmpeg's defaults); more than two channels are mixed down to stereo.
LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
FALLBACK_RATE = 48000  # for a codec that does not take the track's rate (Opus takes 8-48 kHz steps, AAC 7.35-96)


def silence(seconds, sample_rate=SILENCE_RATE, channels=1):
    """AUDIO of `seconds` of silence."""
    return {"waveform": torch.zeros(1, channels, round(seconds * sample_rate)), "sample_rate": sample_rate}


def load_audio(path, start, duration):
    """(AUDIO, problem) of the file's first sound stream from `start` seconds of its video for `duration`
    seconds. No sound stream: silence of that length. A sound stream that breaks while decoding: what was
    decoded, silence after it, and `problem` says so (None when all went well)."""
    name = os.path.basename(path)
    try:
        container = av.open(path)
    except FFmpegError:  # not a file FFmpeg reads (an animated WebP, GIF or APNG): no sound to give
        return silence(duration), None
    with container:
        if not container.streams.audio:
            return silence(duration), None
        stream = container.streams.audio[0]
        rate, layout = stream.codec_context.sample_rate, stream.codec_context.layout
        channels = len(layout.channels) if layout is not None else 0
        if not rate or not channels:
            return silence(duration), (f"'{name}': its sound stream says {rate} Hz, {channels} channels, which no "
                                       "decoder can use; the frames loaded, the audio output is silence.")
        origin = _video_start(container)  # the timeline time of the first video frame
        waveform = torch.zeros(1, channels, round(duration * rate))
        done = 0  # samples of the span decoded
        try:
            if start > 1:  # most of the file is before the span: seek near it instead of decoding it all
                container.seek(int((origin + start - 1) / av.time_base), backward=True, any_frame=False)
            # decoded samples in any layout and sample format, as float planar [channels, samples]
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            for frame in container.decode(stream):
                at = round((frame.time - origin - start) * rate) if frame.time is not None else done
                for converted in resampler.resample(frame):  # the same samples: no buffering, no delay
                    at = _place(waveform[0], converted.to_ndarray(), at)
                done = max(done, min(at, waveform.shape[2]))
                if at >= waveform.shape[2]:
                    break
        except FFmpegError as error:
            return {"waveform": waveform, "sample_rate": rate}, (
                f"'{name}': its sound could not be decoded after {done / rate:.2f} s of the "
                f"{duration:.2f} s loaded ({type(error).__name__}: {error}); the frames loaded, the rest of the "
                "audio output is silence. Re-encode the file's sound (or take it from a Load Audio node).")
    return {"waveform": waveform, "sample_rate": rate}, None


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
    """Refuse an AUDIO that cannot be written: the message names the node, the input and the fix."""
    where = f"{node}: the 'audio' input"
    # a Mapping, not only a dict: VideoHelperSuite's Load Video gives a lazy one
    if not isinstance(audio, Mapping) or "waveform" not in audio or "sample_rate" not in audio:
        raise AudioInputError(f"{where} is not ComfyUI's AUDIO (a dict with 'waveform' and 'sample_rate'): link a "
                              "Load Audio node or another node with an AUDIO output.")
    waveform, rate = audio["waveform"], audio["sample_rate"]
    if not torch.is_tensor(waveform) or waveform.dim() != 3 or not waveform.is_floating_point():
        shape = tuple(waveform.shape) if torch.is_tensor(waveform) else type(waveform).__name__
        raise AudioInputError(f"{where} has a waveform of {shape} ({getattr(waveform, 'dtype', '')}); AUDIO holds "
                              "float samples as [batch, channels, samples]: the node that made it is broken.")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0 \
            or rate != int(rate):
        raise AudioInputError(f"{where} has a sample rate of {rate!r}; it must be a whole number of samples per "
                              "second above 0 (44100, 48000...): fix the node that made it.")
    if waveform.shape[0] == 0 or waveform.shape[1] == 0:
        raise AudioInputError(f"{where} has {waveform.shape[0]} clips of {waveform.shape[1]} channels: it holds no "
                              "sound channel. Link an AUDIO with sound, or leave 'audio' unconnected.")
    if waveform.shape[1] > max(LAYOUTS):
        raise AudioInputError(f"{where} has {waveform.shape[1]} channels; at most {max(LAYOUTS)} (7.1) can be mixed "
                              "into the video's stereo track.")
    clip = waveform[0]
    for start in range(0, clip.shape[1], CHECK_SAMPLES):
        finite = torch.isfinite(clip[:, start:start + CHECK_SAMPLES]).all(dim=0)
        if not finite.all():
            first = start + int((~finite).nonzero()[0])
            raise AudioInputError(f"{where} holds NaN or infinite samples (the first at {first / rate:.3f} s): the "
                                  "node that made it failed. Fix or replace that node.")
    if waveform.shape[0] > 1:
        log.warning("%s holds %d clips; the video takes the first", where, waveform.shape[0])


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
        # the track's samples where it has them, silence after its end
        have = min(end, self.clip.shape[1])
        part = self.clip[:, self.written:have] if have > self.written else self.clip[:, :0]
        block = np.zeros((self.clip.shape[0], end - self.written), dtype=np.float32)
        block[:, :part.shape[1]] = part.float().clamp(-1, 1).cpu().numpy()
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=self.layout)
        frame.sample_rate, frame.pts, frame.time_base = self.rate, self.written, Fraction(1, self.rate)
        self.container.mux(self.stream.encode(frame))  # PyAV resamples to the codec's rate, layout, frame size
        self.written = end

    def close(self):
        """Pad to the full length and flush what the encoder holds back."""
        self.write_until(self.total / self.rate)
        self.container.mux(self.stream.encode(None))
