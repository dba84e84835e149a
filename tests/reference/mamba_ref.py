"""tests/reference/mamba_ref.py -- PyTorch oracles for the SegMamba-family ops and Mamba modules.

Written from /work/shared/models/segmamba-home.md (sections 1.4-1.8, 5.4), not from public code:
  selective_scan_ref   the mamba_ssm recurrence in [B, di, L] layout, a plain loop over L
  causal_conv1d_ref    F.conv1d(groups=C, padding=k-1) truncated to L, optional SiLU
  Mamba                upstream mamba_ssm.Mamba with its exact state_dict keys; forward(x, order)
                       runs the sequence in a given order by explicit gather / inverse scatter
  MambaV3              SegMamba v1's bimamba v3 (flip and chunk/stack/flatten inter-slice)
  tri_orders           TriMamba's P1/P2/P3 as explicit torch permutes of the (a0,a1,a2) volume
  rms_norm_ref, rms_norm_l2_ref, dyt_ref, token_prune_ref, token_unpool_ref
  random_mamba_state   random weights with b_dt drawn as the spec recommends (1.4, last paragraph)
Token layout everywhere: [B, L, C], L in raster order of the volume.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def softplus20(x):
    return torch.where(x <= 20, torch.log1p(torch.exp(torch.clamp(x, max=20))), x)


def selective_scan_ref(u, delta, A, B, C, D, z=None, delta_bias=None, softplus=True):
    """u, delta, z [B, di, L]; A [di, N]; B, C [B, N, L]; D, delta_bias [di] -> y [B, di, L]
    (gated by silu(z) when z is given)."""
    u, delta = u.double(), delta.double()
    if delta_bias is not None:
        delta = delta + delta_bias.double()[None, :, None]
    if softplus:
        delta = softplus20(delta)
    A, B, C = A.double(), B.double(), C.double()
    nb, di, L = u.shape
    h = torch.zeros(nb, di, A.shape[1], dtype=torch.float64)
    ys = []
    for t in range(L):
        dA = torch.exp(delta[:, :, t, None] * A[None])
        h = dA * h + delta[:, :, t, None] * B[:, None, :, t] * u[:, :, t, None]
        ys.append((h * C[:, None, :, t]).sum(-1))
    y = torch.stack(ys, -1) + D.double()[None, :, None] * u
    if z is not None:
        y = y * F.silu(z.double())
    return y.float()


def causal_conv1d_ref(x, w, b, act=True):
    """x [B, C, L], w [C, 1, k], b [C] -> [B, C, L]"""
    k = w.shape[-1]
    y = F.conv1d(x, w, b, padding=k - 1, groups=x.shape[1])[..., : x.shape[-1]]
    return F.silu(y) if act else y


# ---- orders: a LongTensor pos with pos[q] = token visited at step q ----

def order_forward(L):
    return torch.arange(L)


def order_flip(L):
    return torch.arange(L).flip(0)


def order_interleave(L, ns):
    """v1 inter-slice: stack(chunk(ns), -1).flatten(-2) applied to the token indices"""
    idx = torch.arange(L)[None]
    return torch.stack(idx.chunk(ns, dim=-1), dim=-1).flatten(-2)[0]


def tri_orders(a0, a1, a2):
    """TriMamba P1, P2, P3 via the rearranges b c d w h -> (d w h), (w d h), (h w d)"""
    vol = torch.arange(a0 * a1 * a2).reshape(a0, a1, a2)
    return [vol.reshape(-1), vol.permute(1, 0, 2).reshape(-1), vol.permute(2, 1, 0).reshape(-1)]


def in_order(x, pos):
    """[B, L, C] tokens -> the sequence in scan order"""
    return x[:, pos]


def from_order(y, pos):
    out = torch.empty_like(y)
    out[:, pos] = y
    return out


class Mamba(nn.Module):
    """upstream mamba_ssm.Mamba (spec 1.4), bias=False, conv_bias=True"""

    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, dt_rank=None):
        super().__init__()
        self.d_model, self.d_state = d_model, d_state
        self.d_inner = expand * d_model
        self.dt_rank = dt_rank or math.ceil(d_model / 16)
        di, R, N = self.d_inner, self.dt_rank, d_state
        self.in_proj = nn.Linear(d_model, 2 * di, bias=False)
        self.conv1d = nn.Conv1d(di, di, d_conv, groups=di, padding=d_conv - 1, bias=True)
        self.x_proj = nn.Linear(di, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, di, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1).float()).repeat(di, 1))
        self.D = nn.Parameter(torch.ones(di))
        self.out_proj = nn.Linear(di, d_model, bias=False)

    def inner(self, x, z, conv, x_proj, dt_proj, A_log, D, gate=True):
        """x, z [B, di, L] in scan order -> y [B, di, L] (gated or pre-gate)"""
        R, N = self.dt_rank, self.d_state
        u = causal_conv1d_ref(x, conv.weight, conv.bias)
        xdbl = x_proj(u.transpose(1, 2))                       # [B, L, R+2N]
        dt, Bm, Cm = torch.split(xdbl, [R, N, N], dim=-1)
        delta = (dt @ dt_proj.weight.t()).transpose(1, 2)      # bias applied in the scan
        return selective_scan_ref(u, delta, -torch.exp(A_log.float()), Bm.transpose(1, 2),
                                  Cm.transpose(1, 2), D, z if gate else None,
                                  dt_proj.bias, True)

    def forward(self, x, pos=None):
        """x [B, L, d]; pos: scan order (token visited at each step), default forward"""
        if pos is not None:
            x = in_order(x, pos)
        xz = self.in_proj(x).transpose(1, 2)
        xs, zs = xz.chunk(2, dim=1)
        y = self.inner(xs, zs, self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D)
        out = self.out_proj(y.transpose(1, 2))
        return from_order(out, pos) if pos is not None else out


class MambaV3(Mamba):
    """SegMamba v1 bimamba v3 (spec 1.5): forward, flipped and inter-slice orders"""

    def __init__(self, d_model, nslices, **kw):
        super().__init__(d_model, **kw)
        self.nslices = nslices
        di, R, N, k = self.d_inner, self.dt_rank, self.d_state, self.conv1d.weight.shape[-1]
        for s in ("_b", "_s"):
            setattr(self, "conv1d" + s, nn.Conv1d(di, di, k, groups=di, padding=k - 1))
            setattr(self, "x_proj" + s, nn.Linear(di, R + 2 * N, bias=False))
            setattr(self, "dt_proj" + s, nn.Linear(R, di, bias=True))
            setattr(self, "A%s_log" % s, nn.Parameter(self.A_log.detach().clone()))
            setattr(self, "D" + s, nn.Parameter(torch.ones(di)))

    def forward(self, x):
        xz = self.in_proj(x).transpose(1, 2)                   # [B, 2di, L]
        L, ns = xz.shape[-1], self.nslices
        xs, zs = xz.chunk(2, dim=1)
        o_f = self.inner(xs, zs, self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D)
        xzb = xz.flip(-1)
        xb, zb = xzb.chunk(2, dim=1)
        o_b = self.inner(xb, zb, self.conv1d_b, self.x_proj_b, self.dt_proj_b, self.A_b_log,
                         self.D_b).flip(-1)
        xzs = torch.stack(xz.chunk(ns, dim=-1), dim=-1).flatten(-2)
        xs_, zs_ = xzs.chunk(2, dim=1)
        o_s = self.inner(xs_, zs_, self.conv1d_s, self.x_proj_s, self.dt_proj_s, self.A_s_log,
                         self.D_s)
        o_s = o_s.reshape(o_s.shape[0], o_s.shape[1], L // ns, ns).permute(0, 1, 3, 2).flatten(-2)
        return self.out_proj((o_f + o_b + o_s).transpose(1, 2))


def tri_mamba(m, x, vol):
    """sum over TriMamba's three orders of the shared Mamba m, mapped back (no LN, no residual)"""
    return sum(m(x, pos) for pos in tri_orders(*vol))


def random_mamba_state(module, gen, scale=0.6):
    """random weights; A_log around log(1..16), D around 1, dt_proj.bias = softplus^-1(dt) with dt
    log-uniform in [1e-3, 0.1] (spec 1.4), so the recurrence neither vanishes nor saturates;
    LayerNorm weights around 1"""
    sd = {}
    for k, v in module.state_dict().items():
        leaf = k.split(".")[-1]
        if leaf.endswith("_log"):
            n = v.shape[1]
            sd[k] = torch.log(torch.arange(1, n + 1).float()).repeat(v.shape[0], 1) + \
                0.1 * torch.randn(v.shape, generator=gen)
        elif leaf.startswith("D"):
            sd[k] = 1 + 0.2 * torch.randn(v.shape, generator=gen)
        elif "dt_proj" in k and leaf == "bias":
            dt = torch.exp(torch.rand(v.shape, generator=gen) *
                           (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)).clamp(min=1e-4)
            sd[k] = dt + torch.log(-torch.expm1(-dt))
        elif "dt_proj" in k:
            sd[k] = torch.randn(v.shape, generator=gen) * v.shape[1] ** -0.5
        elif "norm" in k:
            sd[k] = (1 if leaf == "weight" else 0) + 0.2 * torch.randn(v.shape, generator=gen)
        else:
            sd[k] = torch.randn(v.shape, generator=gen) * scale / math.sqrt(v.shape[-1])
    module.load_state_dict(sd)
    return {k: v.detach().clone() for k, v in sd.items()}


# ---- norms ----

def rms_norm_ref(x, w, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rms_norm_l2_ref(x, gamma, eps=1e-8):
    return F.normalize(x, dim=-1, eps=eps) * math.sqrt(x.shape[-1]) * gamma


def dyt_ref(x, alpha, w, b, clamp=True):
    a = alpha.clamp(0.1, 2.0) if clamp else alpha
    return w * torch.tanh(a * x) + b


# ---- token pruning (spec 5.4, op 21 and 22, defaults of section 9) ----

def token_score_ref(x, eps=1e-6):
    s = x.norm(dim=-1)
    mn, mx = s.min(1, keepdim=True)[0], s.max(1, keepdim=True)[0]
    return (s - mn) / (mx - mn + eps)


def token_prune_ref(x, keep, pos=None, summary="mean", eps=1e-6):
    """x [B, L, C] -> (rows [B, n, C], idx [B, n]) with the kept tokens in the order pos
    (default raster) and the summary last; idx holds raster token indices, -1 for the summary"""
    nb, L, C = x.shape
    k = max(1, min(L, int(math.floor(keep * L))))
    s = token_score_ref(x, eps)
    order = torch.sort(s, dim=1, descending=True, stable=True)[1][:, :k]
    rank = torch.empty(L, dtype=torch.long)
    rank[pos if pos is not None else torch.arange(L)] = torch.arange(L)
    rows, idxs = [], []
    for b in range(nb):
        kept = order[b][torch.argsort(rank[order[b]])]
        r, ix = [x[b, kept]], [kept.float()]
        if k < L:
            mask = torch.ones(L, dtype=torch.bool)
            mask[kept] = False
            if summary == "mean":
                r.append(x[b, mask].mean(0, keepdim=True))
            else:
                w = s[b, mask]
                r.append((w[:, None] * x[b, mask]).sum(0, keepdim=True) / w.sum().clamp(min=eps))
            ix.append(torch.tensor([-1.0]))
        rows.append(torch.cat(r))
        idxs.append(torch.cat(ix))
    return torch.stack(rows), torch.stack(idxs)


def token_unpool_ref(y, idx, L):
    nb, n, C = y.shape
    out = torch.zeros(nb, L, C)
    for b in range(nb):
        if idx[b, -1] < 0:
            out[b] = y[b, -1]
        for r in range(n):
            if idx[b, r] >= 0:
                out[b, int(idx[b, r])] = y[b, r]
    return out


class TriMambaLayer(nn.Module):
    """SegMamba-V2 MambaLayer (spec 1.6) with optional l2 pruning (5.4): x [B, C, a0, a1, a2]"""

    def __init__(self, dim, keep=None):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mamba = Mamba(dim)
        self.keep = keep

    def forward(self, x):
        nb, c, a0, a1, a2 = x.shape
        tok = x.reshape(nb, c, -1).transpose(1, 2)
        out = 0
        for pos in tri_orders(a0, a1, a2):
            if self.keep is None:
                out = out + self.mamba(self.norm(tok), pos)
            else:
                rows, idx = token_prune_ref(tok, self.keep, pos)
                out = out + token_unpool_ref(self.mamba(self.norm(rows)), idx, tok.shape[1])
        return x + out.transpose(1, 2).reshape(x.shape)
