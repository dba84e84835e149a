"""tests/reference/unet3d.py -- independent PyTorch oracle for graphs/unet3d.json.

Written from the architecture description (MONAI UnetResBlock / UnetUpBlock / UnetOutBlock
semantics), not generated from the graph.  state_dict keys equal the graph's weight names:
enc{0,1,2}.*, bottleneck.*, up{0,1,2}.{transp_conv,conv_block.*}, head.{weight,bias}.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class ResBlock(nn.Module):
    """MONAI UnetResBlock: conv-norm-lrelu-conv-norm (+ projected residual) -> lrelu."""

    def __init__(self, cin, cout, stride=1, eps=1e-5, slope=0.01):
        super().__init__()
        self.slope = slope
        self.conv1 = nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.InstanceNorm3d(cout, eps=eps, affine=True)
        self.conv2 = nn.Conv3d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.norm2 = nn.InstanceNorm3d(cout, eps=eps, affine=True)
        self.project = cin != cout or stride != 1
        if self.project:
            self.conv3 = nn.Conv3d(cin, cout, 1, stride=stride, padding=0, bias=False)
            self.norm3 = nn.InstanceNorm3d(cout, eps=eps, affine=True)

    def forward(self, x):
        y = F.leaky_relu(self.norm1(self.conv1(x)), self.slope)
        y = self.norm2(self.conv2(y))
        r = self.norm3(self.conv3(x)) if self.project else x
        return F.leaky_relu(y + r, self.slope)


class UpBlock(nn.Module):
    """MONAI UnetUpBlock: transposed conv k2 s2 (no bias), concat [up, skip], res block."""

    def __init__(self, cin, cout, cskip, eps=1e-5, slope=0.01):
        super().__init__()
        self.transp_conv = nn.ConvTranspose3d(cin, cout, 2, stride=2, bias=False)
        self.conv_block = ResBlock(cout + cskip, cout, 1, eps, slope)

    def forward(self, x, skip):
        return self.conv_block(torch.cat([self.transp_conv(x), skip], dim=1))


class UNet3D(nn.Module):
    def __init__(self, in_ch=4, classes=4, C=16, norm_eps=1e-5):
        super().__init__()
        self.enc0 = ResBlock(in_ch, C, 1, norm_eps)
        self.enc1 = ResBlock(C, 2 * C, 2, norm_eps)
        self.enc2 = ResBlock(2 * C, 4 * C, 2, norm_eps)
        self.bottleneck = ResBlock(4 * C, 8 * C, 2, norm_eps)
        self.up0 = UpBlock(8 * C, 4 * C, 4 * C, norm_eps)
        self.up1 = UpBlock(4 * C, 2 * C, 2 * C, norm_eps)
        self.up2 = UpBlock(2 * C, C, C, norm_eps)
        self.head = nn.Conv3d(C, classes, 1, bias=True)

    def forward(self, x):
        e0 = self.enc0(x)
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        y = self.bottleneck(e2)
        y = self.up0(y, e2)
        y = self.up1(y, e1)
        y = self.up2(y, e0)
        return self.head(y)


def build(params):
    """params: the graph's params (defaults merged with -D overrides)."""
    return UNet3D(int(params["in_ch"]), int(params["classes"]), int(params["C"]),
        float(params["norm_eps"]))


DEFAULTS = {"in_ch": 4, "classes": 4, "C": 16, "size": 32, "norm_eps": 1e-5}


def input_shape(params):
    s = int(params["size"])
    return (1, int(params["in_ch"]), s, s, s)
