"""An independent AnimateLCM-I2V image encoder, written from the official Adapter's formulas (float64)."""
import math

import torch
import torch.nn.functional as F


def sinusoid(frames, d):
    """pe[t, 2k] = sin(t / 10000^(2k/d)), pe[t, 2k+1] = cos(t / 10000^(2k/d)), written out entry by entry."""
    pe = torch.zeros(frames, d, dtype=torch.float64)
    for t in range(frames):
        for k in range(0, d, 2):
            pe[t, k] = math.sin(t / 10000 ** (k / d))
            pe[t, k + 1] = math.cos(t / 10000 ** (k / d))
    return pe


def reference_encoder(w, latent, motion_scale):
    """The official Adapter's forward from its formulas, in float64."""
    w = {k: v.double() for k, v in w.items()}
    x = F.conv2d(latent.double(), w["conv_in.weight"], w["conv_in.bias"], padding=1)
    x = x + motion_scale * sinusoid(latent.shape[0], x.shape[1])[:, :, None, None]
    features = []
    for level in range(4):
        for j in range(2):
            p = f"body.{2 * level + j}."
            if level and not j:  # replicate-pad odd sides to even, then 2×2 average
                x = F.avg_pool2d(F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2), mode="replicate"), 2)
            if p + "in_conv.weight" in w:
                x = F.conv2d(x, w[p + "in_conv.weight"], w[p + "in_conv.bias"])
            h = F.relu(F.conv2d(x, w[p + "block1.weight"], w[p + "block1.bias"], padding=1))
            x = x + F.conv2d(h, w[p + "block2.weight"], w[p + "block2.bias"])
        features.append(x)
    return features
