"""tests/reference/tiny.py -- independent PyTorch oracle for graphs/tiny.json.

stem conv (bias) -> instance norm (affine) -> relu = a -> conv2 (no bias) -> instance norm
(affine) -> + a -> relu -> 1x1x1 head (bias).
"""
import torch.nn as nn
import torch.nn.functional as F


class Tiny(nn.Module):
    def __init__(self, in_ch=2, C=8, classes=3, norm_eps=1e-5):
        super().__init__()
        self.stem = nn.Conv3d(in_ch, C, 3, padding=1, bias=True)
        self.norm = nn.InstanceNorm3d(C, eps=norm_eps, affine=True)
        self.conv2 = nn.Conv3d(C, C, 3, padding=1, bias=False)
        self.norm2 = nn.InstanceNorm3d(C, eps=norm_eps, affine=True)
        self.head = nn.Conv3d(C, classes, 1, bias=True)

    def forward(self, x):
        a = F.relu(self.norm(self.stem(x)))
        y = F.relu(self.norm2(self.conv2(a)) + a)
        return self.head(y)


def build(params):
    return Tiny(int(params["in_ch"]), int(params["C"]), int(params["classes"]),
        float(params["norm_eps"]))


DEFAULTS = {"in_ch": 2, "C": 8, "classes": 3, "size": 16, "norm_eps": 1e-5}


def input_shape(params):
    s = int(params["size"])
    return (1, int(params["in_ch"]), s, s, s)
