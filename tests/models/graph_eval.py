#!/usr/bin/env python3
"""tests/models/graph_eval.py -- a small Python reading of segc-graph/1, for checking graphs.

Evaluates a graph file with PyTorch ops (float64) following docs/graph-format.md: params and
-D overrides, includes, modules, `in` defaults, `when`, `repeat`/`index`, `out`, weight names
from instance paths.  It covers the ops the shipped graphs use and plain expressions (no
`a ? b : c`).  It is a second opinion on a graph file, independent of segc's frontend:

    graph_eval.py GRAPH [-D k=v ...]   prints the weight names and shapes, and checks that the
                                       reference module's state_dict has the same, and that
                                       both give the same output on random weights.
"""
import importlib
import json
import os
import re
import sys

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _eval(expr, scope):
    if not isinstance(expr, str):
        return expr
    if "?" in expr:
        raise ValueError("graph_eval: ternaries not supported: %r" % expr)
    py = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", expr))
    v = eval(py, {"__builtins__": {}, "min": min, "max": max, "abs": abs, "int": int,
                  "float": float, "len": len}, dict(scope))
    if isinstance(v, float) and "/" in expr and v.is_integer() and "//" not in expr:
        v = int(v)
    return v


def _trip(v):
    v = list(v) if isinstance(v, (list, tuple)) else [v] * 3
    return [int(t) for t in v]


class Graph:
    def __init__(self, path, defines):
        with open(path) as f:
            self.g = json.load(f)
        self.mods = {}
        for inc in self.g.get("include", []):
            p = os.path.join(ROOT, "graphs", "lib", inc)
            if not os.path.exists(p):
                p = os.path.join(os.path.dirname(path), inc)
            with open(p) as f:
                self.mods.update(json.load(f)["modules"])
        self.mods.update(self.g.get("modules", {}))
        self.params = dict(self.g.get("params", {}))
        for k, v in defines.items():
            d = self.params[k]
            self.params[k] = type(d)(v) if not isinstance(d, bool) else v == "true"
        self.weights = {}       # name -> shape (in creation order)
        self.values = None      # name -> tensor (when evaluating)

    def w(self, name, shape):
        self.weights.setdefault(name, tuple(shape))
        if self.values is not None:
            return self.values[name]
        return torch.zeros(shape, dtype=torch.float64)

    def op(self, n, path, xs, scope):
        a = {k: _eval(v, scope) for k, v in n.get("attrs", {}).items()}
        op, nm = n["op"], path + n["name"]
        x = xs[0]
        if op == "conv3d":
            g, k = a.get("groups", 1), _trip(a["kernel"])
            w = self.w(nm + ".weight", [a["cout"], x.shape[1] // g] + k)
            b = self.w(nm + ".bias", [a["cout"]]) if a.get("bias", True) else None
            return F.conv3d(x, w, b, _trip(a.get("stride", 1)), _trip(a.get("pad", 0)),
                            _trip(a.get("dilation", 1)), g)
        if op == "conv_transpose3d":
            k = _trip(a["kernel"])
            w = self.w(nm + ".weight", [x.shape[1], a["cout"]] + k)
            b = self.w(nm + ".bias", [a["cout"]]) if a.get("bias", True) else None
            return F.conv_transpose3d(x, w, b, _trip(a.get("stride", 1)), _trip(a.get("pad", 0)),
                                      _trip(a.get("output_padding", 0)), 1,
                                      _trip(a.get("dilation", 1)))
        if op == "instance_norm":
            w = b = None
            if a.get("affine", False):
                w, b = self.w(nm + ".weight", [x.shape[1]]), self.w(nm + ".bias", [x.shape[1]])
            return F.instance_norm(x, weight=w, bias=b, eps=a.get("eps", 1e-5))
        if op == "relu":
            return F.relu(x)
        if op == "leaky_relu":
            return F.leaky_relu(x, a.get("slope", 0.01))
        if op == "add":
            return xs[0] + xs[1]
        if op == "concat":
            return torch.cat(xs, a["axis"])
        raise ValueError("graph_eval: op %s not supported" % op)

    def body(self, body, path, env, scope, first):
        prev = first
        for n in body:
            ins = [env[i] for i in n["in"]] if "in" in n else [prev]
            if "when" in n and not _eval(n["when"], scope):
                res = [ins[0]]
            elif "module" in n:
                md = self.mods[n["module"]]
                reps = int(_eval(n.get("repeat", 1), scope)) if "repeat" in n else None
                res = ins
                for r in range(reps or 1):
                    s2 = dict(scope)
                    if reps is not None:
                        s2["index"] = r
                    args = {k: _eval(v, s2) for k, v in n.get("args", {}).items()}
                    ms = dict(self.params)
                    ms.update({k: v for k, v in md.get("params", {}).items() if v is not None})
                    ms.update(args)
                    sub = path + n["name"] + (".%d" % r if reps is not None else "") + "."
                    menv = dict(zip(md["inputs"], res))
                    self.body(md["body"], sub, menv, ms, res[0])
                    res = [menv[o] for o in md["outputs"]]
            else:
                res = [self.op(n, path, ins, scope)]
            outs = n.get("out", n.get("name"))
            outs = outs if isinstance(outs, list) else [outs]
            for o, v in zip(outs, res):
                env[o] = v
            prev = res[0]

    def run(self, inputs, values=None):
        self.values = values
        env = dict(inputs)
        first = inputs[self.g["inputs"][0]["name"]]
        self.body(self.g["body"], "", env, dict(self.params), first)
        outs = []
        for o in self.g["outputs"]:
            outs.append(env[o["value"] if isinstance(o, dict) else o])
        return outs

    def input_shapes(self):
        return {i["name"]: [int(_eval(d, self.params)) for d in i["shape"]]
                for i in self.g["inputs"]}


def main(argv):
    path, defs = argv[0], {}
    i = 1
    while i < len(argv):
        k, v = argv[i + 1].split("=", 1)
        defs[k] = v
        i += 2
    g = Graph(path, defs)
    shapes = g.input_shapes()
    torch.manual_seed(0)
    xs = {k: torch.randn(s, dtype=torch.float64) for k, s in shapes.items()}
    g.run(xs)
    for k, s in g.weights.items():
        print("%-40s %s" % (k, list(s)))
    sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    ref = importlib.import_module(g.g["name"])
    from test_models import randomise
    model = ref.build(g.params)
    sd = randomise(model, 5)
    want = [(k, tuple(v.shape)) for k, v in sd.items()]
    got = list(g.weights.items())
    print("weights: %d, names and shapes %s, order %s" % (
        len(got), "match" if dict(got) == dict(want) else "DIFFER",
        "matches" if got == want else "differs"))
    vals = {k: torch.from_numpy(v).double() for k, v in sd.items()}
    model.load_state_dict(vals)
    model = model.double()
    y = g.run(xs, vals)[0]
    with torch.no_grad():
        r = model(*xs.values())
    err = float((y - r).abs().max() / r.abs().max())
    print("output %s, relerr vs reference %.2e" % (list(y.shape), err))
    return 0 if dict(got) == dict(want) and err < 1e-10 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
