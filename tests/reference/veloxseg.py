"""tests/reference/veloxseg.py -- independent PyTorch oracle for graphs/veloxseg.json.

Written from the VeloxSeg specification (/work/shared/models/m4fuse-veloxseg.md §3), not from
the public code or the graph: the PWA gather/scatter use explicit per-window loops (unfold
style), the relative position bias uses the (l,l) index buffer as the public code registers it
(persistent=False here, since the compiled engine recomputes it), PatchMerging uses the 8
strided sub-lattices.  state_dict keys = the public inference keys (252 tensors for AutoPET,
minus the 4 relative_position_index buffers).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class LNcf(nn.Module):
    """channels-first LayerNorm: per voxel over C, biased var, eps 1e-6"""

    def __init__(self, C, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C))
        self.bias = nn.Parameter(torch.zeros(C))
        self.eps = eps

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = ((x - u) ** 2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return x * self.weight[:, None, None, None] + self.bias[:, None, None, None]


def conv1(cin, cout, bias=True):
    return nn.Conv3d(cin, cout, 1, bias=bias)


def window_pairs(grid, win, r=2):
    out, B, S = [], list(win), [1, 1, 1]
    while any(b <= g for b, g in zip(B, grid)):
        out.append((list(B), list(S)))
        B, S = [b * r for b in B], [s * r for s in S]
    return out


class RelPos(nn.Module):
    def __init__(self, n, heads):
        super().__init__()
        R = (2 * n[0] - 1) * (2 * n[1] - 1) * (2 * n[2] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(R, heads))
        idx = torch.zeros(n[0] * n[1] * n[2], n[0] * n[1] * n[2], dtype=torch.long)
        toks = [(a, b, c) for a in range(n[0]) for b in range(n[1]) for c in range(n[2])]
        for i, (a0, a1, a2) in enumerate(toks):
            for j, (b0, b1, b2) in enumerate(toks):
                idx[i, j] = (((a0 - b0 + n[0] - 1) * (2 * n[1] - 1) + (a1 - b1 + n[1] - 1))
                             * (2 * n[2] - 1) + (a2 - b2 + n[2] - 1))
        self.register_buffer("relative_position_index", idx, persistent=False)

    def forward(self):
        l = self.relative_position_index.shape[0]
        b = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return b.reshape(l, l, -1).permute(2, 0, 1)  # (heads, l, l)


class PWA(nn.Module):
    def __init__(self, C, M, grid, win, heads, dqk):
        super().__init__()
        self.pairs = window_pairs(grid, win)
        self.nwin, self.heads, self.dqk, self.M, self.grid = len(self.pairs), heads, dqk, M, grid
        self.n = list(win)
        need = self.nwin * heads * dqk
        self.cqk, self.cv = need, math.ceil(C / need) * need
        self.input_norms = nn.ModuleList([LNcf(C) for _ in range(M)])
        self.qkv_proj = nn.ModuleList([nn.ModuleList([conv1(C, self.cqk), conv1(C, self.cqk),
                                                      conv1(C, self.cv)]) for _ in range(M)])
        self.mix_channels = nn.ModuleList([conv1(self.cv, C) for _ in range(M)])
        self.position_embedding = RelPos(self.n, heads)

    def gather(self, x, dim):
        """x (1, nwin*heads*dim, grid) -> (heads, W, l, dim), windows of all pairs"""
        out = []
        for i, (B, S) in enumerate(self.pairs):
            xi = x[0, i * self.heads * dim:(i + 1) * self.heads * dim]
            if max(S) > 1:
                xi = F.max_pool3d(xi[None], S, S)[0]
            xi = xi.reshape(self.heads, dim, *xi.shape[1:])
            G = xi.shape[2:]
            wins = []
            for I0 in range(G[0] // self.n[0]):
                for I1 in range(G[1] // self.n[1]):
                    for I2 in range(G[2] // self.n[2]):
                        w = xi[:, :, I0 * self.n[0]:(I0 + 1) * self.n[0],
                               I1 * self.n[1]:(I1 + 1) * self.n[1],
                               I2 * self.n[2]:(I2 + 1) * self.n[2]]
                        wins.append(w.reshape(self.heads, dim, -1).transpose(1, 2))
            out.append(torch.stack(wins, 1))
        return torch.cat(out, 1)

    def scatter(self, a, dim):
        """a (heads, W, l, dim) of one modality -> (1, nwin*heads*dim, grid)"""
        out, off = [], 0
        for B, S in self.pairs:
            Nw = [g // b for g, b in zip(self.grid, B)]
            y = a.new_zeros(self.heads, dim, *self.grid)
            k = off
            for I0 in range(Nw[0]):
                for I1 in range(Nw[1]):
                    for I2 in range(Nw[2]):
                        w = a[:, k].transpose(1, 2).reshape(self.heads, dim, *self.n)
                        if B != self.n:
                            w = F.interpolate(w, size=B, mode="trilinear", align_corners=True)
                        y[:, :, I0 * B[0]:(I0 + 1) * B[0], I1 * B[1]:(I1 + 1) * B[1],
                          I2 * B[2]:(I2 + 1) * B[2]] = w
                        k += 1
            off = k
            out.append(y.reshape(1, self.heads * dim, *self.grid))
        return torch.cat(out, 1)

    def forward(self, xs):
        l = self.n[0] * self.n[1] * self.n[2]
        qs, ks, vs = [], [], []
        dv = self.cv // (self.nwin * self.heads)
        for m, x in enumerate(xs):
            h = self.input_norms[m](x)
            qs.append(self.gather(self.qkv_proj[m][0](h), self.dqk))
            ks.append(self.gather(self.qkv_proj[m][1](h), self.dqk))
            vs.append(self.gather(self.qkv_proj[m][2](h), dv))
        q, k, v = torch.cat(qs, 2), torch.cat(ks, 2), torch.cat(vs, 2)
        s = torch.einsum("hwpc,hwqc->hwpq", q, k) / math.sqrt(self.dqk)
        s = s + self.position_embedding().repeat(1, self.M, self.M)[:, None]
        A = torch.einsum("hwpq,hwqc->hwpc", torch.softmax(s, -1), v)
        return [xs[m] + self.mix_channels[m](self.scatter(A[:, :, m * l:(m + 1) * l], dv))
                for m in range(self.M)]


class FFN(nn.Module):
    def __init__(self, C, e):
        super().__init__()
        self.linear1, self.linear2 = conv1(C, e * C), conv1(e * C, C)

    def forward(self, x):
        return self.linear2(F.gelu(self.linear1(x)))


class Block(nn.Module):
    def __init__(self, C, M, grid, win, heads, dqk, e):
        super().__init__()
        self.attn = PWA(C, M, grid, win, heads, dqk)
        self.norms = nn.ModuleList([LNcf(C) for _ in range(M)])
        self.ffns = nn.ModuleList([FFN(C, e) for _ in range(M)])

    def forward(self, xs):
        o = self.attn(xs)
        a = [x + y for x, y in zip(xs, o)]  # the code's double residual: 2x + mix
        return [t + f(n(t)) for t, n, f in zip(a, self.norms, self.ffns)]


class Merge(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.norm = LNcf(8 * C)
        self.reduction = conv1(8 * C, 2 * C, bias=False)

    def forward(self, x):
        parts = [x[:, :, a::2, b::2, c::2] for a in range(2) for b in range(2) for c in range(2)]
        return self.reduction(self.norm(torch.cat(parts, 1)))


class Stage(nn.Module):
    def __init__(self, C, M, grid, win, heads, dqk, e, down):
        super().__init__()
        self.blocks = nn.ModuleList([Block(C, M, grid, win, heads, dqk, e)])
        if down:
            self.downs = nn.ModuleList([Merge(C) for _ in range(M)])


class PatchEmbed(nn.Module):
    def __init__(self, cin, C):
        super().__init__()
        self.proj = nn.Conv3d(cin, C, 4, 4)


class EncoderAttn(nn.Module):
    def __init__(self, in_ch, base, grids, wins, heads, dqk, ffn):
        super().__init__()
        M = len(in_ch)
        self.patch_embeds = nn.ModuleList([PatchEmbed(c, base) for c in in_ch])
        self.layers = nn.ModuleList([Stage(base * 2 ** k, M, grids[k], wins[k], heads[k], dqk[k],
                                           ffn[k], k < 3) for k in range(4)])


class DownConv(nn.Module):
    def __init__(self, cin, cout, p):
        super().__init__()
        self.down = nn.Conv3d(cin, cout, 2 * p - 1, p, p - 1)

    def forward(self, x):
        return F.instance_norm(self.down(x), eps=1e-5)


class UpConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.up = nn.ConvTranspose3d(cin, cout, 2, 2)

    def forward(self, x):
        return F.instance_norm(self.up(x), eps=1e-5)


class JLC(nn.Module):
    def __init__(self, C, G, e):
        super().__init__()
        self.spatial_convs = nn.ModuleList([nn.Sequential(nn.Conv3d(C, C, k, 1, k // 2, groups=G))
                                            for k in (1, 3, 5)])
        self.channel_conv = nn.Sequential(nn.Identity(), nn.Conv3d(C, e * C, 1), nn.GELU(),
                                          nn.Conv3d(e * C, C, 1))

    def forward(self, x):
        y = x
        for sc in self.spatial_convs:
            y = y + F.gelu(F.instance_norm(sc(x), eps=1e-5))
        return y + self.channel_conv(F.instance_norm(y, eps=1e-5))


class EncoderConv(nn.Module):
    def __init__(self, cin, base, gw, ce):
        super().__init__()
        ch = [base * 2 ** k for k in range(4)]
        for k in range(4):
            setattr(self, "down%d" % (k + 1), DownConv(cin if k == 0 else ch[k - 1], ch[k],
                                                        4 if k == 0 else 2))
            setattr(self, "layer%d" % (k + 1), nn.ModuleList([JLC(ch[k], ch[k] // gw[k], ce[k])]))


class Encoder(nn.Module):
    def __init__(self, p):
        super().__init__()
        in_ch, base = p["in_ch"], p["base"]
        size = p["size"]
        grids = [[s // (4 * 2 ** k) for s in size] for k in range(4)]
        wins = [p["win1"], p["win2"], p["win3"], p["win4"]]
        self.M = len(in_ch)
        self.in_ch = in_ch
        self.encoder_attn = EncoderAttn(in_ch, base, grids, wins, p["heads"], p["dqk"], p["ffn"])
        self.encoder_conv = EncoderConv(sum(in_ch), base, p["group_width"], p["conv_exp"])
        for k in range(4):
            C = base * 2 ** k
            setattr(self, "attn2conv_%d" % (k + 1), nn.Sequential(conv1(self.M * C, C)))

    def forward(self, x):
        xs = torch.split(x, list(self.in_ch), 1)
        e = [pe.proj(xm) for pe, xm in zip(self.encoder_attn.patch_embeds, xs)]
        h = x
        for k in range(4):
            st = self.encoder_attn.layers[k]
            z = st.blocks[0](e)
            a = F.instance_norm(getattr(self, "attn2conv_%d" % (k + 1))(torch.cat(z, 1)), eps=1e-5)
            if k < 3:
                e = [d(t) for d, t in zip(st.downs, z)]
            ec = self.encoder_conv
            h = getattr(ec, "layer%d" % (k + 1))[0](getattr(ec, "down%d" % (k + 1))(h) + a)
            yield h


class Decoder(nn.Module):
    def __init__(self, base, classes, gw, ce):
        super().__init__()
        for k in (3, 2, 1):
            C = base * 2 ** (k - 1)
            setattr(self, "layer_up%d" % k, UpConv(2 * C, C))
            setattr(self, "layer%d" % k, nn.ModuleList([JLC(C, C // gw[k - 1], ce[k - 1])]))
        self.out_conv1 = nn.Sequential(nn.Conv3d(base, 64 * classes, 3, 1, 1))

    def forward(self, enc):
        u = enc[3]
        for k in (3, 2, 1):
            u = getattr(self, "layer%d" % k)[0](enc[k - 1] + getattr(self, "layer_up%d" % k)(u))
        y = self.out_conv1(u)
        N, C8, D, H, W = y.shape
        C = C8 // 64
        return y.reshape(N, C, 4, 4, 4, D, H, W).permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(
            N, C, 4 * D, 4 * H, 4 * W)


class VeloxSeg(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.encoder = Encoder(p)
        self.decoder = Decoder(p["base"], p["classes"], p["group_width"], p["conv_exp"])

    def forward(self, x):
        return self.decoder(list(self.encoder(x)))


DEFAULTS = {"size": [96, 96, 96], "in_ch": [1, 1], "classes": 2, "base": 16,
            "heads": [1, 2, 2, 4], "dqk": [4, 8, 8, 16], "win1": [3, 3, 3], "win2": [6, 6, 6],
            "win3": [3, 3, 3], "win4": [3, 3, 3], "ffn": [3, 3, 2, 2], "conv_exp": [3, 3, 2, 2],
            "group_width": [4, 8, 8, 16]}


def _list(v):
    if isinstance(v, str):
        return [int(t) for t in v.strip("[]").split(",")]
    return [int(t) for t in v] if isinstance(v, (list, tuple)) else [int(v)]


def build(params):
    p = dict(DEFAULTS)
    p.update(params)
    for k in ("size", "in_ch", "heads", "dqk", "win1", "win2", "win3", "win4", "ffn",
              "conv_exp", "group_width"):
        p[k] = _list(p[k])
    p["classes"], p["base"] = int(p["classes"]), int(p["base"])
    return VeloxSeg(p)


def input_shape(params):
    p = dict(DEFAULTS)
    p.update(params)
    return (1, sum(_list(p["in_ch"]))) + tuple(_list(p["size"]))
