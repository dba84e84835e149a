"""tests/reference/segresnet.py -- independent PyTorch oracle for graphs/segresnet.json.

Written from the SegResNet description in m4fuse-veloxseg.md §4.1 (MONAI SegResNet semantics:
GroupNorm(8) -> ReLU -> 3^3 conv (no bias) residual blocks, stride-2 3^3 down convs, 1^3 conv +
trilinear x2 (align_corners=False) up path, GN -> ReLU -> 1^3 conv head), without MONAI.
state_dict keys = MONAI's: convInit.conv.*, down_layers.i.0.conv.* (i >= 1), down_layers.i.j.*
(j >= 1), up_samples.i.0.conv.*, up_layers.i.j.*, conv_final.{0,2.conv}.*.
"""
import torch.nn as nn
import torch.nn.functional as F


class ConvOnly(nn.Module):
    def __init__(self, cin, cout, k=3, stride=1, bias=False):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, k, stride, k // 2, bias=bias)

    def forward(self, x):
        return self.conv(x)


class ResBlock(nn.Module):
    def __init__(self, C, groups=8):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, C)
        self.conv1 = ConvOnly(C, C)
        self.norm2 = nn.GroupNorm(groups, C)
        self.conv2 = ConvOnly(C, C)

    def forward(self, x):
        y = self.conv1(F.relu(self.norm1(x)))
        return self.conv2(F.relu(self.norm2(y))) + x


class Up(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.add_module("0", ConvOnly(C, C // 2, 1))

    def forward(self, x):
        return F.interpolate(getattr(self, "0")(x), scale_factor=2, mode="trilinear",
                             align_corners=False)


class SegResNet(nn.Module):
    def __init__(self, in_ch=4, classes=4, F0=32, groups=8, blocks_down=(1, 2, 2, 4),
                 blocks_up=(1, 1, 1)):
        super().__init__()
        self.convInit = ConvOnly(in_ch, F0)
        self.down_layers = nn.ModuleList()
        for i, nb in enumerate(blocks_down):
            C = F0 * 2 ** i
            pre = ConvOnly(C // 2, C, 3, 2) if i else nn.Identity()
            self.down_layers.append(nn.Sequential(pre, *[ResBlock(C, groups) for _ in range(nb)]))
        n = len(blocks_down)
        self.up_samples = nn.ModuleList([Up(F0 * 2 ** (n - 1 - i)) for i in range(len(blocks_up))])
        self.up_layers = nn.ModuleList([
            nn.Sequential(*[ResBlock(F0 * 2 ** (n - 2 - i), groups) for _ in range(nb)])
            for i, nb in enumerate(blocks_up)])
        self.conv_final = nn.Sequential(nn.GroupNorm(groups, F0), nn.ReLU(),
                                        ConvOnly(F0, classes, 1, bias=True))

    def forward(self, x):
        x = self.convInit(x)
        skips = []
        for d in self.down_layers:
            x = d(x)
            skips.append(x)
        for i, (up, ul) in enumerate(zip(self.up_samples, self.up_layers)):
            x = ul(up(x) + skips[-2 - i])
        return self.conv_final(x)


DEFAULTS = {"in_ch": 4, "classes": 4, "F": 32, "groups": 8, "size": [128, 128, 128],
            "blocks_down": [1, 2, 2, 4], "blocks_up": [1, 1, 1]}


def _list(v):
    if isinstance(v, str):
        return [int(t) for t in v.strip("[]").split(",")]
    return [int(t) for t in v]


def build(params):
    p = dict(DEFAULTS)
    p.update(params)
    return SegResNet(int(p["in_ch"]), int(p["classes"]), int(p["F"]), int(p["groups"]),
                     _list(p["blocks_down"]), _list(p["blocks_up"]))


def input_shape(params):
    p = dict(DEFAULTS)
    p.update(params)
    return (1, int(p["in_ch"])) + tuple(_list(p["size"]))
