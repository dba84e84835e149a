"""tests/reference/mamba_home.py -- independent PyTorch oracle for graphs/mamba_home.json.

Written from /work/shared/models/segmamba-home.md (sections 1.1, 1.2, 1.4, 1.8-1.10, 4 and op 27
of section 5.5), not from the public code and not generated from the graph.  Mamba-HoME as the
public code (gmum/MambaHoME) defines it: the code's routers and dynamic slots, not the paper's.
state_dict keys equal the public code's, e.g. mamba_encoder.moe_layers.0.0.mlp.norm.gamma.

    MambaHoME(in_ch=1, classes=13, feat=(48, 96, 192, 384), depths=(2, 2, 2, 2), hidden=768,
              experts=(4, 8, 12, 16), experts2=(8, 16, 24, 32),
              groups=(2048, 1024, 512, 256), slots=4, mult=2)

Run as a script: parameter count of the default model (built on the meta device).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

FLT_MAX = torch.finfo(torch.float32).max


# ---- 1.1 MONAI blocks (keys end in .conv.weight; InstanceNorm without affine) ----

class ConvW(nn.Module):
    """the MONAI Convolution wrapper: a child `conv`"""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        return self.conv(x)


def inorm(x):
    return F.instance_norm(x, eps=1e-5)


class UnetResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = ConvW(nn.Conv3d(cin, cout, 3, padding=1, bias=False))
        self.conv2 = ConvW(nn.Conv3d(cout, cout, 3, padding=1, bias=False))
        self.proj = cin != cout
        if self.proj:
            self.conv3 = ConvW(nn.Conv3d(cin, cout, 1, bias=False))

    def forward(self, x):
        o = F.leaky_relu(inorm(self.conv1(x)), 0.01)
        o = inorm(self.conv2(o))
        r = inorm(self.conv3(x)) if self.proj else x
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
        self.transp_conv = ConvW(nn.ConvTranspose3d(cin, cout, 2, stride=2, bias=False))
        self.conv_block = UnetResBlock(2 * cout, cout)

    def forward(self, x, skip):
        return self.conv_block(torch.cat([self.transp_conv(x), skip], dim=1))


class UnetOutBlock(nn.Module):
    def __init__(self, cin, n):
        super().__init__()
        self.conv = ConvW(nn.Conv3d(cin, n, 1, bias=True))

    def forward(self, x):
        return self.conv(x)


# ---- 1.2 GSC: the two branches are added (code), every conv followed by IN ----

class GSC(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.proj = nn.Conv3d(c, c, 3, padding=1)
        self.proj2 = nn.Conv3d(c, c, 3, padding=1)
        self.proj3 = nn.Conv3d(c, c, 1)
        self.proj4 = nn.Conv3d(c, c, 1)

    def forward(self, x):
        x1 = F.relu(inorm(self.proj2(F.relu(inorm(self.proj(x))))))
        x2 = F.relu(inorm(self.proj3(x)))
        return F.relu(inorm(self.proj4(x1 + x2))) + x


# ---- 1.8 DyT, RMSNorm (lucidrains), GEGLU FFN ----

class DyT(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.alpha = nn.Parameter(torch.full((1,), 0.5))
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        return self.weight * torch.tanh(self.alpha.clamp(0.1, 2.0) * x) + self.bias


class RMSNorm(nn.Module):
    """x / max(|x|_2, 1e-8) * sqrt(d) * gamma over the last dim"""

    def __init__(self, d):
        super().__init__()
        self.scale = math.sqrt(d)
        self.gamma = nn.Parameter(torch.ones(d))

    def forward(self, x):
        n = torch.sqrt((x * x).sum(-1, keepdim=True)).clamp_min(1e-8)
        return x / n * self.scale * self.gamma


class GEGLUFFN(nn.Module):
    """keys .0 (d -> 2h) and .3 (h -> d); a = first h outputs, g = last h"""

    def __init__(self, d, mult):
        super().__init__()
        self.h = int(d * mult * 2 / 3)
        self.l0 = nn.Linear(d, 2 * self.h)
        self.l3 = nn.Linear(self.h, d)

    def named_keys(self):
        return {"0": self.l0, "3": self.l3}

    def forward(self, v):
        ag = self.l0(v)
        a, g = ag[..., :self.h], ag[..., self.h:]
        return self.l3(a * F.gelu(g))


def ffn_state(module, prefix):
    """state_dict of a GEGLUFFN under the public keys prefix.{0,3}.{weight,bias}"""
    return {prefix + "%s.%s" % (i, p): getattr(lin, p)
            for i, lin in module.named_keys().items() for p in ("weight", "bias")}


class SlotEmbeds(nn.Module):
    """to_slot_embeds: .0 Linear(d, d * nslots, no bias), reshape (nslots, d), .2 RMSNorm"""

    def __init__(self, d, nslots):
        super().__init__()
        self.d, self.nslots = d, nslots
        self.lin = nn.Linear(d, d * nslots, bias=False)
        self.norm = RMSNorm(d)

    def forward(self, mu):
        s = self.lin(mu)
        return self.norm(s.reshape(*mu.shape[:-1], self.nslots, self.d))


# ---- 1.9 / 1.10 / op 27: the HoME layer ----

class HoME(nn.Module):
    def __init__(self, d, K, E, E2, S, mult):
        super().__init__()
        self.d, self.K, self.E, self.E2, self.S = d, K, E, E2, S
        self.norm = RMSNorm(d)
        self.slots1 = SlotEmbeds(d, E * S)
        self.experts_first = nn.ModuleList([GEGLUFFN(d, mult) for _ in range(E)])
        self.expert_gates = nn.Parameter(torch.ones(E))
        self.group_gate_mlp = nn.Linear(d, 1)
        self.norm2 = RMSNorm(d)
        self.slots2 = SlotEmbeds(d, E2)
        self.experts2 = nn.ModuleList([GEGLUFFN(d, mult) for _ in range(E2)])

    def public_state(self, p):
        sd = {p + "norm.gamma": self.norm.gamma,
              p + "to_slot_embeds.0.weight": self.slots1.lin.weight,
              p + "to_slot_embeds.2.gamma": self.slots1.norm.gamma,
              p + "expert_gates": self.expert_gates,
              p + "group_gate_mlp.weight": self.group_gate_mlp.weight,
              p + "group_gate_mlp.bias": self.group_gate_mlp.bias,
              p + "dynamic_slots_soft_moe.norm.gamma": self.norm2.gamma,
              p + "dynamic_slots_soft_moe.to_slot_embeds.0.weight": self.slots2.lin.weight,
              p + "dynamic_slots_soft_moe.to_slot_embeds.2.gamma": self.slots2.norm.gamma}
        for e, f in enumerate(self.experts_first):
            sd.update(ffn_state(f, p + "experts_first.%d." % e))
        for e, f in enumerate(self.experts2):
            sd.update(ffn_state(f, p + "dynamic_slots_soft_moe.experts.%d." % e))
        return sd

    def forward(self, t):
        B, N, d = t.shape
        K, E, S, E2 = self.K, self.E, self.S, self.E2
        M = E * S
        G = -(-N // K)
        # 1. zero padding to G*K tokens; valid = n < N
        x = torch.cat([t, t.new_zeros(B, G * K - N, d)], dim=1).reshape(B, G, K, d)
        valid = (torch.arange(G * K, device=t.device) < N).reshape(1, G, K)
        # 2. normalised tokens for the logits; group means of raw x, dividing by K (pads count)
        xn = self.norm(x)
        mu = x.sum(dim=2) / K                                   # [B,G,d]
        # 3. dynamic slot keys, feature index (e*S+s)*d+j
        sig = self.slots1(mu)                                   # [B,G,M,d]
        # 4. logits, -FLT_MAX on padded tokens, per-token softmax over the M slots
        lg = torch.einsum("bgkd,bgmd->bgkm", xn, sig)
        # (-FLT_MAX in float32/float64; bf16's lowest under autocast, where -FLT_MAX overflows:
        # a fully padded row is uniform either way)
        lg = lg.masked_fill(~valid[..., None], max(-FLT_MAX, torch.finfo(lg.dtype).min))
        A = lg.softmax(dim=-1)
        # 5. slots aggregate the raw tokens
        slots = torch.einsum("bgkm,bgkd->bgmd", A, x)
        # 6. router: clamped sigmoid group gate times a static per-expert scalar
        gg = torch.sigmoid(self.group_gate_mlp(mu)).clamp(0.01, 1.0)   # [B,G,1]
        # 7. first-level experts on their S slots of every group
        o1 = torch.empty_like(slots)
        for e in range(E):
            o1[:, :, e * S:(e + 1) * S] = (self.experts_first[e](slots[:, :, e * S:(e + 1) * S])
                                           * self.expert_gates[e])
        o1 = o1 * gg[..., None]
        # 8. level 2: Soft MoE with dynamic slots over the G*M slot outputs
        y = o1.reshape(B, G * M, d)
        n0 = G * M
        assert n0 % E2 == 0
        R = n0 // E2
        yn = self.norm2(y)
        seg = yn.reshape(B, R, E2, d).mean(dim=2)               # consecutive E2 tokens
        kap = self.slots2(seg)                                  # [B,R,E2,d], index e*d+j
        lam = torch.einsum("bqd,bred->bqer", yn, kap)           # [B,n0,E2,R]
        dsp = lam.softmax(dim=1)
        cmb = lam.reshape(B, n0, E2 * R).softmax(dim=-1)
        slot2 = torch.einsum("bqer,bqd->berd", dsp, yn)
        out2 = torch.stack([self.experts2[e](slot2[:, e]) for e in range(E2)], dim=1)
        o2 = torch.einsum("bqs,bsd->bqd", cmb, out2.reshape(B, E2 * R, d))
        # 9. back to tokens with the level-1 weights, crop to N
        out = torch.einsum("bgkm,bgmd->bgkd", A, o2.reshape(B, G, M, d))
        return out.reshape(B, G * K, d)[:, :N]


# ---- 1.4 upstream Mamba ----

class Mamba(nn.Module):
    def __init__(self, d, d_state=16, d_conv=4, expand=2):
        super().__init__()
        di = expand * d
        self.di, self.N, self.R = di, d_state, math.ceil(d / 16)
        self.in_proj = nn.Linear(d, 2 * di, bias=False)
        self.conv1d = nn.Conv1d(di, di, d_conv, groups=di, padding=d_conv - 1, bias=True)
        self.x_proj = nn.Linear(di, self.R + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.R, di, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1.0)).repeat(di, 1))
        self.D = nn.Parameter(torch.ones(di))
        self.out_proj = nn.Linear(di, d, bias=False)

    def forward(self, t):
        B, L, _ = t.shape
        xz = self.in_proj(t)
        x, z = xz[..., :self.di], xz[..., self.di:]
        u = F.silu(self.conv1d(x.transpose(1, 2))[..., :L]).transpose(1, 2)   # [B,L,di]
        dbc = self.x_proj(u)
        R, N = self.R, self.N
        dlow, Bm, Cm = dbc[..., :R], dbc[..., R:R + N], dbc[..., R + N:]
        delta = F.softplus(self.dt_proj(dlow), threshold=20)                    # [B,L,di]
        A = -torch.exp(self.A_log.double())
        dd, uu, BB, CC = delta.double(), u.double(), Bm.double(), Cm.double()
        h = torch.zeros(B, self.di, self.N, dtype=torch.float64)
        ys = []
        for i in range(L):
            h = (torch.exp(dd[:, i, :, None] * A) * h +
                 dd[:, i, :, None] * BB[:, i, None, :] * uu[:, i, :, None])
            ys.append((h * CC[:, i, None, :]).sum(-1) + self.D.double() * uu[:, i])
        y = torch.stack(ys, dim=1).to(u.dtype)
        return self.out_proj(y * F.silu(z))


class MambaBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.norm = DyT(d)
        self.mamba = Mamba(d)

    def forward(self, t):
        return t + self.mamba(self.norm(t))


class MoEBlock(nn.Module):
    """moe_layers.i.j: the HoME layer is its `.mlp`"""

    def __init__(self, *a):
        super().__init__()
        self.mlp = HoME(*a)


class Encoder(nn.Module):
    def __init__(self, in_ch, feat, depths, experts, experts2, groups, slots, mult):
        super().__init__()
        self.downsample_layers = nn.ModuleList()
        self.downsample_layers.append(nn.Sequential(nn.Conv3d(in_ch, feat[0], 7, 2, 3)))
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(
                nn.InstanceNorm3d(feat[i]), nn.Conv3d(feat[i], feat[i + 1], 2, 2)))
        self.gscs = nn.ModuleList([GSC(c) for c in feat])
        self.mamba_blocks = nn.ModuleList([nn.ModuleList([MambaBlock(feat[i])
                                                          for _ in range(depths[i])])
                                           for i in range(4)])
        self.norm_moe = nn.ModuleList([nn.ModuleList([DyT(feat[i]) for _ in range(depths[i])])
                                       for i in range(4)])
        self.moe_layers = nn.ModuleList([
            nn.ModuleList([MoEBlock(feat[i], groups[i], experts[i], experts2[i], slots, mult)
                           for _ in range(depths[i])]) for i in range(4)])

    def forward(self, x):
        outs = []
        for i in range(4):
            x = self.downsample_layers[i](x)
            x = self.gscs[i](x)
            B, C = x.shape[:2]
            sp = x.shape[2:]
            t = x.flatten(2).transpose(1, 2)                    # [B, L, C] raster order
            for j in range(len(self.mamba_blocks[i])):
                t = self.mamba_blocks[i][j](t)
                t = t + self.moe_layers[i][j].mlp(self.norm_moe[i][j](t))
            x = t.transpose(1, 2).reshape(B, C, *sp)
            outs.append(inorm(x))
        return outs


class MambaHoME(nn.Module):
    def __init__(self, in_ch=1, classes=13, feat=(48, 96, 192, 384), depths=(2, 2, 2, 2),
                 hidden=768, experts=(4, 8, 12, 16), experts2=(8, 16, 24, 32),
                 groups=(2048, 1024, 512, 256), slots=4, mult=2):
        super().__init__()
        self.mamba_encoder = Encoder(in_ch, feat, depths, experts, experts2, groups, slots, mult)
        self.encoder1 = UnetrBasicBlock(in_ch, feat[0])
        self.encoder2 = UnetrBasicBlock(feat[0], feat[1])
        self.encoder3 = UnetrBasicBlock(feat[1], feat[2])
        self.encoder4 = UnetrBasicBlock(feat[2], feat[3])
        self.encoder5 = UnetrBasicBlock(feat[3], hidden)
        self.decoder5 = UnetrUpBlock(hidden, feat[3])
        self.decoder4 = UnetrUpBlock(feat[3], feat[2])
        self.decoder3 = UnetrUpBlock(feat[2], feat[1])
        self.decoder2 = UnetrUpBlock(feat[1], feat[0])
        self.decoder1 = UnetrBasicBlock(feat[0], feat[0])
        self.out = UnetOutBlock(feat[0], classes)

    def public_state(self):
        """name -> parameter under the public code's state_dict keys"""
        sd = {}
        for k, v in self.named_parameters():
            if ".moe_layers." in k or k.startswith("moe"):
                continue
            sd[k] = v
        for i, layer in enumerate(self.mamba_encoder.moe_layers):
            for j, blk in enumerate(layer):
                sd.update(blk.mlp.public_state("mamba_encoder.moe_layers.%d.%d.mlp." % (i, j)))
        return sd

    def forward(self, x_in):
        outs = self.mamba_encoder(x_in)
        enc1 = self.encoder1(x_in)
        enc2 = self.encoder2(outs[0])
        enc3 = self.encoder3(outs[1])
        enc4 = self.encoder4(outs[2])
        hid = self.encoder5(outs[3])
        dec3 = self.decoder5(hid, enc4)
        dec2 = self.decoder4(dec3, enc3)
        dec1 = self.decoder3(dec2, enc2)
        dec0 = self.decoder2(dec1, enc1)
        return self.out(self.decoder1(dec0))


def param_count(**kw):
    """parameters of the public state_dict (builds the model: ~0.7 GB for the default)"""
    m = MambaHoME(**kw)
    return sum(p.numel() for p in m.public_state().values())


if __name__ == "__main__":
    print(param_count())
    print(param_count(in_ch=4, classes=4))


# ---- bench hooks (bench/bench_models.py, bench/bench_gpu.py; the model tests do not use them) ----

# the graph's params (graphs/mamba_home.json) that the reference takes
DEFAULTS = {"in_ch": 1, "classes": 13, "D": 128, "H": 128, "W": 128, "feat": [48, 96, 192, 384],
            "hidden": 768, "depths": [2, 2, 2, 2], "experts": [4, 8, 12, 16],
            "experts_second": [8, 16, 24, 32], "groups": [2048, 1024, 512, 256], "slots": 4,
            "expert_mult": 2}
# the CPU benchmark's configurations (label suffix, -D overrides): the public model (170 M
# parameters) at 32^3, which runs in well under a minute on 2 cores
BENCH_CONFIGS = [("", {"D": 32, "H": 32, "W": 32})]


def build(params):
    p = dict(DEFAULTS)
    p.update(params)
    ints = lambda v: tuple(int(e) for e in v)  # noqa: E731
    return MambaHoME(in_ch=int(p["in_ch"]), classes=int(p["classes"]), feat=ints(p["feat"]),
                     depths=ints(p["depths"]), hidden=int(p["hidden"]),
                     experts=ints(p["experts"]), experts2=ints(p["experts_second"]),
                     groups=ints(p["groups"]), slots=int(p["slots"]),
                     mult=int(p["expert_mult"]))


def input_shape(params):
    p = dict(DEFAULTS)
    p.update(params)
    return (1, int(p["in_ch"]), int(p["D"]), int(p["H"]), int(p["W"]))


def bench_weights(model, seed):
    """the graph's weights (public keys) -> float32 numpy: torch's initialisation (the caller
    seeded torch before build), which keeps the scan and the gates in their working range"""
    return {k: v.detach().float().numpy().copy() for k, v in model.public_state().items()}


def bench_load(model, sd):
    """loads public-key weights (numpy) into the model"""
    with torch.no_grad():
        for k, v in model.public_state().items():
            v.copy_(torch.from_numpy(sd[k]))
    return model
