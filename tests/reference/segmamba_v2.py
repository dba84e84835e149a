"""tests/reference/segmamba_v2.py -- independent PyTorch oracle for graphs/segmamba_v2.json.

SegMamba-V2 (spec /work/shared/models/segmamba-home.md sections 1.6, 1.7, 3, 5.4 ops 21-22, 9),
with the seed-003 variants: width C (hidden 16 C, out block in C), relocation (the TriMamba pairs of
stages 2, 3 moved to stages 0, 1, after the LKConvs) and l2 token pruning (keep rates [K0, K1] for
the first and second Mamba stage; per TriMamba layer, one kept set for the 3 orders; floor(keep L)
clamped to [1, L]; ties to the lower raster index; kept tokens in each order's scan order, the mean
of the dropped tokens appended last; its output broadcast back to every dropped position).
state_dict keys equal the public code's (ge-xing/SegMamba-V2 brats23/models_segmamba/segmambav2.py).
Written from the spec, not from the public code.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from segmamba import Mamba, MlpChannel, UnetTail, tokens, untokens

# the three TriMamba scan orders as permutations of (B, C, a0, a1, a2); each is an involution
ORDERS = [(0, 1, 2, 3, 4), (0, 1, 3, 2, 4), (0, 1, 4, 3, 2)]


class TriMamba(nn.Module):
    """y = x + sum_p P_p^-1 Mamba(LN(P_p x)), one LN and one Mamba shared by the orders."""

    def __init__(self, d, keep=None):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.mamba = Mamba(d)
        self.keep = keep
        self.margin = None  # relative gap between the k-th and (k+1)-th score (test guard)

    def forward(self, x):
        if self.keep is None:
            out = x
            for p in ORDERS:
                xp = x.permute(p)
                out = out + untokens(self.mamba(self.norm(tokens(xp))), xp.shape).permute(p)
            return out
        return self._pruned(x)

    def _pruned(self, x):
        B, C = x.shape[:2]
        sp = x.shape[2:]
        L = sp.numel()
        t = tokens(x)                                                     # (B, L, C) raster
        k = min(L, max(1, int(math.floor(float(self.keep) * L))))
        out = t.clone()
        for b in range(B):
            s = t[b].norm(dim=-1)
            sh = (s - s.min()) / (s.max() - s.min() + 1e-6)
            srt, order = torch.sort(sh, descending=True, stable=True)
            if k < L:
                gap = float(srt[k - 1] - srt[k]) / max(float(srt[k - 1]), 1e-12)
                self.margin = gap if self.margin is None else min(self.margin, gap)
            kept = torch.zeros(L, dtype=torch.bool)
            kept[order[:k]] = True
            summ = t[b][~kept].mean(dim=0, keepdim=True) if k < L else None
            for p in ORDERS:
                # seq[q] = raster index of the q-th token of order p
                seq = torch.arange(L).reshape(sp).permute([i - 2 for i in p[2:]]).flatten()
                ks = seq[kept[seq]]
                toks = t[b][ks]
                if summ is not None:
                    toks = torch.cat([toks, summ], dim=0)
                y = self.mamba(self.norm(toks[None]))[0]
                o = y.new_empty(L, C)
                o[ks] = y[:k]
                if summ is not None:
                    o[~kept] = y[k]
                out[b] = out[b] + o
        return untokens(out, x.shape)


class ConvBlock(nn.Module):
    def __init__(self, c, k, p, dil=1):
        super().__init__()
        self.block = nn.Sequential(nn.Conv3d(c, c, k, padding=p, dilation=dil, bias=True))

    def forward(self, x):
        return F.relu(F.instance_norm(self.block[0](x), eps=1e-5))


class SE(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(c, c // 8), nn.ReLU(), nn.Linear(c // 8, c), nn.Sigmoid())

    def forward(self, x):
        g = self.fc(x.mean(dim=(2, 3, 4)))
        return x * g[:, :, None, None, None]


class LKConv(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.deep_path = nn.Sequential(ConvBlock(c, 5, 2), ConvBlock(c, 3, 1),
                                       ConvBlock(c, 3, 2, 2))
        self.shortcut_path = nn.Sequential(ConvBlock(c, 3, 1), ConvBlock(c, 1, 0))
        self.se = SE(c)

    def forward(self, x):
        return self.se(self.deep_path(x) + self.shortcut_path(x) + x)


class EncoderV2(nn.Module):
    def __init__(self, C, relocate, keeps, depth=2, mdepth=2):
        super().__init__()
        dims = [C, 2 * C, 4 * C, 8 * C]
        self.downsample_layers = nn.ModuleList([nn.Sequential(nn.Conv3d(C, C, 3, 2, 1))])
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(nn.Conv3d(dims[i], dims[i + 1], 3, 2, 1)))
        self.gscs = nn.ModuleList([nn.Sequential(*[LKConv(dims[i]) for _ in range(depth)])
                                   for i in range(4)])
        mstages = [0, 1] if relocate else [2, 3]
        stages = []
        for i in range(4):
            if i in mstages:
                kp = keeps[mstages.index(i)] if keeps else None
                stages.append(nn.Sequential(*[TriMamba(dims[i], kp) for _ in range(mdepth)]))
            else:
                stages.append(None)
        self.stages = nn.ModuleList(stages)
        self.mlps = nn.ModuleList([MlpChannel(dims[i], 2 * dims[i]) for i in range(4)])

    def forward(self, x):
        outs = []
        for i in range(4):
            x = self.downsample_layers[i](x)
            x = self.gscs[i](x)
            if self.stages[i] is not None:
                x = self.stages[i](x)
            outs.append(self.mlps[i](F.instance_norm(x, eps=1e-5)))
        return outs


class SegMambaV2(UnetTail):
    def __init__(self, in_ch=4, n_cls=4, C=48, relocate=False, keeps=None, depth=2, mdepth=2):
        super().__init__()
        feat = (C, 2 * C, 4 * C, 8 * C)
        self.vit = EncoderV2(C, relocate, keeps, depth, mdepth)
        self.add_tail(in_ch, feat, 16 * C, n_cls)

    def forward(self, x):
        enc1 = self.encoder1(x)
        return self.tail(enc1, self.vit(enc1))

    def prune_margin(self):
        m = [t.margin for t in self.modules() if isinstance(t, TriMamba) and t.margin is not None]
        return min(m) if m else None


def _floats(v):
    if isinstance(v, str):
        v = [t for t in v.strip("[]").split(",") if t]
    return [float(t) for t in v]


def _bool(v):
    return v if isinstance(v, bool) else str(v).lower() in ("1", "true")


DEFAULTS = {"in_ch": 4, "classes": 4, "size": 32, "C": 48, "relocate": False, "prune": [1.0, 1.0],
            "depth": 2, "mdepth": 2}


def build(params):
    """params: the graph's params.  prune = [K0, K1]; all 1.0 (the default) = no pruning."""
    keeps = _floats(params["prune"])
    if all(k == 1.0 for k in keeps):
        keeps = None
    return SegMambaV2(int(params["in_ch"]), int(params["classes"]), int(params["C"]),
                      _bool(params["relocate"]), keeps, int(params["depth"]),
                      int(params["mdepth"]))


def input_shape(params):
    s = int(params["size"])
    return (1, int(params["in_ch"]), s, s, s)
