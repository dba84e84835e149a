#!/usr/bin/env python3
"""tests/reference/gen_mamba_json.py -- writes graphs/lib/mamba.json.

The Mamba modules must be flat (a module call adds a path component, and two weights may not
share a name), so several modules repeat the same conv1d/x_proj/dt_proj/scan chain with other
names; this script keeps them consistent.  Edit here, run it, commit both files."""
import json
import os
ORDER_PARAMS = {"dims": [], "perm": [], "flip": False, "nslices": 0}
BASE = {"d_model": None, "d_state": 16, "d_conv": 4, "expand": 2,
        "dt_rank": "(d_model + 15) // 16", "d_inner": "expand * d_model"}

def order_attrs(dims="dims", perm="perm", flip="flip", ns="nslices"):
    return {"dims": dims, "perm": perm, "flip": flip, "nslices": ns}

def inner(x, z, sfx, out, attrs, tag, shared_proj=False):
    """conv1d + x_proj + dt_proj + scan of one order; weights named with suffix sfx.
    Returns body nodes; the pre-gate result is named out."""
    t = lambda s: s + tag
    nodes = []
    if not shared_proj or tag == "":
        nodes += [
            {"name": "conv1d" + sfx + ".weight", "op": "weight",
             "attrs": {"shape": ["d_inner", 1, "d_conv"]}},
            {"name": "conv1d" + sfx + ".bias", "op": "weight", "attrs": {"shape": ["d_inner"]}},
            {"name": "A" + sfx + "_log" if sfx else "A_log", "op": "weight",
             "attrs": {"shape": ["d_inner", "d_state"]}},
            {"name": "D" + sfx, "op": "weight", "attrs": {"shape": ["d_inner"]}},
            {"name": "dt_proj" + sfx + ".bias", "op": "weight", "attrs": {"shape": ["d_inner"]}},
        ]
    alog = "A" + sfx + "_log" if sfx else "A_log"
    nodes += [
        {"op": "causal_conv1d", "in": [x, "conv1d" + sfx + ".weight", "conv1d" + sfx + ".bias"],
         "attrs": dict(attrs, silu=True), "out": t("u")},
    ]
    if shared_proj:
        nodes += [
            {"op": "matmul", "in": [t("u"), "x_proj.wt"], "out": t("xdbl")},
        ]
    else:
        nodes += [{"name": "x_proj" + sfx, "op": "linear", "in": [t("u")],
                   "attrs": {"out": "dt_rank + 2 * d_state", "bias": False}, "out": t("xdbl")}]
    nodes += [
        {"op": "slice", "in": [t("xdbl")], "attrs": {"axis": 2, "start": 0, "end": "dt_rank"},
         "out": t("dt_low")},
        {"op": "slice", "in": [t("xdbl")],
         "attrs": {"axis": 2, "start": "dt_rank", "end": "dt_rank + d_state"}, "out": t("Bm")},
        {"op": "slice", "in": [t("xdbl")],
         "attrs": {"axis": 2, "start": "dt_rank + d_state", "end": "dt_rank + 2 * d_state"},
         "out": t("Cm")},
    ]
    if shared_proj:
        nodes += [{"op": "matmul", "in": [t("dt_low"), "dt_proj.wt"], "out": t("delta")}]
    else:
        nodes += [{"name": "dt_proj" + sfx, "op": "linear", "in": [t("dt_low")],
                   "attrs": {"out": "d_inner", "bias": False}, "out": t("delta")}]
    nodes += [
        {"op": "selective_scan",
         "in": [t("u"), t("delta"), alog, t("Bm"), t("Cm"), "D" + sfx, "dt_proj" + sfx + ".bias", z],
         "attrs": attrs, "out": [t("gated"), out]},
    ]
    return nodes

def in_proj():
    return [
        {"name": "in_proj", "op": "linear", "in": ["x"],
         "attrs": {"out": "2 * d_inner", "bias": False}, "out": "xz"},
        {"op": "slice", "in": ["xz"], "attrs": {"axis": 2, "start": 0, "end": "d_inner"}, "out": "xs"},
        {"op": "slice", "in": ["xz"], "attrs": {"axis": 2, "start": "d_inner", "end": "2 * d_inner"},
         "out": "zs"},
    ]

def gate_out(ysum):
    return [
        {"op": "silu", "in": ["zs"], "out": "zg"},
        {"op": "mul", "in": [ysum, "zg"], "out": "yg"},
        {"name": "out_proj", "op": "linear", "in": ["yg"], "attrs": {"out": "d_model", "bias": False},
         "out": "y"},
    ]

mods = {}
# 1. upstream Mamba, one order
body = in_proj() + inner("xs", "zs", "", "ypre", order_attrs(), "")
body[-1]["out"] = ["ygated", "ypre"]
body += [{"name": "out_proj", "op": "linear", "in": ["ygated"],
          "attrs": {"out": "d_model", "bias": False}, "out": "y"}]
mods["mamba"] = {
    "description": "upstream mamba_ssm.Mamba (spec 1.4): tokens [B, L, d_model] -> [B, L, d_model]. "
    "Weights relative to the call: in_proj.weight (2di, d), conv1d.weight (di, 1, d_conv), "
    "conv1d.bias (di), x_proj.weight (R+2N, di), dt_proj.weight (di, R), dt_proj.bias (di), "
    "A_log (di, N), D (di), out_proj.weight (d, di); di = expand*d_model, R = dt_rank, N = d_state. "
    "Scan order (conv1d and scan both walk it; results stay in token order, see ir/ops_mamba.def): "
    "dims (volume, [] = [L]), perm (walk order of its axes, slowest first), flip, nslices "
    "(inter-slice interleave). Example TriMamba P2 over (a0,a1,a2): dims [a0,a1,a2], perm [1,0,2].",
    "params": dict(BASE, **ORDER_PARAMS),
    "inputs": ["x"], "body": body, "outputs": ["y"]}

# 2. pre-gate part of one order (caller owns in_proj/out_proj)
body = inner("x", "z", "", "y", order_attrs(), "")
mods["mamba_pregate"] = {
    "description": "the per-order part of a Mamba: (x, z) = the two halves of in_proj's output, "
    "[B, L, di] each -> y, the pre-gate scan output [B, L, di] (y_t = C_t h_t + D u_t, not yet "
    "multiplied by silu(z)). Weights conv1d.weight, conv1d.bias, x_proj.weight, dt_proj.weight, "
    "dt_proj.bias, A_log, D relative to the call: call it \"mamba\" and name your own linear nodes "
    "\"mamba.in_proj\" / \"mamba.out_proj\" to get upstream keys. Order params as in module mamba. "
    "Sum several orders' y, multiply by silu(z), then out_proj.",
    "params": dict(BASE, **ORDER_PARAMS),
    "inputs": ["x", "z"], "body": body, "outputs": ["y"]}

# 3. TriMamba: one shared Mamba over three orders P1, P2, P3 of the volume vol
body = in_proj() + [
    {"name": "x_proj.weight", "op": "weight", "attrs": {"shape": ["dt_rank + 2 * d_state", "d_inner"]}},
    {"name": "dt_proj.weight", "op": "weight", "attrs": {"shape": ["d_inner", "dt_rank"]}},
    {"op": "permute", "in": ["x_proj.weight"], "attrs": {"perm": [1, 0]}, "out": "x_proj.wt"},
    {"op": "permute", "in": ["dt_proj.weight"], "attrs": {"perm": [1, 0]}, "out": "dt_proj.wt"},
]
orders = [("", [0, 1, 2]), ("_p2", [1, 0, 2]), ("_p3", [2, 1, 0])]
for tag, perm in orders:
    body += inner("xs", "zs", "", "y" + tag + "_pre",
                  order_attrs(dims="vol", perm=perm, flip=False, ns=0), tag, shared_proj=True)
body += [{"op": "add", "in": ["y_pre", "y_p2_pre"], "out": "ysum2"},
         {"op": "add", "in": ["ysum2", "y_p3_pre"], "out": "ysum"}] + gate_out("ysum")
mods["mamba_tri"] = {
    "description": "SegMamba-V2 TriMamba's Mamba (spec 1.6): tokens [B, L, d_model] in raster "
    "order of the volume vol = [a0, a1, a2] (L = a0*a1*a2) -> sum over the orders P1 (a0,a1,a2), "
    "P2 (a1,a0,a2), P3 (a2,a1,a0) of Mamba with ONE shared weight set (upstream keys, as module "
    "mamba), already mapped back to raster order. LN + in_proj run once, the three pre-gate scans "
    "are summed, then gate and out_proj run once (exact, spec 0.6). No permuted copies: conv1d and "
    "scan read through the orders. The caller adds LayerNorm before and the residual after.",
    "params": dict(BASE, vol=None),
    "inputs": ["x"], "body": body, "outputs": ["y"]}

# 4. SegMamba v1 "v3" Mamba: forward, flipped, inter-slice; per-order parameter sets
body = in_proj()
for sfx, attrs in [("", order_attrs(dims=[], perm=[], flip=False, ns=0)),
                   ("_b", order_attrs(dims=[], perm=[], flip=True, ns=0)),
                   ("_s", order_attrs(dims=[], perm=[], flip=False, ns="nslices"))]:
    body += inner("xs", "zs", sfx, "y" + sfx + "_pre", attrs, sfx)
body += [{"op": "add", "in": ["y_pre", "y_b_pre"], "out": "ysum2"},
         {"op": "add", "in": ["ysum2", "y_s_pre"], "out": "ysum"}] + gate_out("ysum")
mods["mamba_v3"] = {
    "description": "SegMamba v1 bimamba v3 Mamba (spec 1.5): tokens [B, L, d_model] -> [B, L, d_model]. "
    "Shared in_proj/out_proj; per-order conv1d/x_proj/dt_proj/A_log/D with suffixes '', '_b' "
    "(reversed scan) and '_s' (inter-slice, nslices must divide L; keys A_b_log, A_s_log, D_b, "
    "D_s, conv1d_b.weight, ...). Pre-gate outputs summed, gated once, out_proj once.",
    "params": dict(BASE, nslices=None),
    "inputs": ["x"], "body": body, "outputs": ["y"]}


# 5. TriMamba layers (V2 MambaLayer), NCDHW in and out: x + sum_p P_p^-1 Mamba(LN(P_p x))
def to_tokens():
    return [
        {"op": "reshape", "in": ["x"], "attrs": {"shape": [-1, "d_model", "vol[0] * vol[1] * vol[2]"]},
         "out": "xf"},
        {"op": "permute", "in": ["xf"], "attrs": {"perm": [0, 2, 1]}, "out": "tok"},
    ]

def from_tokens(t):
    return [
        {"op": "permute", "in": [t], "attrs": {"perm": [0, 2, 1]}, "out": "yt"},
        {"op": "reshape", "in": ["yt"], "attrs": {"shape": [-1, "d_model", "vol[0]", "vol[1]", "vol[2]"]},
         "out": "yv"},
        {"op": "add", "in": ["x", "yv"], "out": "y"},
    ]

body = to_tokens() + [
    {"name": "norm", "op": "layer_norm", "in": ["tok"]},
    {"name": "mamba", "module": "mamba_tri", "in": ["norm"],
     "args": {"d_model": "d_model", "d_state": "d_state", "d_conv": "d_conv", "expand": "expand",
              "dt_rank": "dt_rank", "vol": "vol"}},
] + from_tokens("mamba")
mods["trimamba"] = {
    "description": "SegMamba-V2 MambaLayer (spec 1.6): x [B, d_model, a0, a1, a2] -> x + sum over "
    "P1/P2/P3 of Mamba(LN(tokens)), shared norm.{weight,bias} and mamba.* (upstream keys). "
    "vol = [a0, a1, a2] must be the spatial shape of x.",
    "params": dict(BASE, vol=None),
    "inputs": ["x"], "body": body, "outputs": ["y"]}

body = to_tokens() + [
    {"name": "norm.weight", "op": "weight", "attrs": {"shape": ["d_model"]}},
    {"name": "norm.bias", "op": "weight", "attrs": {"shape": ["d_model"]}},
    {"name": "mamba.in_proj.weight", "op": "weight", "attrs": {"shape": ["2 * d_inner", "d_model"]}},
    {"name": "mamba.x_proj.weight", "op": "weight", "attrs": {"shape": ["dt_rank + 2 * d_state", "d_inner"]}},
    {"name": "mamba.dt_proj.weight", "op": "weight", "attrs": {"shape": ["d_inner", "dt_rank"]}},
    {"name": "mamba.out_proj.weight", "op": "weight", "attrs": {"shape": ["d_model", "d_inner"]}},
    {"name": "mamba.conv1d.weight", "op": "weight", "attrs": {"shape": ["d_inner", 1, "d_conv"]}},
    {"name": "mamba.conv1d.bias", "op": "weight", "attrs": {"shape": ["d_inner"]}},
    {"name": "mamba.A_log", "op": "weight", "attrs": {"shape": ["d_inner", "d_state"]}},
    {"name": "mamba.D", "op": "weight", "attrs": {"shape": ["d_inner"]}},
    {"name": "mamba.dt_proj.bias", "op": "weight", "attrs": {"shape": ["d_inner"]}},
    {"op": "permute", "in": ["mamba.in_proj.weight"], "attrs": {"perm": [1, 0]}, "out": "w_in"},
    {"op": "permute", "in": ["mamba.x_proj.weight"], "attrs": {"perm": [1, 0]}, "out": "w_x"},
    {"op": "permute", "in": ["mamba.dt_proj.weight"], "attrs": {"perm": [1, 0]}, "out": "w_dt"},
    {"op": "permute", "in": ["mamba.out_proj.weight"], "attrs": {"perm": [1, 0]}, "out": "w_out"},
    {"op": "token_score", "in": ["tok"], "out": "score"},
]
for tag, perm in [("1", [0, 1, 2]), ("2", [1, 0, 2]), ("3", [2, 1, 0])]:
    T = lambda s: s + tag
    body += [
        {"op": "token_prune", "in": ["tok", "score"],
         "attrs": {"keep": "keep", "dims": "vol", "perm": perm},
         "out": [T("rows"), T("idx")]},
        {"op": "layer_norm", "in": [T("rows")], "attrs": {"affine": False}, "out": T("ln0")},
        {"op": "mul", "in": [T("ln0"), "norm.weight"], "out": T("ln1")},
        {"op": "add", "in": [T("ln1"), "norm.bias"], "out": T("ln")},
        {"op": "matmul", "in": [T("ln"), "w_in"], "out": T("xz")},
        {"op": "slice", "in": [T("xz")], "attrs": {"axis": 2, "start": 0, "end": "d_inner"}, "out": T("xs")},
        {"op": "slice", "in": [T("xz")], "attrs": {"axis": 2, "start": "d_inner", "end": "2 * d_inner"},
         "out": T("zs")},
        {"op": "causal_conv1d", "in": [T("xs"), "mamba.conv1d.weight", "mamba.conv1d.bias"], "out": T("u")},
        {"op": "matmul", "in": [T("u"), "w_x"], "out": T("xdbl")},
        {"op": "slice", "in": [T("xdbl")], "attrs": {"axis": 2, "start": 0, "end": "dt_rank"}, "out": T("dtl")},
        {"op": "slice", "in": [T("xdbl")], "attrs": {"axis": 2, "start": "dt_rank", "end": "dt_rank + d_state"},
         "out": T("Bm")},
        {"op": "slice", "in": [T("xdbl")],
         "attrs": {"axis": 2, "start": "dt_rank + d_state", "end": "dt_rank + 2 * d_state"}, "out": T("Cm")},
        {"op": "matmul", "in": [T("dtl"), "w_dt"], "out": T("delta")},
        {"op": "selective_scan", "in": [T("u"), T("delta"), "mamba.A_log", T("Bm"), T("Cm"), "mamba.D",
                                        "mamba.dt_proj.bias", T("zs")], "out": [T("yg"), T("ypre")]},
        {"op": "matmul", "in": [T("yg"), "w_out"], "out": T("o")},
        {"op": "token_unpool", "in": [T("o"), T("idx"), "tok"], "out": T("full")},
    ]
body += [{"op": "add", "in": ["full1", "full2"], "out": "s12"},
         {"op": "add", "in": ["s12", "full3"], "out": "ssum"}] + from_tokens("ssum")
mods["trimamba_pruned"] = {
    "description": "trimamba with l2 token pruning inside (seed 003, spec 5.4 and 9 U7-U13): the "
    "pre-LN tokens are scored once (token_score); per order P_p the top k = max(1, floor(keep*L)) "
    "tokens (ties to the lower raster index) are gathered in that order's scan order with the mean "
    "of the dropped tokens appended last (summary 'mean' or 'score'), then LN, Mamba (gated per "
    "order), and unpooled (summary output broadcast to the dropped positions); the three orders "
    "are summed and x added. Same weights and keys as trimamba. keep must be in (0, 1].",
    "params": dict(BASE, vol=None, keep=None),
    "inputs": ["x"], "body": body, "outputs": ["y"]}

doc = {"format": "segc-graph/1",
       "description": "Mamba modules (include \"mamba.json\"; generated by tests/reference/gen_mamba_json.py). All take tokens [B, L, d_model] "
       "(token-major, raster order of the volume) and return [B, L, d_model]; weight names are "
       "the upstream state_dict keys relative to the call. mamba: upstream Mamba with a scan order "
       "(dims/perm/flip/nslices); mamba_pregate: conv1d..scan of one order returning the pre-gate "
       "y for callers that sum orders (M4Fuse, HoME); mamba_tri: V2 TriMamba's shared Mamba over "
       "P1/P2/P3 of vol=[a0,a1,a2]; mamba_v3: v1's bidirectional + inter-slice Mamba; trimamba / trimamba_pruned: the whole "
       "V2 MambaLayer on NCDHW x (LN + shared Mamba over P1/P2/P3 + residual), the second with "
       "l2 token pruning at keep rate 'keep' (ops token_score/token_prune/token_unpool).",
       "modules": mods}
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "graphs", "lib",
                   "mamba.json")
with open(OUT, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
