"""Reference values for the self-check and the tests: the published formulas, written out in float64.

Nothing here imports the pack's engine (samplers/, motion/, lora/): each function is written from the
paper or the official code it cites, so a change to the pack's maths shows up as a difference from
these, never as agreement with itself. Noise conventions (which generator, which seed) are the ones
docs/maths.md documents for the pack: they are part of what "the same video" means.
"""
import math
import re

import numpy as np
import torch
import torch.nn.functional as F

SD15_LATENT_SCALE = 0.18215  # ComfyUI's LATENT holds unscaled VAE latents; the model sees them ×0.18215
TEXT_TO_VIDEO = {"original_inference_steps": 100, "beta_end": 0.012}
IMAGE_TO_VIDEO = {"original_inference_steps": 200, "beta_end": 0.014}


# --- the schedule (docs/maths.md#sampling; diffusers LCMScheduler.set_timesteps) ---------------------------

def official_timesteps(steps, ots=100, strength=1.0):
    """diffusers LCMScheduler.set_timesteps, written out with numpy."""
    k = 1000 // ots
    origin = (np.arange(1, int(ots * strength) + 1) * k - 1)[::-1]
    return origin[np.floor(np.linspace(0, len(origin), num=steps, endpoint=False)).astype(np.int64)].tolist()


def alphas_cumprod(beta_end=0.012):
    """ᾱ_t for betas linspace(0.00085, beta_end, 1000) (diffusers' "linear")."""
    return torch.tensor(np.cumprod(1 - np.linspace(0.00085, beta_end, 1000)), dtype=torch.float64)


def official_sigmas(steps, ots=100, beta_end=0.012, strength=1.0):
    """σ_t = √((1-ᾱ_t)/ᾱ_t) at the official timesteps, then 0: the variance-exploding form ComfyUI samples in."""
    ac = alphas_cumprod(beta_end)
    return [math.sqrt((1 - ac[t]) / ac[t]) for t in official_timesteps(steps, ots, strength)] + [0.0]


# --- a UNet with a closed-form ε, and the official sampling loop around it ----------------------------

def analytic_eps(x, t, text_mean, frame_mix=0.0):
    """ε(x_t, t, text) of the self-check's analytic UNet (selfcheck/models.py runs the same formula in
    float32). With frame_mix, each frame also sees the mean of the frames it is sampled with, so a
    context window's result depends on which frames are in it."""
    eps = 0.3 * x + 0.1 * torch.cos(t / 300.0) + text_mean
    if frame_mix:
        eps = eps + frame_mix * x.mean(dim=0, keepdim=True)
    return eps


def official_loop(latent, noise, step_noise, timesteps, cfg, eps_of, beta_end=0.012, strength=1.0):
    """AnimateLCM's sampling loop (diffusers LCMScheduler.step) in float64, from the paper's formulas.

    eps_of(x, t, positive) → ε; latent and noises are float64 and already scaled as the model sees them."""
    ac = alphas_cumprod(beta_end)
    x = noise if strength == 1.0 else ac[timesteps[0]].sqrt() * latent + (1 - ac[timesteps[0]]).sqrt() * noise
    for i, t in enumerate(timesteps):
        tt = torch.tensor(float(t), dtype=torch.float64)
        eps = eps_of(x, tt, True, i)
        if cfg > 1:  # two-pass CFG on ε
            uncond = eps_of(x, tt, False, i)
            eps = uncond + cfg * (eps - uncond)
        a_t = ac[t]
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()                      # 3. predicted original sample
        c_skip = 0.25 / ((10 * t) ** 2 + 0.25)                                # 4. boundary condition
        c_out = 10 * t / math.sqrt((10 * t) ** 2 + 0.25)
        denoised = c_out * x0 + c_skip * x
        if i + 1 < len(timesteps):                                            # 7. fresh noise, not on the last step
            a_prev = ac[timesteps[i + 1]]
            x = a_prev.sqrt() * denoised + (1 - a_prev).sqrt() * step_noise[i]
        else:
            x = denoised
    return x


# --- AnimateDiff-Lightning (its model card: diffusers EulerDiscreteScheduler, "trailing", "linear") -------

def lightning_timesteps(steps, strength=1.0):
    """EulerDiscreteScheduler.set_timesteps with timestep_spacing="trailing", written out with numpy, and
    AnimateDiffVideoToVideoPipeline.get_timesteps for `strength`."""
    timesteps = (np.arange(1000, 0, -1000 / steps).round() - 1).astype(np.int64)
    kept = min(int(steps * strength), steps)
    return timesteps[steps - kept:].tolist()


def lightning_sigmas(steps, strength=1.0):
    """σ_t = √((1-ᾱ_t)/ᾱ_t) on betas linspace(0.00085, 0.012) (beta_schedule="linear"), then 0."""
    ac = alphas_cumprod(0.012)
    return [math.sqrt((1 - ac[t]) / ac[t]) for t in lightning_timesteps(steps, strength)] + [0.0]


def lightning_loop(latent, noise, steps, cfg, eps_of, strength=1.0):
    """The model card's pipeline in float64 (diffusers' EulerDiscreteScheduler, defaults, ε-prediction):
    x = σ_0·z (init_noise_sigma = σ_max for "trailing"; below strength 1 add_noise: latent + σ_0·z), then each
    step ε at t of x/√(σ²+1), x0 = x − σ·ε, x += (x − x0)/σ · (σ_next − σ). latent and noise: model space."""
    timesteps, sigmas = lightning_timesteps(steps, strength), lightning_sigmas(steps, strength)
    x = sigmas[0] * noise + (latent if strength < 1.0 else 0)
    for i, t in enumerate(timesteps):
        tt = torch.tensor(float(t), dtype=torch.float64)
        model_input = x / math.sqrt(sigmas[i] ** 2 + 1)                       # scale_model_input
        eps = eps_of(model_input, tt, True, i)
        if cfg > 1:
            uncond = eps_of(model_input, tt, False, i)
            eps = uncond + cfg * (eps - uncond)
        x0 = x - sigmas[i] * eps                                              # 1. predicted original sample
        x = x + (x - x0) / sigmas[i] * (sigmas[i + 1] - sigmas[i])            # 2-3. ODE derivative, Euler step
    return x


def seeded_noise(shape, seed, steps):
    """(initial noise, [step noise]) as the pack draws them: the initial noise from torch.manual_seed(seed)
    (comfy.sample.prepare_noise), each step's fresh noise from a generator seeded seed + 1 (docs/maths.md#freenoise-and-the-seeds)."""
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).double()
    step_generator = torch.Generator().manual_seed(seed + 1)
    return noise, [torch.randn(shape, generator=step_generator).double() for _ in range(steps)]


# --- context windows and FreeNoise (AnimateDiff-Evolved's context options; arXiv 2310.15169) -----------

def bit_reversed(step):
    """h(step): the bits of a 64-bit step read backwards, over 2^64 (ADE's ordered_halving)."""
    return sum(((step >> bit) & 1) / 2 ** (bit + 1) for bit in range(64))


def uniform_windows(frames, length, overlap, step):
    """The open-loop uniform schedule of one step: the grid of starts shift, shift + Δ, ... (Δ = length -
    overlap, shift = round(frames·h(step))) up to frames + shift - overlap; a window that wraps past the
    last frame is replaced by one flush with the end and one flush with the start. A set of tuples."""
    if frames <= length:
        return {tuple(range(frames))}
    shift = round(frames * bit_reversed(step))
    windows = set()
    for start in range(shift, frames + shift - overlap, length - overlap):
        frames_of = [(start + k) % frames for k in range(length)]
        if frames_of[-1] < frames_of[0]:
            windows.update({tuple(range(frames - length, frames)), tuple(range(length))})
        else:
            windows.add(tuple(frames_of))
    return windows


def pyramid_weights(n):
    """FreeNoise's weighted average: 1, 2, ... up to the middle and back down to 1."""
    return [min(k + 1, n - k) for k in range(n)]


def windowed(eps_window, x, windows):
    """Σ_w weight·ε(window) / Σ_w weight per frame, with pyramid weights."""
    total, weight = torch.zeros_like(x), torch.zeros(x.shape[0], dtype=x.dtype)
    for window in windows:
        w = torch.tensor(pyramid_weights(len(window)), dtype=x.dtype)
        total[list(window)] += w.view(-1, 1, 1, 1) * eps_window(x[list(window)])
        weight[list(window)] += w
    return total / weight.view(-1, 1, 1, 1)


def freenoise_in_place(noise, length, overlap, seed):
    """FreeNoise as its paper and AnimateDiff-Evolved describe it: walk the windows in order and overwrite
    the Δ frames after each window with a shuffle (torch.randperm, generator seeded `seed`) of its first Δ."""
    noise = noise.clone()
    frames, delta = noise.shape[0], length - overlap
    generator = torch.Generator().manual_seed(seed)
    start = 0
    while start + length < frames:
        place = start + length
        count = min(delta, frames - place)
        order = torch.randperm(count, generator=generator)
        noise[place:place + count] = noise[start:start + count][order]
        start += delta
    return noise


# --- the temporal layer (AnimateDiff's TemporalTransformer3DModel, motion_module.py) --------------------

def sinusoid(frames, d):
    """pe[t, 2k] = sin(t / 10000^(2k/d)), pe[t, 2k+1] = cos(t / 10000^(2k/d)), written out entry by entry."""
    pe = torch.zeros(frames, d, dtype=torch.float64)
    for t in range(frames):
        for k in range(0, d, 2):
            pe[t, k] = math.sin(t / 10000 ** (k / d))
            pe[t, k + 1] = math.cos(t / 10000 ** (k / d))
    return pe


def temporal_layer(w, x, videos, strength=1.0, heads=8):
    """One motion layer, spelled out in float64: plain einsum attention over frames, per pixel, the fixed
    sinusoid (or the file's own `pos_encoder.pe`) added before each attention. w: the layer's weights in
    the original naming, relative to `...motion_modules.J.`."""
    w = {k: v.double() for k, v in w.items()}
    x = x.double()
    t = "temporal_transformer."
    bf, c, hgt, wid = x.shape
    f = bf // videos
    gn = F.group_norm(x, 32, w[t + "norm.weight"], w[t + "norm.bias"], eps=1e-6)
    h = gn.reshape(videos, f, c, hgt * wid).permute(0, 3, 1, 2).reshape(videos * hgt * wid, f, c)
    h = h @ w[t + "proj_in.weight"].T + w[t + "proj_in.bias"]
    b = t + "transformer_blocks.0."

    def layer_norm(v, name):
        return F.layer_norm(v, (c,), w[name + ".weight"], w[name + ".bias"])

    attentions = sorted({int(k.split("attention_blocks.")[1].split(".")[0]) for k in w if "attention_blocks." in k})
    for a in attentions:  # two in a motion module, one in SparseCtrl's layers
        p = f"{b}attention_blocks.{a}."
        stored = w.get(p + "pos_encoder.pe")
        pe = stored[0, :f] if stored is not None else sinusoid(f, c)
        inp = layer_norm(h, f"{b}norms.{a}") + pe
        q, k, v = (inp @ w[p + n + ".weight"].T for n in ("to_q", "to_k", "to_v"))
        q, k, v = (m.reshape(m.shape[0], f, heads, c // heads) for m in (q, k, v))
        scores = torch.einsum("nfhd,nghd->nhfg", q, k) / math.sqrt(c // heads)
        out = torch.einsum("nhfg,nghd->nfhd", scores.softmax(-1), v).reshape(-1, f, c)
        h = h + out @ w[p + "to_out.0.weight"].T + w[p + "to_out.0.bias"]
    inp = layer_norm(h, b + "ff_norm")
    proj = inp @ w[b + "ff.net.0.proj.weight"].T + w[b + "ff.net.0.proj.bias"]
    hidden, gate = proj[..., : 4 * c], proj[..., 4 * c:]
    g = 0.5 * gate * (1 + torch.erf(gate / math.sqrt(2)))                    # GELU, exact
    h = h + (hidden * g) @ w[b + "ff.net.2.weight"].T + w[b + "ff.net.2.bias"]
    h = h @ w[t + "proj_out.weight"].T + w[t + "proj_out.bias"]
    delta = h.reshape(videos, hgt * wid, f, c).permute(0, 2, 3, 1).reshape(bf, c, hgt, wid)
    return x + strength * delta


def unet_block_of(position):
    """Where AnimateDiff's UNet3D puts a motion layer, in ComfyUI's SD1.5 UNet: down_blocks.i.motion_modules.j
    after input block 1 + 3i + j's resnet/attention, up_blocks.i.motion_modules.j in output block 3i + j,
    the mid-block layer in middle_block."""
    parts = position.split(".")
    if parts[0] == "mid_block":
        return "middle_block"
    level, j = int(parts[1]), int(parts[3])
    return f"input_blocks.{1 + 3 * level + j}" if parts[0] == "down_blocks" else f"output_blocks.{3 * level + j}"


# --- LoRAs ----------------------------------------------------------------------------------------

ANIMATELCM_SPATIAL_LORA_SCALE = 0.8 / 8  # official convert_lcm_lora: 0.8 · (1/8) · up@down, any alpha ignored


def merged(weight, up, down, scale):
    """weight + scale · up @ down, in float64 (kohya LoRAs, AnimateDiff motion LoRAs alike)."""
    return weight.double() + scale * up.double() @ down.double()


def kohya_target(module):
    """The ComfyUI SD1.5 UNet weight a kohya `lora_unet_<diffusers path>` attention module patches:
    diffusers' down_blocks.i.attentions.j is input_blocks.(1 + 3i + j).1, up_blocks.i.attentions.j
    output_blocks.(3i + j).1, mid_block.attentions.0 middle_block.1."""
    match = re.fullmatch(r"lora_unet_(?:(down|up)_blocks_(\d+)_attentions_(\d+)|mid_block_attentions_0)"
                         r"_transformer_blocks_(\d+)_(attn\d)_(to_q|to_k|to_v|to_out_0)", module)
    kind, level, j, index, attention, projection = match.groups()
    if kind is None:
        block = "middle_block"
    else:
        block = f"input_blocks.{1 + 3 * int(level) + int(j)}" if kind == "down" else f"output_blocks.{3 * int(level) + int(j)}"
    projection = "to_out.0" if projection == "to_out_0" else projection
    return f"{block}.1.transformer_blocks.{index}.{attention}.{projection}.weight"


# --- AnimateLCM-I2V's image encoder (the official Adapter) -----------------------------------------------

def image_encoder(w, latent, motion_scale):
    """The official Adapter's forward from its formulas, in float64: conv_in 3×3, + motion_scale·pe[frame];
    per level two ResNet blocks (the first of levels 1-3 replicate-pads odd sides and 2×2-averages, then
    a 1×1 in_conv where the width changes), x + block2(ReLU(block1(x))); one feature per level."""
    w = {k: v.double() for k, v in w.items()}
    x = F.conv2d(latent.double(), w["conv_in.weight"], w["conv_in.bias"], padding=1)
    x = x + motion_scale * sinusoid(latent.shape[0], x.shape[1])[:, :, None, None]
    features = []
    for level in range(4):
        for j in range(2):
            p = f"body.{2 * level + j}."
            if level and not j:
                x = F.avg_pool2d(F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2), mode="replicate"), 2)
            if p + "in_conv.weight" in w:
                x = F.conv2d(x, w[p + "in_conv.weight"], w[p + "in_conv.bias"])
            h = F.relu(F.conv2d(x, w[p + "block1.weight"], w[p + "block1.bias"], padding=1))
            x = x + F.conv2d(h, w[p + "block2.weight"], w[p + "block2.bias"])
        features.append(x)
    return features


IMAGE_FEATURE_BLOCKS = (2, 5, 8, 11)  # official unet.py: the adapter's feature i joins down block i's output


# --- SparseCtrl (AnimateDiff v3: animatediff/models/sparse_controlnet.py, SparseControlNetModel.forward) ----------

def _silu(x):
    return x * torch.sigmoid(x)


def _resnet(w, p, x, temb):
    """ResnetBlock3D: GroupNorm(32, eps 1e-5), SiLU, conv; + time_emb_proj(SiLU(temb)); GroupNorm, SiLU, conv;
    + the input (a 1×1 conv_shortcut where the width changes)."""
    h = F.conv2d(_silu(F.group_norm(x, 32, w[p + "norm1.weight"], w[p + "norm1.bias"], 1e-5)),
                 w[p + "conv1.weight"], w[p + "conv1.bias"], padding=1)
    h = h + (_silu(temb) @ w[p + "time_emb_proj.weight"].T + w[p + "time_emb_proj.bias"])[:, :, None, None]
    h = F.conv2d(_silu(F.group_norm(h, 32, w[p + "norm2.weight"], w[p + "norm2.bias"], 1e-5)),
                 w[p + "conv2.weight"], w[p + "conv2.bias"], padding=1)
    if p + "conv_shortcut.weight" in w:
        x = F.conv2d(x, w[p + "conv_shortcut.weight"], w[p + "conv_shortcut.bias"])
    return x + h


def _attention(q_in, kv_in, w, p, heads=8):
    q, k, v = (m @ w[p + n + ".weight"].T for m, n in ((q_in, "to_q"), (kv_in, "to_k"), (kv_in, "to_v")))
    n, d = q.shape[0], q.shape[-1] // heads
    q, k, v = (m.reshape(n, m.shape[1], heads, d) for m in (q, k, v))
    scores = torch.einsum("nqhd,nkhd->nhqk", q, k) / math.sqrt(d)
    out = torch.einsum("nhqk,nkhd->nqhd", scores.softmax(-1), v).reshape(n, -1, heads * d)
    return out @ w[p + "to_out.0.weight"].T + w[p + "to_out.0.bias"]


def _spatial_transformer(w, p, x, text):
    """Transformer3DModel as SD1.5 configures it: GroupNorm(32, eps 1e-6), 1×1 proj_in; self-attention,
    cross-attention on the text, GEGLU feed-forward, each after a LayerNorm and added back; 1×1 proj_out; + x."""
    b, c, hgt, wid = x.shape
    h = F.conv2d(F.group_norm(x, 32, w[p + "norm.weight"], w[p + "norm.bias"], 1e-6), w[p + "proj_in.weight"],
                 w[p + "proj_in.bias"]).permute(0, 2, 3, 1).reshape(b, hgt * wid, c)
    t = p + "transformer_blocks.0."

    def norm(v, name):
        return F.layer_norm(v, (c,), w[t + name + ".weight"], w[t + name + ".bias"])
    h = h + _attention(norm(h, "norm1"), norm(h, "norm1"), w, t + "attn1.")
    h = h + _attention(norm(h, "norm2"), text, w, t + "attn2.")
    proj = norm(h, "norm3") @ w[t + "ff.net.0.proj.weight"].T + w[t + "ff.net.0.proj.bias"]
    hidden, gate = proj.chunk(2, dim=-1)
    h = h + (hidden * 0.5 * gate * (1 + torch.erf(gate / math.sqrt(2)))) @ w[t + "ff.net.2.weight"].T \
        + w[t + "ff.net.2.bias"]
    h = h.reshape(b, hgt, wid, c).permute(0, 3, 1, 2)
    return x + F.conv2d(h, w[p + "proj_out.weight"], w[p + "proj_out.bias"])


def sparsectrl_condition(conditions, indices, frames):
    """pipeline_animation.py's controlnet_cond and mask for one video: zeros, then conditions[k] and a 1 on
    frame indices[k] (python indexing: -1 is the last frame). [frames, C, ...], [frames, 1, ...]."""
    cond = torch.zeros(frames, *conditions.shape[1:], dtype=torch.float64)
    mask = torch.zeros(frames, 1, *conditions.shape[2:], dtype=torch.float64)
    cond[indices] = conditions[:len(indices)].double()
    mask[indices] = 1
    return cond, mask


def sparsectrl(w, condition, mask, timestep, text, videos, scale=1.0):
    """SparseControlNetModel.forward in float64, official key names: the 13 residuals (12 down, then the mid).
    condition/mask: [videos·frames, ...]; timestep: the scheduler's t; text: [videos·frames, tokens, width].
    The stored pos_encoder.pe tables are dropped as scripts/animate.py drops them (the layers' own sinusoid)."""
    w = {k: v.double() for k, v in w.items() if not k.endswith("pos_encoder.pe")}
    text = text.double()
    c0 = w["conv_in.weight"].shape[0]
    half = c0 // 2
    args = float(timestep) * torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float64) / half)
    temb = torch.cat([torch.cos(args), torch.sin(args)])[None]                      # flip_sin_to_cos, freq_shift 0
    temb = _silu(temb @ w["time_embedding.linear_1.weight"].T + w["time_embedding.linear_1.bias"])
    temb = temb @ w["time_embedding.linear_2.weight"].T + w["time_embedding.linear_2.bias"]
    hint = torch.cat([condition.double(), mask.double()], dim=1)                      # 2. concate_conditioning_mask
    if "controlnet_cond_embedding.weight" in w:                                       # use_simplified_condition_embedding
        hint = F.conv2d(hint, w["controlnet_cond_embedding.weight"], w["controlnet_cond_embedding.bias"], padding=1)
    else:
        hint = _silu(F.conv2d(hint, w["controlnet_cond_embedding.conv_in.weight"],
                              w["controlnet_cond_embedding.conv_in.bias"], padding=1))
        for k in range(6):
            hint = _silu(F.conv2d(hint, w[f"controlnet_cond_embedding.blocks.{k}.weight"],
                                  w[f"controlnet_cond_embedding.blocks.{k}.bias"], padding=1, stride=1 + k % 2))
        hint = F.conv2d(hint, w["controlnet_cond_embedding.conv_out.weight"], w["controlnet_cond_embedding.conv_out.bias"],
                        padding=1)
    zeros = torch.zeros(hint.shape[0], 4, *hint.shape[2:], dtype=torch.float64)       # set_noisy_sample_input_to_zero
    x = F.conv2d(zeros, w["conv_in.weight"], w["conv_in.bias"], padding=1) + hint
    samples = [x]
    for level in range(4):                                                            # 3. down
        for j in range(2):
            x = _resnet(w, f"down_blocks.{level}.resnets.{j}.", x, temb)
            if f"down_blocks.{level}.attentions.{j}.norm.weight" in w:
                x = _spatial_transformer(w, f"down_blocks.{level}.attentions.{j}.", x, text)
            prefix = f"down_blocks.{level}.motion_modules.{j}."
            x = temporal_layer({k[len(prefix):]: v for k, v in w.items() if k.startswith(prefix)}, x, videos)
            samples.append(x)
        if f"down_blocks.{level}.downsamplers.0.conv.weight" in w:
            x = F.conv2d(x, w[f"down_blocks.{level}.downsamplers.0.conv.weight"],
                         w[f"down_blocks.{level}.downsamplers.0.conv.bias"], stride=2, padding=1)
            samples.append(x)
    x = _resnet(w, "mid_block.resnets.0.", x, temb)                                  # 4. mid
    x = _spatial_transformer(w, "mid_block.attentions.0.", x, text)
    x = _resnet(w, "mid_block.resnets.1.", x, temb)
    out = [F.conv2d(s, w[f"controlnet_down_blocks.{i}.weight"], w[f"controlnet_down_blocks.{i}.bias"])
           for i, s in enumerate(samples)]                                            # 5. controlnet blocks
    out.append(F.conv2d(x, w["controlnet_mid_block.weight"], w["controlnet_mid_block.bias"]))
    return [r * scale for r in out]                                                   # 6. scaling


# --- video files ------------------------------------------------------------------------------------

def eight_bit(frames):
    """What a lossless 8-bit video file holds for float frames in 0-1: round(255·x) / 255."""
    return torch.round(frames.double().clamp(0, 1) * 255) / 255
