#!/usr/bin/env python3
"""tests/reference/gen_velox_graphs.py -- writes graphs/veloxseg.json, graphs/lib/velox_blocks.json,
graphs/segresnet.json and graphs/basicunet.json (the shipped files are its output; edit here and
re-run, then run tests/models/test_veloxseg.py and test_baselines.py).  Module and node names
spell the public state_dict keys (m4fuse-veloxseg.md sections 3.7 and 4)."""
import os
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
import json
from collections import OrderedDict as OD

def node(name, op, inp, attrs=None, out=None, when=None):
    d = OD()
    if name: d["name"] = name
    d["op"] = op
    d["in"] = inp
    if attrs: d["attrs"] = attrs
    if out: d["out"] = out
    if when: d["when"] = when
    return d

def call(name, module, inp, args, out=None, when=None):
    d = OD([("name", name), ("module", module), ("in", inp), ("args", args)])
    if out: d["out"] = out
    if when: d["when"] = when
    return d

def conv(name, x, cout, k=1, s=1, p=0, g=1, bias=True, out=None):
    a = OD([("cout", cout), ("kernel", k)])
    if s != 1: a["stride"] = s
    if p: a["pad"] = p
    if g != 1: a["groups"] = g
    if not bias: a["bias"] = False
    return node(name, "conv3d", [x], a, out=out)

modules = OD()
modules["ln_cf"] = OD([
    ("description", "VeloxSeg channels-first LayerNorm: per voxel over C, biased var, eps 1e-6"),
    ("params", OD([("C", None), ("eps", 1e-6)])),
    ("inputs", ["x"]),
    ("body", [
        node("weight", "weight", [], {"shape": ["C"]}),
        node("bias", "weight", [], {"shape": ["C"]}),
        node(None, "moments", ["x"], {"axes": [1], "eps": "eps"}, out=["mu", "rs"]),
        node(None, "sub", ["x", "mu"], out="xc"),
        node(None, "mul", ["xc", "rs"], out="xn"),
        node(None, "reshape", ["weight"], {"shape": ["C", 1, 1, 1]}, out="w4"),
        node(None, "reshape", ["bias"], {"shape": ["C", 1, 1, 1]}, out="b4"),
        node(None, "mul", ["xn", "w4"], out="xw"),
        node(None, "add", ["xw", "b4"], out="y"),
    ]),
    ("outputs", ["y"])])

modules["merge"] = OD([
    ("description", "PatchMerging: space-to-depth 2 (channel k*C+c, k = 4a+2b+c) -> LN(8C) -> 1^3 conv 8C->2C, no bias"),
    ("params", OD([("C", None), ("g", None)])),
    ("inputs", ["x"]),
    ("body", [
        node(None, "reshape", ["x"], {"shape": [1, "C", "g[0] // 2", 2, "g[1] // 2", 2, "g[2] // 2", 2]}, out="x8"),
        node(None, "permute", ["x8"], {"perm": [0, 3, 5, 7, 1, 2, 4, 6]}, out="xp"),
        node(None, "reshape", ["xp"], {"shape": [1, "8 * C", "g[0] // 2", "g[1] // 2", "g[2] // 2"]}, out="xs"),
        call("norm", "ln_cf", ["xs"], {"C": "8 * C"}, out="xn"),
        conv("reduction", "xn", "2 * C", bias=False, out="y"),
    ]),
    ("outputs", ["y"])])

modules["down_conv"] = OD([
    ("description", "DownConv: Conv3d(k, s, p, bias) -> InstanceNorm (affine=False)"),
    ("params", OD([("cout", None), ("k", 3), ("s", 2), ("p", 1)])),
    ("inputs", ["x"]),
    ("body", [conv("down", "x", "cout", "k", "s", "p", out="c"),
              node(None, "instance_norm", ["c"], out="y")]),
    ("outputs", ["y"])])

modules["up_conv"] = OD([
    ("description", "UpConv: ConvTranspose3d(k2, s2, bias) -> InstanceNorm (affine=False)"),
    ("params", OD([("cout", None)])),
    ("inputs", ["x"]),
    ("body", [node("up", "conv_transpose3d", ["x"], {"cout": "cout", "kernel": 2, "stride": 2}, out="c"),
              node(None, "instance_norm", ["c"], out="y")]),
    ("outputs", ["y"])])

jb = []
for i, k in enumerate((1, 3, 5)):
    jb += [conv("spatial_convs.%d.0" % i, "x", "C", k, 1, k // 2, "G", out="c%d" % i),
           node(None, "instance_norm", ["c%d" % i], out="n%d" % i),
           node(None, "gelu", ["n%d" % i], out="g%d" % i)]
jb += [node(None, "add", ["x", "g0"], out="s0"), node(None, "add", ["s0", "g1"], out="s1"),
       node(None, "add", ["s1", "g2"], out="y"),
       node(None, "instance_norm", ["y"], out="yn"),
       conv("channel_conv.1", "yn", "e * C", out="h"),
       node(None, "gelu", ["h"], out="hg"),
       conv("channel_conv.3", "hg", "C", out="h2"),
       node(None, "add", ["y", "h2"], out="out")]
modules["jlc"] = OD([
    ("description", "JLC: y = x + sum_k GELU(IN(grouped conv k^3 (k = 1,3,5), groups G)); out = y + 1^3(GELU(1^3(IN(y))))"),
    ("params", OD([("C", None), ("G", None), ("e", None)])),
    ("inputs", ["x"]), ("body", jb), ("outputs", ["out"])])

NWIN = " + ".join("(%s)" % " or ".join("%d * win[%d] <= g[%d]" % (2 ** i, a, a) for a in range(3))
                  for i in range(8))

def pwa_block(M):
    b = []
    for m in range(M):
        x = "x%d" % m
        b += [call("attn.input_norms.%d" % m, "ln_cf", [x], {"C": "C"}, out="n%d" % m),
              conv("attn.qkv_proj.%d.0" % m, "n%d" % m, "cqk", out="q%d" % m),
              conv("attn.qkv_proj.%d.1" % m, "n%d" % m, "cqk", out="k%d" % m),
              conv("attn.qkv_proj.%d.2" % m, "n%d" % m, "cv", out="v%d" % m)]
    ga = OD([("heads", "heads"), ("window", "win")])
    b += [node(None, "pwa_gather", ["q%d" % m for m in range(M)], ga, out="q"),
          node(None, "pwa_gather", ["k%d" % m for m in range(M)], ga, out="k"),
          node(None, "pwa_gather", ["v%d" % m for m in range(M)], ga, out="v"),
          node(None, "permute", ["k"], {"perm": [0, 1, 2, 4, 3]}, out="kt"),
          node(None, "matmul", ["q", "kt"], out="s0"),
          node(None, "constant", [], {"value": "dqk ** -0.5"}, out="scale"),
          node(None, "mul", ["s0", "scale"], out="s1"),
          node("attn.position_embedding", "pwa_rel_bias", [], OD([("heads", "heads"), ("window", "win"), ("reps", M)]), out="pe"),
          node(None, "add", ["s1", "pe"], out="s2"),
          node(None, "softmax", ["s2"], {"axis": -1}, out="p"),
          node(None, "matmul", ["p", "v"], out="a")]
    for m in range(M):
        x = "x%d" % m
        b += [node(None, "pwa_scatter", ["a"], OD([("grid", "g"), ("window", "win"), ("modality", m)]), out="y%d" % m),
              conv("attn.mix_channels.%d" % m, "y%d" % m, "C", out="mx%d" % m),
              node(None, "add", [x, "mx%d" % m], out="o%d" % m),
              node(None, "add", [x, "o%d" % m], out="a%d" % m),
              call("norms.%d" % m, "ln_cf", ["a%d" % m], {"C": "C"}, out="t%d" % m),
              conv("ffns.%d.linear1" % m, "t%d" % m, "e * C", out="f%d" % m),
              node(None, "gelu", ["f%d" % m], out="fg%d" % m),
              conv("ffns.%d.linear2" % m, "fg%d" % m, "C", out="f2%d" % m),
              node(None, "add", ["a%d" % m, "f2%d" % m], out="z%d" % m)]
    return OD([
        ("description", "Paired_Windows_TransformerBlock over %d modalit%s: PWA (LN, 1^3 q/k/v, paired-window gather, "
         "one batched attention with the stage's relative position bias, per-window trilinear scatter, 1^3 mix, "
         "double residual 2x + mix) then LN -> FFN (1^3, GELU, 1^3) + residual" % (M, "y" if M == 1 else "ies")),
        ("params", OD([("C", None), ("heads", None), ("dqk", None), ("win", None), ("g", None), ("e", None),
                       ("nwin", NWIN), ("cqk", "nwin * heads * dqk"),
                       ("cv", "(C + cqk - 1) // cqk * cqk")])),
        ("inputs", ["x%d" % m for m in range(M)]), ("body", b),
        ("outputs", ["z%d" % m for m in range(M)])])

modules["pwa_block_m1"] = pwa_block(1)
modules["pwa_block_m2"] = pwa_block(2)

lib = OD([("format", "segc-graph/1"),
          ("description", "VeloxSeg building blocks (JinPLu/VeloxSeg model/): channels-first LN, PatchMerging, "
           "DownConv, UpConv, JLC, the paired-window transformer block for 1 and 2 modalities"),
          ("modules", modules)])
json.dump(lib, open(ROOT + "/graphs/lib/velox_blocks.json", "w"), indent=1)

# ---- top level ----
P = OD([("size", [96, 96, 96]), ("in_ch", [1, 1]), ("M", "len(in_ch)"), ("classes", 2), ("base", 16),
        ("heads", [1, 2, 2, 4]), ("dqk", [4, 8, 8, 16]),
        ("win1", [3, 3, 3]), ("win2", [6, 6, 6]), ("win3", [3, 3, 3]), ("win4", [3, 3, 3]),
        ("ffn", [3, 3, 2, 2]), ("conv_exp", [3, 3, 2, 2]), ("group_width", [4, 8, 8, 16])])
for k in range(4):
    f = 4 * 2 ** k
    P["g%d" % (k + 1)] = "[size[0] // %d, size[1] // %d, size[2] // %d]" % (f, f, f)
body = []
body.append(node(None, "slice", ["x"], {"axis": 1, "start": 0, "end": "in_ch[0]"}, out="xm0"))
body.append(node(None, "slice", ["x"], {"axis": 1, "start": "in_ch[0]", "end": "in_ch[0] + in_ch[M - 1]"}, out="xm1", when="M == 2"))
for m in range(2):
    n = node("encoder.encoder_attn.patch_embeds.%d.proj" % m, "conv3d", ["xm%d" % m],
             OD([("cout", "base"), ("kernel", 4), ("stride", 4)]), out="e%d" % m)
    if m: n["when"] = "M == 2"
    body.append(n)
ea = "encoder.encoder_attn.layers.%d"
for k in range(4):
    C = "base * %d" % 2 ** k
    args = OD([("C", C), ("heads", "heads[%d]" % k), ("dqk", "dqk[%d]" % k), ("win", "win%d" % (k + 1)),
               ("g", "g%d" % (k + 1)), ("e", "ffn[%d]" % k)])
    body.append(call(ea % k + ".blocks.0", "pwa_block_m2", ["e0", "e1"], args, out=["z0", "z1"], when="M == 2"))
    body.append(call(ea % k + ".blocks.0", "pwa_block_m1", ["z0"], args, out=["z0"], when="M == 1"))
    body.append(node(None, "concat", ["z0", "z1"], {"axis": 1}, out="zc", when="M == 2"))
    body.append(conv("encoder.attn2conv_%d.0" % (k + 1), "zc", C, out="ac"))
    body.append(node(None, "instance_norm", ["ac"], out="a%d" % (k + 1)))
    if k < 3:
        for m in range(2):
            c = call(ea % k + ".downs.%d" % m, "merge", ["z%d" % m], OD([("C", C), ("g", "g%d" % (k + 1))]), out="e%d" % m)
            if m: c["when"] = "M == 2"
            body.append(c)
h = "x"
for k in range(4):
    C = "base * %d" % 2 ** k
    a = OD([("cout", C)]) if k else OD([("cout", C), ("k", 7), ("s", 4), ("p", 3)])
    body.append(call("encoder.encoder_conv.down%d" % (k + 1), "down_conv", [h], a, out="d%d" % (k + 1)))
    body.append(node(None, "add", ["d%d" % (k + 1), "a%d" % (k + 1)], out="s%d" % (k + 1)))
    body.append(call("encoder.encoder_conv.layer%d.0" % (k + 1), "jlc", ["s%d" % (k + 1)],
                     OD([("C", C), ("G", "%s // group_width[%d]" % (C, k)), ("e", "conv_exp[%d]" % k)]),
                     out="enc%d" % (k + 1)))
    h = "enc%d" % (k + 1)
u = "enc4"
for k in (3, 2, 1):
    C = "base * %d" % 2 ** (k - 1)
    body.append(call("decoder.layer_up%d" % k, "up_conv", [u], OD([("cout", C)]), out="u%d" % k))
    body.append(node(None, "add", ["enc%d" % k, "u%d" % k], out="us%d" % k))
    body.append(call("decoder.layer%d.0" % k, "jlc", ["us%d" % k],
                     OD([("C", C), ("G", "%s // group_width[%d]" % (C, k - 1)), ("e", "conv_exp[%d]" % (k - 1))]),
                     out="up%d" % k))
    u = "up%d" % k
body.append(conv("decoder.out_conv1.0", "up1", "64 * classes", 3, 1, 1, out="oc"))
body.append(node(None, "pixel_shuffle3d", ["oc"], {"r": 4}, out="logits"))
g = OD([("format", "segc-graph/1"), ("name", "veloxseg"),
        ("description", "VeloxSeg (JinPLu/VeloxSeg, ICLR 2026) inference graph: AutoPET-II <CT,PET> at 96^3 by default; "
         "-D in_ch=4 gives VeloxSeg-C (BraTS early fusion, use -D classes=4).  Weight names = the public state_dict "
         "keys (inference subset; relative_position_index buffers are recomputed, not loaded)"),
        ("include", ["velox_blocks.json"]),
        ("params", P),
        ("inputs", [OD([("name", "x"), ("dtype", "f32"), ("shape", [1, "in_ch[0] + (M == 2 ? in_ch[M - 1] : 0)", "size[0]", "size[1]", "size[2]"])])]),
        ("body", body),
        ("outputs", [OD([("name", "logits"), ("value", "logits")])])])
json.dump(g, open(ROOT + "/graphs/veloxseg.json", "w"), indent=1)


def node(name, op, inp, attrs=None, out=None, when=None):
    d = OD()
    if name: d["name"] = name
    d["op"] = op
    d["in"] = inp
    if attrs: d["attrs"] = attrs
    if out: d["out"] = out
    return d

def call(name, module, inp, args, out=None, repeat=None):
    d = OD([("name", name), ("module", module), ("in", inp)])
    if repeat is not None: d["repeat"] = repeat
    d["args"] = args
    if out: d["out"] = out
    return d

# ---------------- SegResNet ----------------
mods = OD()
mods["resblock"] = OD([
    ("description", "MONAI ResBlock: y = conv2(ReLU(GN2(conv1(ReLU(GN1(x)))))) + x, 3^3 convs without bias"),
    ("params", OD([("C", None)])), ("inputs", ["x"]),
    ("body", [node("norm1", "group_norm", ["x"], {"groups": "groups"}, out="n1"),
              node(None, "relu", ["n1"], out="r1"),
              node("conv1.conv", "conv3d", ["r1"], OD([("cout", "C"), ("kernel", 3), ("pad", 1), ("bias", False)]), out="c1"),
              node("norm2", "group_norm", ["c1"], {"groups": "groups"}, out="n2"),
              node(None, "relu", ["n2"], out="r2"),
              node("conv2.conv", "conv3d", ["r2"], OD([("cout", "C"), ("kernel", 3), ("pad", 1), ("bias", False)]), out="c2"),
              node(None, "add", ["c2", "x"], out="y")]),
    ("outputs", ["y"])])
P = OD([("in_ch", 4), ("classes", 4), ("F", 32), ("groups", 8), ("size", [128, 128, 128]),
        ("blocks_down", [1, 2, 2, 4]), ("blocks_up", [1, 1, 1])])
body = [node("convInit.conv", "conv3d", ["x"], OD([("cout", "F"), ("kernel", 3), ("pad", 1), ("bias", False)]), out="h")]
# down_layers.i = Sequential(pre (Identity for i = 0, stride-2 conv), ResBlock x blocks_down[i]): blocks at 1..
for i in range(4):
    C = "F * %d" % 2 ** i
    if i:
        body.append(node("down_layers.%d.0.conv" % i, "conv3d", ["h"],
                         OD([("cout", C), ("kernel", 3), ("stride", 2), ("pad", 1), ("bias", False)]), out="h"))
    # repeat names instances down_layers.i.blk.k; ResBlock j sits at index j+1 -> use explicit calls
    for j in range(4):
        c = call("down_layers.%d.%d" % (i, j + 1), "resblock", ["h"], OD([("C", C)]), out="h")
        c["when"] = "blocks_down[%d] > %d" % (i, j)
        body.append(c)
    body.append(node(None, "identity", ["h"], out="x%d" % i))
for i in range(3):
    C = "F * %d" % 2 ** (2 - i)
    body.append(node("up_samples.%d.0.conv" % i, "conv3d", ["h"], OD([("cout", C), ("kernel", 1), ("bias", False)]), out="u"))
    body.append(node(None, "upsample", ["u"], OD([("mode", "trilinear"), ("scale", 2.0), ("align_corners", False)]), out="uu"))
    body.append(node(None, "add", ["uu", "x%d" % (2 - i)], out="h"))
    for j in range(2):
        c = call("up_layers.%d.%d" % (i, j), "resblock", ["h"], OD([("C", C)]), out="h")
        c["when"] = "blocks_up[%d] > %d" % (i, j)
        body.append(c)
body += [node("conv_final.0", "group_norm", ["h"], {"groups": "groups"}, out="n"),
         node(None, "relu", ["n"], out="r"),
         node("conv_final.2.conv", "conv3d", ["r"], OD([("cout", "classes"), ("kernel", 1)]), out="logits")]
g = OD([("format", "segc-graph/1"), ("name", "segresnet"),
        ("description", "MONAI SegResNet(spatial_dims=3, init_filters=32, in_channels=4, out_channels=4, "
         "blocks_down=[1,2,2,4], blocks_up=[1,1,1]): GroupNorm(8), ReLU, nontrainable trilinear x2 upsampling "
         "(align_corners=False); the M4Fuse baseline (18.80M).  Weight names = MONAI state_dict keys"),
        ("params", P), ("modules", mods),
        ("inputs", [OD([("name", "x"), ("dtype", "f32"), ("shape", [1, "in_ch", "size[0]", "size[1]", "size[2]"])])]),
        ("body", body), ("outputs", [OD([("name", "logits"), ("value", "logits")])])])
json.dump(g, open(ROOT + "/graphs/segresnet.json", "w"), indent=1)

# ---------------- BasicUNet ----------------
mods = OD()
def cna(name, x, cout, out):
    return [node(name + ".conv", "conv3d", [x], OD([("cout", cout), ("kernel", 3), ("pad", 1)]), out=out + "_c"),
            node(name + ".adn.N", "instance_norm", [out + "_c"], OD([("eps", 1e-5), ("affine", True)]), out=out + "_n"),
            node(None, "leaky_relu", [out + "_n"], {"slope": 0.1}, out=out)]
mods["two_conv"] = OD([
    ("description", "MONAI TwoConv: 2 x (Conv3d 3^3 + bias -> InstanceNorm(affine) -> LeakyReLU(0.1))"),
    ("params", OD([("cout", None)])), ("inputs", ["x"]),
    ("body", cna("conv_0", "x", "cout", "a") + cna("conv_1", "a", "cout", "y")),
    ("outputs", ["y"])])
mods["down"] = OD([
    ("description", "MONAI Down: MaxPool 2 -> TwoConv"),
    ("params", OD([("cout", None)])), ("inputs", ["x"]),
    ("body", [node(None, "max_pool3d", ["x"], {"kernel": 2}, out="p"),
              call("convs", "two_conv", ["p"], OD([("cout", "cout")]), out="y")]),
    ("outputs", ["y"])])
mods["upcat"] = OD([
    ("description", "MONAI UpCat (deconv): ConvTranspose3d k2 s2 (+bias) -> cat([skip, up]) -> TwoConv"),
    ("params", OD([("cup", None), ("cout", None)])), ("inputs", ["x", "skip"]),
    ("body", [node("upsample.deconv", "conv_transpose3d", ["x"], OD([("cout", "cup"), ("kernel", 2), ("stride", 2)]), out="u"),
              node(None, "concat", ["skip", "u"], {"axis": 1}, out="c"),
              call("convs", "two_conv", ["c"], OD([("cout", "cout")]), out="y")]),
    ("outputs", ["y"])])
P = OD([("in_ch", 4), ("classes", 4), ("features", [32, 32, 64, 128, 256, 32]), ("size", [128, 128, 128])])
f = lambda i: "features[%d]" % i
body = [call("conv_0", "two_conv", ["x"], OD([("cout", f(0))]), out="x0")]
for k in range(1, 5):
    body.append(call("down_%d" % k, "down", ["x%d" % (k - 1)], OD([("cout", f(k))]), out="x%d" % k))
body.append(call("upcat_4", "upcat", ["x4", "x3"], OD([("cup", "features[4] // 2"), ("cout", f(3))]), out="u4"))
body.append(call("upcat_3", "upcat", ["u4", "x2"], OD([("cup", "features[3] // 2"), ("cout", f(2))]), out="u3"))
body.append(call("upcat_2", "upcat", ["u3", "x1"], OD([("cup", "features[2] // 2"), ("cout", f(1))]), out="u2"))
body.append(call("upcat_1", "upcat", ["u2", "x0"], OD([("cup", f(1)), ("cout", f(5))]), out="u1"))
body.append(node("final_conv", "conv3d", ["u1"], OD([("cout", "classes"), ("kernel", 1)]), out="logits"))
g = OD([("format", "segc-graph/1"), ("name", "basicunet"),
        ("description", "MONAI BasicUNet(spatial_dims=3, in 4, out 4), default features (32,32,64,128,256,32), "
         "InstanceNorm(affine) + LeakyReLU(0.1), deconv upsampling: the plain 3D UNet baseline (VeloxSeg's 'UNet', "
         "5.75M).  Sizes must be multiples of 16 (no replicate padding).  Weight names = MONAI state_dict keys"),
        ("params", P), ("modules", mods),
        ("inputs", [OD([("name", "x"), ("dtype", "f32"), ("shape", [1, "in_ch", "size[0]", "size[1]", "size[2]"])])]),
        ("body", body), ("outputs", [OD([("name", "logits"), ("value", "logits")])])])
json.dump(g, open(ROOT + "/graphs/basicunet.json", "w"), indent=1)
