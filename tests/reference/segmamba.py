"""tests/reference/segmamba.py -- independent PyTorch oracle for graphs/segmamba.json (SegMamba v1).

Written from /work/shared/models/segmamba-home.md (sections 1.1-1.5, 2, 10), not from the public
code.  state_dict keys equal the public code's (ge-xing/SegMamba model_segmamba/segmamba.py):
vit.downsample_layers.*, vit.gscs.i.proj{,2,3,4}.*, vit.stages.i.j.{norm,mamba}.*,
vit.mlps.i.fc{1,2}.*, encoder1..5.layer.conv{1,2,3}.conv.weight,
decoder5..2.transp_conv.conv.weight,
decoder5..2.conv_block.conv{1,2,3}.conv.weight, decoder1.layer.*, out.conv.conv.{weight,bias}.

The shared pieces (the selective scan, upstream and "v3" Mamba, MONAI UnetResBlock / UnetrUpBlock /
UnetOutBlock, MlpChannel) are used by tests/reference/segmamba_v2.py too.  The scan is a plain
loop over the sequence (run the model in float64 for the oracle); small inputs only.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

D_STATE = 16
D_CONV = 4


# ---- Mamba (spec 1.4, 1.5) ----

def selective_scan(u, delta, A, Bm, Cm, D, delta_bias, z=None):
    """u, delta, z: (B, di, L); A: (di, N); Bm, Cm: (B, N, L); D, delta_bias: (di).
    delta = softplus(delta + delta_bias) (threshold 20); h_t = exp(delta_t A) h_{t-1} +
    delta_t B_t u_t; y_t = C_t . h_t + D u_t; y * silu(z) when z is given."""
    delta = F.softplus(delta + delta_bias[None, :, None], beta=1, threshold=20)
    dA = torch.exp(delta.unsqueeze(-1) * A[None, :, None, :])              # (B, di, L, N)
    dBu = (delta * u).unsqueeze(-1) * Bm.transpose(1, 2)[:, None, :, :]    # (B, di, L, N)
    Ct = Cm.transpose(1, 2)                                                # (B, L, N)
    h = torch.zeros(u.shape[0], u.shape[1], A.shape[1], dtype=u.dtype)
    ys = []
    for t in range(u.shape[2]):
        h = dA[:, :, t] * h + dBu[:, :, t]
        ys.append(torch.einsum("bdn,bn->bd", h, Ct[:, t]))
    y = torch.stack(ys, dim=-1) + D[None, :, None] * u
    if z is not None:
        y = y * F.silu(z)
    return y


def _make_order(m, d_inner, dt_rank, suffix):
    conv = nn.Conv1d(d_inner, d_inner, D_CONV, groups=d_inner, padding=D_CONV - 1, bias=True)
    xp = nn.Linear(d_inner, dt_rank + 2 * D_STATE, bias=False)
    dtp = nn.Linear(dt_rank, d_inner, bias=True)
    a = torch.log(torch.arange(1, D_STATE + 1, dtype=torch.float32)).repeat(d_inner, 1)
    if suffix == "":
        setattr(m, "conv1d", conv)
        setattr(m, "x_proj", xp)
        setattr(m, "dt_proj", dtp)
        setattr(m, "A_log", nn.Parameter(a))
        setattr(m, "D", nn.Parameter(torch.ones(d_inner)))
    else:
        setattr(m, "A%s_log" % suffix, nn.Parameter(a))
        setattr(m, "conv1d" + suffix, conv)
        setattr(m, "x_proj" + suffix, xp)
        setattr(m, "dt_proj" + suffix, dtp)
        setattr(m, "D" + suffix, nn.Parameter(torch.ones(d_inner)))


class Mamba(nn.Module):
    """mamba_ssm.Mamba(d, 16, 4, 2); v3=True adds the backward ('_b') and inter-slice ('_s')
    parameter sets of SegMamba's vendored bimamba_type="v3" (shared in_proj / out_proj)."""

    def __init__(self, d, v3=False, nslices=None):
        super().__init__()
        self.d_inner = 2 * d
        self.dt_rank = math.ceil(d / 16)
        self.v3, self.nslices = v3, nslices
        self.in_proj = nn.Linear(d, 2 * self.d_inner, bias=False)
        _make_order(self, self.d_inner, self.dt_rank, "")
        if v3:
            _make_order(self, self.d_inner, self.dt_rank, "_b")
            _make_order(self, self.d_inner, self.dt_rank, "_s")
        self.out_proj = nn.Linear(self.d_inner, d, bias=False)

    def _order(self, xz, sfx):
        """mamba_inner_fn_no_out_proj on xz (B, 2di, L): y * silu(z), (B, di, L)."""
        if sfx == "":
            conv, xp, dtp, alog, D = self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D
        else:
            conv, xp, dtp = getattr(self, "conv1d" + sfx), getattr(self, "x_proj" + sfx), \
                getattr(self, "dt_proj" + sfx)
            alog, D = getattr(self, "A%s_log" % sfx), getattr(self, "D" + sfx)
        L = xz.shape[-1]
        x, z = xz.chunk(2, dim=1)
        u = F.silu(conv(x)[..., :L])
        dbl = F.linear(u.transpose(1, 2), xp.weight)                     # (B, L, R + 2N)
        dt, Bm, Cm = torch.split(dbl, [self.dt_rank, D_STATE, D_STATE], dim=-1)
        delta = F.linear(dt, dtp.weight).transpose(1, 2)                 # (B, di, L)
        return selective_scan(u, delta, -torch.exp(alog), Bm.transpose(1, 2),
                              Cm.transpose(1, 2), D, dtp.bias, z)

    def forward(self, t):
        """t: (B, L, d) -> (B, L, d)."""
        B, L, _ = t.shape
        xz = self.in_proj(t).transpose(1, 2)                             # (B, 2di, L)
        y = self._order(xz, "")
        if self.v3:
            y = y + self._order(xz.flip(-1), "_b").flip(-1)
            ns = self.nslices
            if L % ns != 0:
                raise ValueError("nslices %d does not divide L = %d" % (ns, L))
            xs = torch.stack(xz.chunk(ns, dim=-1), dim=-1).flatten(-2)
            ys = self._order(xs, "_s")
            y = y + ys.reshape(B, self.d_inner, L // ns, ns).permute(0, 1, 3, 2).flatten(-2)
        return self.out_proj(y.transpose(1, 2))


def tokens(x):
    """NCDHW -> (B, L, C), raster order."""
    return x.flatten(2).transpose(1, 2)


def untokens(t, shape):
    return t.transpose(1, 2).reshape(shape)


class MambaLayerV1(nn.Module):
    """SegMamba v1 MambaLayer: x + untok(v3Mamba(LN(tok(x))))."""

    def __init__(self, d, nslices):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.mamba = Mamba(d, v3=True, nslices=nslices)

    def forward(self, x):
        return x + untokens(self.mamba(self.norm(tokens(x))), x.shape)


# ---- MONAI blocks (spec 1.1) ----

class ConvW(nn.Module):
    """MONAI Convolution wrapper: the conv is the child `conv` (keys end in .conv.weight)."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        return self.conv(x)


class UnetResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = ConvW(nn.Conv3d(cin, cout, 3, 1, 1, bias=False))
        self.conv2 = ConvW(nn.Conv3d(cout, cout, 3, 1, 1, bias=False))
        self.down = cin != cout
        if self.down:
            self.conv3 = ConvW(nn.Conv3d(cin, cout, 1, 1, 0, bias=False))

    def forward(self, x):
        o = F.leaky_relu(F.instance_norm(self.conv1(x), eps=1e-5), 0.01)
        o = F.instance_norm(self.conv2(o), eps=1e-5)
        r = F.instance_norm(self.conv3(x), eps=1e-5) if self.down else x
        return F.leaky_relu(o + r, 0.01)


class UnetrBasicBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.layer = UnetResBlock(cin, cout)

    def forward(self, x):
        return self.layer(x)


class UnetrUpBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.transp_conv = ConvW(nn.ConvTranspose3d(cin, cout, 2, 2, bias=False))
        self.conv_block = UnetResBlock(2 * cout, cout)

    def forward(self, x, skip):
        return self.conv_block(torch.cat((self.transp_conv(x), skip), dim=1))


class UnetOutBlock(nn.Module):
    def __init__(self, cin, n):
        super().__init__()
        self.conv = ConvW(nn.Conv3d(cin, n, 1, bias=True))

    def forward(self, x):
        return self.conv(x)


class MlpChannel(nn.Module):
    def __init__(self, c, h):
        super().__init__()
        self.fc1 = nn.Conv3d(c, h, 1)
        self.fc2 = nn.Conv3d(h, c, 1)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class UnetTail(nn.Module):
    """encoder1..5, decoder5..1, out: the UNETR part shared by v1 and V2 (spec 2, rows 9-19)."""

    def add_tail(self, cin_enc1, feat, hidden, n_cls):
        self.encoder1 = UnetrBasicBlock(cin_enc1, feat[0])
        self.encoder2 = UnetrBasicBlock(feat[0], feat[1])
        self.encoder3 = UnetrBasicBlock(feat[1], feat[2])
        self.encoder4 = UnetrBasicBlock(feat[2], feat[3])
        self.encoder5 = UnetrBasicBlock(feat[3], hidden)
        self.decoder5 = UnetrUpBlock(hidden, feat[3])
        self.decoder4 = UnetrUpBlock(feat[3], feat[2])
        self.decoder3 = UnetrUpBlock(feat[2], feat[1])
        self.decoder2 = UnetrUpBlock(feat[1], feat[0])
        self.decoder1 = UnetrBasicBlock(feat[0], feat[0])
        self.out = UnetOutBlock(feat[0], n_cls)

    def tail(self, enc1, outs):
        enc2 = self.encoder2(outs[0])
        enc3 = self.encoder3(outs[1])
        enc4 = self.encoder4(outs[2])
        hid = self.encoder5(outs[3])
        d = self.decoder5(hid, enc4)
        d = self.decoder4(d, enc3)
        d = self.decoder3(d, enc2)
        d = self.decoder2(d, enc1)
        return self.out(self.decoder1(d))


# ---- SegMamba v1 (spec 1.2, 1.3, 2) ----

class GSC(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.proj = nn.Conv3d(c, c, 3, 1, 1)
        self.proj2 = nn.Conv3d(c, c, 3, 1, 1)
        self.proj3 = nn.Conv3d(c, c, 1, 1, 0)
        self.proj4 = nn.Conv3d(c, c, 1, 1, 0)

    def forward(self, x):
        inr = lambda t: F.relu(F.instance_norm(t, eps=1e-5))
        x1 = inr(self.proj2(inr(self.proj(x))))
        x2 = inr(self.proj3(x))
        return inr(self.proj4(x1 + x2)) + x


class EncoderV1(nn.Module):
    def __init__(self, in_ch, dims, depths, nslices):
        super().__init__()
        self.downsample_layers = nn.ModuleList()
        self.downsample_layers.append(nn.Sequential(nn.Conv3d(in_ch, dims[0], 7, 2, 3)))
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(
                nn.InstanceNorm3d(dims[i]), nn.Conv3d(dims[i], dims[i + 1], 2, 2)))
        self.gscs = nn.ModuleList([GSC(dims[i]) for i in range(4)])
        self.stages = nn.ModuleList([
            nn.Sequential(*[MambaLayerV1(dims[i], nslices[i]) for _ in range(depths[i])])
            for i in range(4)])
        self.mlps = nn.ModuleList([MlpChannel(dims[i], 2 * dims[i]) for i in range(4)])

    def forward(self, x):
        outs = []
        for i in range(4):
            x = self.downsample_layers[i](x)
            x = self.gscs[i](x)
            x = self.stages[i](x)
            outs.append(self.mlps[i](F.instance_norm(x, eps=1e-5)))
        return outs


class SegMambaV1(UnetTail):
    def __init__(self, in_ch=4, n_cls=4, feat=(48, 96, 192, 384), hidden=768, depths=(2, 2, 2, 2),
                 nslices=(64, 32, 16, 8)):
        super().__init__()
        self.vit = EncoderV1(in_ch, feat, depths, nslices)
        self.add_tail(in_ch, feat, hidden, n_cls)

    def forward(self, x):
        outs = self.vit(x)
        return self.tail(self.encoder1(x), outs)


def _ints(v):
    if isinstance(v, str):
        v = [t for t in v.strip("[]").split(",") if t]
    return [int(t) for t in v]


DEFAULTS = {"in_ch": 4, "classes": 4, "size": 32, "C": 48, "hidden": 0, "depth": 2,
            "nslices": [0, 0, 0, 0]}


def build(params):
    """params: the graph's params (defaults merged with -D overrides).  nslices entries <= 0
    mean "the stage's depth extent" (size / 2**(i+1)); hidden 0 means 16 C."""
    C, s = int(params["C"]), int(params["size"])
    ns = _ints(params["nslices"])
    ns = [n if n > 0 else s >> (i + 1) for i, n in enumerate(ns)]
    d = int(params["depth"])
    hidden = int(params.get("hidden", 0)) or 16 * C
    return SegMambaV1(int(params["in_ch"]), int(params["classes"]), (C, 2 * C, 4 * C, 8 * C),
                      hidden, (d, d, d, d), ns)


def input_shape(params):
    s = int(params["size"])
    return (1, int(params["in_ch"]), s, s, s)
