"""tests/reference/sliding_window.py -- an independent PyTorch implementation of sliding-window
inference as MONAI documents it (monai.inferers.sliding_window_inference), for the whole-case
tests in tests/cases/.

Written from the documented behaviour, not from MONAI's code:
  * the image [C, D, H, W] is padded with zeros, half before and half after, to at least the ROI
    on every axis; the result is cropped back at the end;
  * along each axis windows start every int(roi * (1 - overlap)) voxels (the whole ROI when the
    padded size equals it, at least 1); there are as many as needed for the last one to reach
    the end, and a window that would stick out is moved back inside (MONAI); or, as nnU-Net
    does, ceil((size - roi) / (roi * (1 - overlap))) + 1 windows spread evenly, positions
    rounded half to even;
  * each window's prediction is multiplied by an importance map and summed; the sum of the maps
    divides the result: "constant" is all ones, "gaussian" is a Gaussian with sigma =
    sigma_scale * roi per axis, centred at roi // 2, built by filtering a unit impulse with the
    erf-discretised 1-D kernel truncated at 4 sigma, divided by its maximum, and its zeros
    raised to its smallest non-zero value;
  * test-time mirroring: the prediction of a window is the mean over every subset of the chosen
    axes of flip(net(flip(window)));
  * normalisation (MONAI NormalizeIntensity, channel_wise): z-score per channel over all voxels
    or over the non-zero ones only (zeros stay zero); population std, 1 where it is 0.
"""
import math

import torch
import torch.nn.functional as F


def positions(size, roi, overlap, mode="monai"):
    if mode == "nnunet":
        step = roi * (1 - overlap)
        n = int(math.ceil((size - roi) / step)) + 1
        actual = (size - roi) / (n - 1) if n > 1 else 0
        return [int(round(actual * i)) for i in range(n)]  # round(): half to even
    interval = roi if roi == size else max(int(roi * (1 - overlap)), 1)
    starts = []
    i = 0
    while True:
        s = i * interval
        starts.append(min(s, size - roi))
        if s + roi >= size:
            break
        i += 1
    return starts


def gaussian_1d(sigma, truncated=4.0):
    tail = int(max(sigma * truncated, 0.5) + 0.5)
    x = torch.arange(-tail, tail + 1, dtype=torch.float64)
    t = 0.70710678 / sigma
    return (0.5 * (torch.erf(t * (x + 0.5)) - torch.erf(t * (x - 0.5)))).clamp(min=0)


def importance_map(roi, mode="constant", sigma_scale=0.125):
    if mode == "constant":
        return torch.ones(roi, dtype=torch.float64)
    imp = torch.zeros(roi, dtype=torch.float64)
    imp[tuple(r // 2 for r in roi)] = 1
    x = imp[None, None]
    for axis, r in enumerate(roi):
        k = gaussian_1d(r * sigma_scale)
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = len(k)
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = len(k) // 2
        x = F.conv3d(F.pad(x, pad), k.flip(0).reshape(shape))
    imp = x[0, 0]
    imp = imp / imp.max()
    imp[imp == 0] = imp[imp > 0].min()
    return imp


def normalize(img, mode):
    if mode in (None, "none"):
        return img
    out = img.clone()
    for c in range(img.shape[0]):
        x = img[c].double()
        sel = x != 0 if mode == "nonzero" else torch.ones_like(x, dtype=torch.bool)
        if not sel.any():
            continue
        mean = x[sel].mean()
        std = x[sel].std(unbiased=False)
        std = 1.0 if std == 0 else std
        y = x.clone()
        y[sel] = (x[sel] - mean) / std
        out[c] = y.float()
    return out


def sliding_window(img, net, roi, overlap=0.5, blend="constant", sigma_scale=0.125,
                   mirror_axes=(), mode="monai", norm=None, num_classes=None):
    """img: [C, D, H, W] float tensor; net: [1, C, *roi] -> [1, K, *roi]; returns [K, D, H, W]"""
    img = normalize(img, norm)
    size = list(img.shape[1:])
    pad_lo = [max(r - s, 0) // 2 for r, s in zip(roi, size)]
    pad_hi = [max(r - s, 0) - lo for r, s, lo in zip(roi, size, pad_lo)]
    pad = []
    for a in (2, 1, 0):
        pad += [pad_lo[a], pad_hi[a]]
    x = F.pad(img[None], pad)[0]
    P = list(x.shape[1:])
    imp = importance_map(roi, blend, sigma_scale)
    out = None
    cnt = torch.zeros(P, dtype=torch.float64)
    flips = []
    for m in range(8):
        axes = [a for a in range(3) if m >> a & 1]
        if all(a in mirror_axes for a in axes):
            flips.append([a + 2 for a in axes])
    for z in positions(P[0], roi[0], overlap, mode):
        for y in positions(P[1], roi[1], overlap, mode):
            for w in positions(P[2], roi[2], overlap, mode):
                win = x[:, z:z + roi[0], y:y + roi[1], w:w + roi[2]][None]
                pred = 0
                with torch.no_grad():
                    for f in flips:
                        p = net(win.flip(f) if f else win)
                        pred = pred + (p.flip(f) if f else p).double()
                pred = pred[0] / len(flips)
                if out is None:
                    out = torch.zeros([pred.shape[0]] + P, dtype=torch.float64)
                out[:, z:z + roi[0], y:y + roi[1], w:w + roi[2]] += pred * imp
                cnt[z:z + roi[0], y:y + roi[1], w:w + roi[2]] += imp
    out = out / cnt
    return out[:, pad_lo[0]:pad_lo[0] + size[0], pad_lo[1]:pad_lo[1] + size[1],
               pad_lo[2]:pad_lo[2] + size[2]].float()
