"""tests/cuda/segc_api.py -- the engine ABI (runtime/segc_engine.h) from Python, through ctypes.

Used where the segc binary may not run (the GPU machine need not have LLVM): an engine.so
needs only libc.  Engine(path) opens it; load_weights(path or bytes); run(inputs) with numpy
arrays (host pointers, the ABI's run); run_device(in_ptrs, out_ptrs) with device addresses
(e.g. torch CUDA tensors' data_ptr()); run_ptrs (either); device(), device_bytes(),
arena_bytes().
"""
import ctypes

import numpy as np

MAX_RANK = 8
DTYPES = {0: np.float32, 1: np.float16, 3: np.int32, 4: np.int64, 5: np.uint8}


class TensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int), ("rank", ctypes.c_int32),
                ("shape", ctypes.c_int64 * MAX_RANK)]


E = ctypes.c_void_p
PP = ctypes.POINTER(ctypes.c_void_p)
_F = ctypes.CFUNCTYPE


class Api(ctypes.Structure):
    _fields_ = [
        ("abi_version", ctypes.c_uint32), ("size", ctypes.c_uint32),
        ("open", _F(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(E), ctypes.c_char_p,
                    ctypes.c_size_t)),
        ("load_weights", _F(ctypes.c_int, E, ctypes.c_char_p)),
        ("load_weights_memory", _F(ctypes.c_int, E, ctypes.c_void_p, ctypes.c_size_t)),
        ("num_inputs", _F(ctypes.c_int32, E)),
        ("num_outputs", _F(ctypes.c_int32, E)),
        ("num_weights", _F(ctypes.c_int32, E)),
        ("input_info", _F(ctypes.c_int, E, ctypes.c_int32, ctypes.POINTER(TensorInfo))),
        ("output_info", _F(ctypes.c_int, E, ctypes.c_int32, ctypes.POINTER(TensorInfo))),
        ("weight_info", _F(ctypes.c_int, E, ctypes.c_int32, ctypes.POINTER(TensorInfo))),
        ("arena_bytes", _F(ctypes.c_uint64, E)),
        ("manifest", _F(ctypes.c_char_p, E)),
        ("run", _F(ctypes.c_int, E, PP, PP)),
        ("close", _F(None, E)),
        ("last_error", _F(ctypes.c_char_p, E)),
        ("device", _F(ctypes.c_char_p, E)),
        ("run_device", _F(ctypes.c_int, E, PP, PP)),
        ("stream", _F(ctypes.c_void_p, E)),
        ("device_bytes", _F(ctypes.c_uint64, E)),
    ]


class SegcError(RuntimeError):
    pass


def _ptrs(values):
    arr = (ctypes.c_void_p * max(len(values), 1))()
    for i, v in enumerate(values):
        arr[i] = v
    return ctypes.cast(arr, PP), arr


class Engine:
    def __init__(self, path):
        self.lib = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
        get = self.lib.segc_engine_api
        get.restype = ctypes.POINTER(Api)
        get.argtypes = [ctypes.c_uint32]
        p = get(1)
        if not p:
            raise SegcError("%s: no ABI version 1" % path)
        self.api = p.contents
        self.e = E()
        err = ctypes.create_string_buffer(512)
        st = self.api.open(None, ctypes.byref(self.e), err, 512)
        if st != 0:
            raise SegcError("open: status %d: %s" % (st, err.value.decode()))
        self.inputs = [self._info(self.api.input_info, i) for i in range(self.api.num_inputs(self.e))]
        self.outputs = [self._info(self.api.output_info, i)
                        for i in range(self.api.num_outputs(self.e))]

    def _info(self, fn, i):
        t = TensorInfo()
        fn(self.e, i, ctypes.byref(t))
        return t.name.decode(), DTYPES.get(t.dtype, np.float32), tuple(t.shape[:t.rank])

    def _check(self, st, what):
        if st != 0:
            raise SegcError("%s: status %d: %s" % (what, st, self.api.last_error(self.e).decode()))

    def load_weights(self, src):
        if isinstance(src, (bytes, bytearray)):
            buf = ctypes.create_string_buffer(bytes(src), len(src))
            self._check(self.api.load_weights_memory(self.e, buf, len(src)), "load_weights")
        else:
            self._check(self.api.load_weights(self.e, src.encode()), "load_weights")

    def run(self, inputs):
        """inputs: list of numpy arrays (engine order); returns the outputs (numpy)"""
        ins = [np.ascontiguousarray(a, dtype=dt) for a, (_, dt, _) in zip(inputs, self.inputs)]
        outs = [np.empty(shape, dtype=dt) for _, dt, shape in self.outputs]
        ip, _k1 = _ptrs([a.ctypes.data for a in ins])
        op, _k2 = _ptrs([a.ctypes.data for a in outs])
        self._check(self.api.run(self.e, ip, op), "run")
        return outs

    def run_device(self, in_ptrs, out_ptrs):
        ip, _k1 = _ptrs(list(in_ptrs))
        op, _k2 = _ptrs(list(out_ptrs))
        self._check(self.api.run_device(self.e, ip, op), "run_device")

    def run_ptrs(self, in_ptrs, out_ptrs, device=True):
        """run_device (device addresses) or, with device=False, run (host addresses: a CPU
        engine, or torch CPU tensors' data_ptr() -- the scripts' dry run without a GPU)"""
        if device:
            return self.run_device(in_ptrs, out_ptrs)
        ip, _k1 = _ptrs(list(in_ptrs))
        op, _k2 = _ptrs(list(out_ptrs))
        self._check(self.api.run(self.e, ip, op), "run")

    def device(self):
        return self.api.device(self.e).decode()

    def device_bytes(self):
        return int(self.api.device_bytes(self.e))

    def arena_bytes(self):
        return int(self.api.arena_bytes(self.e))

    def close(self):
        if self.e:
            self.api.close(self.e)
            self.e = E()


def _selftest(argv):
    """segc_api.py ENGINE.so WEIGHTS X.npy: run (host pointers) and run_device (torch CUDA
    tensors where torch has CUDA, else host arrays: right for the fake driver of
    tests/cuda/fake_cuda.c, whose device memory is host memory) must agree bit for bit;
    weights loaded from memory; prints the device and device_bytes.  Exit 1 on a mismatch."""
    eng = Engine(argv[0])
    try:
        with open(argv[1], "rb") as f:
            eng.load_weights(f.read())
        x = np.load(argv[2])
        host = eng.run([x])[0]
        try:
            import torch
            cuda = torch.cuda.is_available()
        except ImportError:
            cuda = False
        if cuda:
            xd = torch.from_numpy(x).cuda()
            yd = torch.full(host.shape, float("nan"), device="cuda")
            torch.cuda.synchronize()
            eng.run_device([xd.data_ptr()], [yd.data_ptr()])
            dev = yd.cpu().numpy()
        else:                   # the driver's own allocations (libcuda.so.1, loaded by the engine)
            drv = ctypes.CDLL("libcuda.so.1")
            xh = np.ascontiguousarray(x, dtype=np.float32)
            dev = np.full(host.shape, np.nan, dtype=np.float32)
            xd, yd = ctypes.c_uint64(), ctypes.c_uint64()
            drv.cuMemcpyHtoD_v2.argtypes = [ctypes.c_uint64, ctypes.c_void_p, ctypes.c_size_t]
            drv.cuMemcpyDtoH_v2.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t]
            drv.cuMemFree_v2.argtypes = [ctypes.c_uint64]
            if drv.cuMemAlloc_v2(ctypes.byref(xd), ctypes.c_size_t(xh.nbytes)) or \
                    drv.cuMemAlloc_v2(ctypes.byref(yd), ctypes.c_size_t(dev.nbytes)):
                raise SegcError("cuMemAlloc failed")
            drv.cuMemcpyHtoD_v2(xd.value, xh.ctypes.data, xh.nbytes)
            drv.cuMemcpyHtoD_v2(yd.value, dev.ctypes.data, dev.nbytes)
            eng.run_ptrs([xd.value], [yd.value], device=True)
            drv.cuMemcpyDtoH_v2(dev.ctypes.data, yd.value, dev.nbytes)
            drv.cuMemFree_v2(xd.value)
            drv.cuMemFree_v2(yd.value)
        same = np.array_equal(host, dev)
        print("%s: device %s, device_bytes %d, arena_bytes %d, run_device %s run" % (
            "ok  " if same else "FAIL", eng.device(), eng.device_bytes(), eng.arena_bytes(),
            "==" if same else "!="))
        return 0 if same else 1
    finally:
        eng.close()


if __name__ == "__main__":
    import sys
    sys.exit(_selftest(sys.argv[1:]))
