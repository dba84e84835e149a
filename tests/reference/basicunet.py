"""tests/reference/basicunet.py -- independent PyTorch oracle for graphs/basicunet.json.

Written from the BasicUNet description in m4fuse-veloxseg.md §4.2 (MONAI BasicUNet semantics:
TwoConv = 2 x (3^3 conv + bias -> InstanceNorm(affine) -> LeakyReLU 0.1), Down = MaxPool 2 +
TwoConv, UpCat = ConvTranspose k2 s2 -> cat([skip, up]) -> TwoConv, 1^3 head), without MONAI.
state_dict keys = MONAI's: conv_0.conv_{0,1}.{conv,adn.N}.*, down_k.convs.*,
upcat_k.upsample.deconv.*, upcat_k.convs.*, final_conv.*.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class ADN(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.N = nn.InstanceNorm3d(C, affine=True)

    def forward(self, x):
        return F.leaky_relu(self.N(x), 0.1)


class CNA(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, 1, 1)
        self.adn = ADN(cout)

    def forward(self, x):
        return self.adn(self.conv(x))


class TwoConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv_0 = CNA(cin, cout)
        self.conv_1 = CNA(cout, cout)

    def forward(self, x):
        return self.conv_1(self.conv_0(x))


class Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.convs = TwoConv(cin, cout)

    def forward(self, x):
        return self.convs(F.max_pool3d(x, 2))


class Deconv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.deconv = nn.ConvTranspose3d(cin, cout, 2, 2)


class UpCat(nn.Module):
    def __init__(self, cin, ccat, cout, halves=True):
        super().__init__()
        cup = cin // 2 if halves else cin
        self.upsample = Deconv(cin, cup)
        self.convs = TwoConv(ccat + cup, cout)

    def forward(self, x, skip):
        return self.convs(torch.cat([skip, self.upsample.deconv(x)], 1))


class BasicUNet(nn.Module):
    def __init__(self, in_ch=4, classes=4, fea=(32, 32, 64, 128, 256, 32)):
        super().__init__()
        self.conv_0 = TwoConv(in_ch, fea[0])
        self.down_1 = Down(fea[0], fea[1])
        self.down_2 = Down(fea[1], fea[2])
        self.down_3 = Down(fea[2], fea[3])
        self.down_4 = Down(fea[3], fea[4])
        self.upcat_4 = UpCat(fea[4], fea[3], fea[3])
        self.upcat_3 = UpCat(fea[3], fea[2], fea[2])
        self.upcat_2 = UpCat(fea[2], fea[1], fea[1])
        self.upcat_1 = UpCat(fea[1], fea[0], fea[5], halves=False)
        self.final_conv = nn.Conv3d(fea[5], classes, 1)

    def forward(self, x):
        x0 = self.conv_0(x)
        x1 = self.down_1(x0)
        x2 = self.down_2(x1)
        x3 = self.down_3(x2)
        x4 = self.down_4(x3)
        u = self.upcat_4(x4, x3)
        u = self.upcat_3(u, x2)
        u = self.upcat_2(u, x1)
        u = self.upcat_1(u, x0)
        return self.final_conv(u)


DEFAULTS = {"in_ch": 4, "classes": 4, "features": [32, 32, 64, 128, 256, 32],
            "size": [128, 128, 128]}


def _list(v):
    if isinstance(v, str):
        return [int(t) for t in v.strip("[]").split(",")]
    return [int(t) for t in v]


def build(params):
    p = dict(DEFAULTS)
    p.update(params)
    return BasicUNet(int(p["in_ch"]), int(p["classes"]), _list(p["features"]))


def input_shape(params):
    p = dict(DEFAULTS)
    p.update(params)
    return (1, int(p["in_ch"])) + tuple(_list(p["size"]))
