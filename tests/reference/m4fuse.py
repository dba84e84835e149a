"""tests/reference/m4fuse.py -- independent PyTorch oracle for graphs/m4fuse.json.

Written from /work/shared/models/m4fuse-veloxseg.md (sections 2.2-2.7, 9) and the Mamba math of
segmamba-home.md section 1.4, not from the public code or from the graph.  state_dict keys equal
the public model's (and the graph's weight names): enc{1,2,3}, ebn{1..5}, ex{4,5,6}.shared.*,
ex{4,5,6}.experts.{m}.*, fbb.satt.conv.0.weight, fbb.catt.*, dec{1..5}, dbn{1..5}, final.

The model takes x (N, 4, D, H, W) and route (N,) int64: the per-sample domain label that picks
one expert of every PEU.  A label outside [0, M) raises IndexError, as the public model does.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

SIZES = {"T": 16, "S": 24, "B": 32, "L": 48}          # C1; c_list = C1 * (1, 2, 3, 4, 6, 8)
SIZE_INDEX = {"T": 0, "S": 1, "B": 2, "L": 3}           # index of the size choice (graphs/m4fuse.json -D size=T|S|B|L)


def c_list(size):
    b = SIZES[size]
    return [b * k for k in (1, 2, 3, 4, 6, 8)]


class Mamba(nn.Module):
    """Upstream mamba_ssm.Mamba (d_state 16, d_conv 4, expand 2), slow path in float math."""

    def __init__(self, d, d_state=16, d_conv=4, expand=2):
        super().__init__()
        di = expand * d
        self.di, self.ns, self.R = di, d_state, math.ceil(d / 16)
        self.in_proj = nn.Linear(d, 2 * di, bias=False)
        self.conv1d = nn.Conv1d(di, di, d_conv, groups=di, padding=d_conv - 1, bias=True)
        self.x_proj = nn.Linear(di, self.R + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.R, di, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32))
                                  .repeat(di, 1))
        self.D = nn.Parameter(torch.ones(di))
        self.out_proj = nn.Linear(di, d, bias=False)

    def forward(self, t):                       # t: (B, L, d)
        B, L, _ = t.shape
        xz = self.in_proj(t)
        x, z = xz[..., :self.di], xz[..., self.di:]
        u = self.conv1d(x.transpose(1, 2))[..., :L].transpose(1, 2)
        u = F.silu(u)                            # (B, L, di)
        dbc = self.x_proj(u)
        dlow = dbc[..., :self.R]
        Bm = dbc[..., self.R:self.R + self.ns]
        Cm = dbc[..., self.R + self.ns:]
        delta = F.softplus(self.dt_proj(dlow))   # threshold 20 (default)
        A = -torch.exp(self.A_log)               # (di, ns)
        h = torch.zeros(B, self.di, self.ns, dtype=t.dtype)
        ys = []
        for k in range(L):
            dk = delta[:, k, :, None]            # (B, di, 1)
            h = torch.exp(dk * A) * h + dk * Bm[:, k, None, :] * u[:, k, :, None]
            ys.append((h * Cm[:, k, None, :]).sum(-1))
        y = torch.stack(ys, 1) + self.D * u
        return self.out_proj(y * F.silu(z))


class PetaloMixer(nn.Module):
    """LN -> 4 channel groups through one shared Mamba (+ skip_scale * group) -> same LN -> Linear."""

    def __init__(self, cin, cout):
        super().__init__()
        assert cin % 4 == 0
        self.norm = nn.LayerNorm(cin)
        self.mamba = Mamba(cin // 4)
        self.proj = nn.Linear(cin, cout)
        self.skip_scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        N, C = x.shape[:2]
        sp = x.shape[2:]
        t = x.reshape(N, C, -1).transpose(1, 2)  # (N, L, C), raster order
        t = self.norm(t)
        outs = [self.mamba(p) + self.skip_scale * p for p in torch.chunk(t, 4, dim=2)]
        t = self.norm(torch.cat(outs, dim=2))
        t = self.proj(t)
        return t.transpose(1, 2).reshape(N, -1, *sp)


class PEU(nn.Module):
    def __init__(self, cin, cout, M):
        super().__init__()
        self.shared = PetaloMixer(cin, cout)
        self.experts = nn.ModuleList(PetaloMixer(cin, cout) for _ in range(M))

    def forward(self, x, route):
        outs = []
        for n in range(x.shape[0]):
            r = int(route[n])
            if r < 0 or r >= len(self.experts):
                raise IndexError("route %d outside [0, %d)" % (r, len(self.experts)))
            xn = x[n:n + 1]
            outs.append(self.shared(xn) + self.experts[r](xn))
        return torch.cat(outs, 0)


class SpatialGate(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv3d(2, 1, 7, padding=3, bias=False))

    def forward(self, t):
        s = torch.cat([t.mean(1, keepdim=True), t.amax(1, keepdim=True)], 1)
        return torch.sigmoid(self.conv(s))


class ChannelGate(nn.Module):
    def __init__(self, cs):
        super().__init__()
        self.get_all_att = nn.Conv1d(1, 1, 3, padding=1, bias=False)
        self.att_layers = nn.ModuleList(nn.Linear(sum(cs), c) for c in cs)

    def forward(self, us):
        g = torch.cat([u.mean((2, 3, 4)) for u in us], 1)      # (N, C_sum)
        g = self.get_all_att(g[:, None, :])[:, 0, :]
        return [torch.sigmoid(lin(g)) for lin in self.att_layers]


class CSBridge(nn.Module):
    def __init__(self, cs):
        super().__init__()
        self.satt = SpatialGate()
        self.catt = ChannelGate(cs)

    def forward(self, ts):
        sas = [self.satt(t) for t in ts]
        us = [t * sa for t, sa in zip(ts, sas)]
        cas = self.catt(us)
        return [u + u * ca[:, :, None, None, None] + t for u, ca, t in zip(us, cas, ts)]


class M4Fuse(nn.Module):
    def __init__(self, size="B", M=1, in_ch=4, classes=4, cl=None):
        super().__init__()
        c = cl or c_list(size)
        self.enc1 = nn.Conv3d(in_ch, c[0], 3, padding=1)
        self.enc2 = nn.Conv3d(c[0], c[1], 3, padding=1)
        self.enc3 = nn.Conv3d(c[1], c[2], 3, padding=1)
        self.ex4 = PEU(c[2], c[3], M)
        self.ex5 = PEU(c[3], c[4], M)
        self.ex6 = PEU(c[4], c[5], M)
        self.fbb = CSBridge(c[:5])
        self.dec1 = PetaloMixer(c[5], c[4])
        self.dec2 = PetaloMixer(c[4], c[3])
        self.dec3 = PetaloMixer(c[3], c[2])
        self.dec4 = nn.Conv3d(c[2], c[1], 3, padding=1)
        self.dec5 = nn.Conv3d(c[1], c[0], 3, padding=1)
        self.final = nn.Conv3d(c[0], classes, 1)
        for i, ch in enumerate(c[:5]):
            setattr(self, "ebn%d" % (i + 1), nn.GroupNorm(4, ch))
        for i, ch in enumerate([c[4], c[3], c[2], c[1], c[0]]):
            setattr(self, "dbn%d" % (i + 1), nn.GroupNorm(4, ch))

    def forward(self, x, route):
        g = F.gelu
        t1 = g(self.ebn1(self.enc1(x)))
        t2 = g(self.ebn2(self.enc2(F.max_pool3d(t1, 2))))
        t3 = g(self.ebn3(self.enc3(F.max_pool3d(t2, 2))))
        t4 = g(self.ebn4(self.ex4(F.max_pool3d(t3, 2), route)))
        t5 = g(self.ebn5(self.ex5(F.max_pool3d(t4, 2), route)))
        b1, b2, b3, b4, b5 = self.fbb([t1, t2, t3, t4, t5])
        b = g(self.ex6(t5, route))

        def up(d, like):
            return F.interpolate(d, size=like.shape[2:], mode="trilinear", align_corners=True)

        d = g(self.dbn1(self.dec1(b))) + b5
        d = g(self.dbn2(self.dec2(up(d, t4)))) + b4
        d = g(self.dbn3(self.dec3(up(d, t3)))) + b3
        d = g(self.dbn4(self.dec4(up(d, t2)))) + b2
        d = g(self.dbn5(self.dec5(up(d, t1)))) + b1
        return self.final(d)


def randomize(model, gen):
    """Random weights that keep the scan in its working range (segmamba-home.md 1.4)."""
    sd = {}
    for k, v in model.state_dict().items():
        if k.endswith("A_log"):
            w = torch.log(torch.rand(v.shape, generator=gen) * 15 + 1)
        elif k.endswith("dt_proj.bias"):
            dt = torch.exp(torch.rand(v.shape, generator=gen) * (math.log(0.1) - math.log(1e-3))
                           + math.log(1e-3))
            w = dt + torch.log(-torch.expm1(-dt))
        elif k.endswith("skip_scale") or k.endswith(".D"):
            w = 1 + 0.2 * torch.randn(v.shape, generator=gen)
        elif k.endswith("norm.weight") or "bn" in k.split(".")[0] and k.endswith("weight"):
            w = 1 + 0.2 * torch.randn(v.shape, generator=gen)
        else:
            fan = max(1, v[0].numel()) if v.dim() > 1 else max(1, v.numel())
            w = torch.randn(v.shape, generator=gen) / math.sqrt(fan)
        sd[k] = w.to(v.dtype)
    model.load_state_dict(sd)
    return model


def param_count(model):
    return sum(p.numel() for p in model.parameters())


# ---- bench hooks (bench/bench_models.py, bench/bench_gpu.py; the model tests do not use them) ----

# the graph's params (graphs/m4fuse.json) that the reference takes
DEFAULTS = {"size": "B", "experts": 1, "batch": 1, "in_ch": 4, "classes": 4, "D": 64, "H": 128,
            "W": 128}
# the CPU benchmark's configurations (label suffix, -D overrides): sizes T and S, two experts,
# batch 2 routed to different experts
BENCH_CONFIGS = [("-T", {"size": "T", "experts": 2, "batch": 2, "D": 32, "H": 64, "W": 64}),
                 ("-S", {"size": "S", "experts": 2, "batch": 2, "D": 32, "H": 64, "W": 64})]


def build(params):
    p = dict(DEFAULTS)
    p.update(params)
    return M4Fuse(p["size"], int(p["experts"]), int(p["in_ch"]), int(p["classes"]))


def input_shape(params):
    p = dict(DEFAULTS)
    p.update(params)
    return (int(p["batch"]), int(p["in_ch"]), int(p["D"]), int(p["H"]), int(p["W"]))


def bench_weights(model, seed):
    """the graph's weights -> float32 numpy, loaded into the model too (randomize)"""
    randomize(model, torch.Generator().manual_seed(seed))
    return {k: v.detach().float().numpy().copy() for k, v in model.state_dict().items()}


def bench_inputs(params, x):
    """the graph's inputs after x: route, sample i to expert i mod M"""
    p = dict(DEFAULTS)
    p.update(params)
    import numpy as np
    return [("route", np.arange(int(p["batch"]), dtype=np.int64) % int(p["experts"]))]
