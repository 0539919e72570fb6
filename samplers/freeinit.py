"""FreeInit (arXiv 2312.07537): sample the video several times, each pass starting from noise that
keeps the low spatio-temporal frequencies of the previous pass's video.

Between passes (the official AnimationFreeInitPipeline, TianxingWu/FreeInit):
  1. diffuse the previous pass's clean video x0 to the first timestep with the FIRST pass's noise ε0
     (DDPM forward: z = √ᾱ·x0 + √(1−ᾱ)·ε0; the first timestep is 999 at denoise 1);
  2. draw fresh noise η;
  3. keep the low frequencies of z and the high frequencies of η: a 3-D FFT over (frames, height,
     width), z·LPF + η·(1 − LPF), inverse FFT.
The low-pass filters are the official ones, on frequencies normalised to [-1, 1) per dimension,
with the temporal axis stretched by d_s/d_t so one radius d_s serves both:
    d² = ((d_s/d_t)·f_t)² + f_h² + f_w²
    gaussian exp(−d²/(2·d_s²)); butterworth 1/(1 + (d²/d_s²)^n); ideal d² ≤ d_s²;
    box: integer frequencies k in [−r, r) per dimension, r = round(N//2 · d) (d_t for frames).
Where the official code departs from its own definitions we follow the definitions: its ideal filter
compares d² with 2·d_s (a typo for d_s²: its docstring calls butterworth with a large n "ideal", and
that limit is d² ≤ d_s²); its grid is off-centre by 1/N for odd sizes (a 1-frame or odd dimension lost
part of its zero frequency); its box takes the width's r from the height. On the even, square
latents of the official setting the last two departures vanish, so gaussian, butterworth and box
give the official filters exactly; ideal does not, on purpose (it keeps d² ≤ d_s², not d² ≤ 2·d_s).
"""
import logging
from dataclasses import dataclass

import comfy.model_management
import torch

FILTERS = ("butterworth", "gaussian", "ideal", "box")
FFT_DIMS = (0, -2, -1)  # frames (the latent batch), height, width
log = logging.getLogger(__name__)


class FreeInitError(ValueError):
    pass


@dataclass(frozen=True)
class FreeInit:
    iterations: int = 3
    filter: str = "butterworth"
    spatial_stop: float = 0.25
    temporal_stop: float = 0.25
    butterworth_order: int = 4

    def __post_init__(self):
        if self.filter not in FILTERS:
            raise FreeInitError(f"FreeInit filter '{self.filter}' is not one of {', '.join(FILTERS)}.")
        if self.iterations < 1:
            raise FreeInitError(f"FreeInit iterations is {self.iterations}; it must be 1 or more.")
        for label, value in (("spatial_stop", self.spatial_stop), ("temporal_stop", self.temporal_stop)):
            if not 0.0 <= value <= 1.0:
                raise FreeInitError(f"FreeInit {label} is {value}; it must lie between 0 and 1.")


def low_pass_filter(frames, height, width, options):
    """The filter [frames, 1, height, width] in torch.fft's (unshifted) frequency order."""
    d_s, d_t = options.spatial_stop, options.temporal_stop
    if d_s == 0 or d_t == 0:  # nothing of the previous pass is kept (as in the official code)
        return torch.zeros(frames, 1, height, width)
    if options.filter == "box":
        def band(n, d):
            k = torch.fft.fftfreq(n, 1.0 / n).round()  # integer frequencies
            r = round(n // 2 * d)
            return (k >= -r) & (k < r)  # the official slice [centre − r, centre + r) of the shifted spectrum
        mask = band(frames, d_t)[:, None, None] & band(height, d_s)[None, :, None] & band(width, d_s)[None, None, :]
        return mask.float().unsqueeze(1)
    f_t, f_h, f_w = (torch.fft.fftfreq(n, dtype=torch.float64) * 2 for n in (frames, height, width))
    d2 = ((d_s / d_t) * f_t)[:, None, None] ** 2 + f_h[None, :, None] ** 2 + f_w[None, None, :] ** 2
    if options.filter == "gaussian":
        mask = torch.exp(-d2 / (2 * d_s ** 2))
    elif options.filter == "butterworth":
        mask = 1 / (1 + (d2 / d_s ** 2) ** options.butterworth_order)
    else:  # ideal
        mask = (d2 <= d_s ** 2).double()
    return mask.float().unsqueeze(1)


def mix_frequencies(low_source, high_source, lpf):
    """The low frequencies of `low_source` and the high ones of `high_source` (both [frames, C, H, W])."""
    low = torch.fft.fftn(low_source.float(), dim=FFT_DIMS) * lpf
    high = torch.fft.fftn(high_source.float(), dim=FFT_DIMS) * (1 - lpf)
    return torch.fft.ifftn(low + high, dim=FFT_DIMS).real


def reinitialised_noise(clean, first_noise, fresh_noise, sigma, lpf):
    """Steps 1-3 above; `sigma` is the first timestep's (ᾱ = 1/(1+σ²)), all tensors in model space."""
    alpha_cumprod = 1 / (1 + float(sigma) ** 2)
    diffused = alpha_cumprod ** 0.5 * clean + (1 - alpha_cumprod) ** 0.5 * first_noise
    return mix_frequencies(diffused, fresh_noise, lpf)


def sample_with_freeinit(options, sample, model, noise, noise_for_seed, seed, sigma, denoise):
    """Run `sample(noise, iteration)` (one full sampling pass, LATENT-space samples out) `iterations` times.

    ComfyUI starts a full-denoise pass at x_T = noise on the variance-preserving scale (it scales the
    noise by √(1+σ²) in its own variance-exploding form), so the re-initialised noise is passed as is.
    Pass i's fresh noise is `noise_for_seed(seed + i)`, made like the first pass's noise (FreeNoise's
    frame map included, under Context Windows): the same seed gives the same video.
    """
    if denoise < 1.0:
        raise FreeInitError(f"FreeInit re-samples the whole video from the first timestep, so it needs denoise 1.0 "
                            f"(this sampler has {denoise:g}). Set denoise to 1.0, or disconnect FreeInit for "
                            "video-to-video.")
    frames, _, height, width = noise.shape
    lpf = low_pass_filter(frames, height, width, options)
    log.info("FreeInit pass 1 of %d (%s filter)", options.iterations, options.filter)
    samples = sample(noise, 0)
    for iteration in range(1, options.iterations):
        comfy.model_management.throw_exception_if_processing_interrupted()
        log.info("FreeInit pass %d of %d", iteration + 1, options.iterations)
        clean = model.model.process_latent_in(samples)
        fresh = noise_for_seed(seed + iteration)
        samples = sample(reinitialised_noise(clean, noise, fresh, sigma, lpf), iteration)
    return samples
