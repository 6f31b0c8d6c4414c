"""saliency: attribution maps of neural networks and audits of whether to trust them (docs/python.md).

    import saliency
    model = saliency.Model("model.onnx")            # or saliency.from_torch(module, example)
    attr = model.explain(x, method="integrated_gradients", target=3, steps=32)
    saliency.heatmap(attr[0], x[0], overlay=True)   # shows itself in a notebook; .to_png(path)

Arrays go in and come out as NumPy float32, batch first, C order. Every call runs in the C library
libsaliency.so.0 (through ctypes, which releases the GIL for the call), and every failure of the
library raises a SaliencyError subclass carrying its message."""
import builtins
import ctypes as C
import json
import os
import shutil
import tempfile
import threading

import numpy as np

from . import _lib
from ._lib import lib

__version__ = "0.1.0"
__all__ = ["Model", "Explanation", "Heatmap", "Figure", "AuditResult", "Visualization", "from_torch", "methods",
           "heatmap", "grid", "invert", "objective_values", "audit_invariance", "audit_randomization", "audit_class_sensitivity", "audit_pointing",
           "audit_faithfulness", "report", "visualize", "composite", "dataset", "shift_checkerboard", "shift_image",
           "shift_targeted", "read_npy", "save_npy", "read_png", "set_memory_budget", "memory_budget",
           "memory_in_use", "memory_peak", "set_threads", "threads", "SaliencyError", "ArgumentError", "FileError",
           "FormatError", "UnsupportedError", "ShapeError", "MemoryBudgetError", "NumericError", "InternalError"]


# ---- errors ----------------------------------------------------------------------------------

class SaliencyError(Exception):
    """A failure reported by the library; .status is its sal_status code, str() its message."""
    status = None


class ArgumentError(SaliencyError, ValueError):
    status = 1


class FileError(SaliencyError, OSError):
    status = 2


class FormatError(SaliencyError, ValueError):
    status = 3


class UnsupportedError(SaliencyError, NotImplementedError):
    status = 4


class ShapeError(SaliencyError, ValueError):
    status = 5


class MemoryBudgetError(SaliencyError, MemoryError):
    status = 6


class NumericError(SaliencyError, ArithmeticError):
    status = 7


class InternalError(SaliencyError):
    status = 8


_ERRORS = {e.status: e for e in (ArgumentError, FileError, FormatError, UnsupportedError, ShapeError,
                                 MemoryBudgetError, NumericError, InternalError)}


def _check(st):
    if st:
        raise _ERRORS.get(st, InternalError)(lib.sal_last_error().decode(errors="replace"))


def _b(s):
    return None if s is None else os.fsencode(s) if isinstance(s, os.PathLike) else str(s).encode()


def _str(p):
    return None if p is None else p.decode(errors="replace")


# ---- threads and memory ----------------------------------------------------------------------

_threads_wanted = 0


def _default_threads():
    prev = lib.sal_threads()
    lib.sal_set_threads(0)
    n = lib.sal_threads()
    lib.sal_set_threads(prev)
    return n


_DEFAULT_THREADS = _default_threads()


def set_threads(n):
    """Threads the library computes with (its loops, OpenBLAS, oneDNN) in calls from any Python
    thread; 0 restores the default, the CLI's: OMP_NUM_THREADS, else one per processor. PyTorch
    shares the OpenMP runtime but keeps its own setting: each call sets the count and restores it."""
    global _threads_wanted
    if int(n) < 0:
        raise ValueError("set_threads: n must be >= 0, not %r" % (n,))
    _threads_wanted = int(n)


def threads():
    """Threads the library computes with."""
    return _threads_wanted or _DEFAULT_THREADS


def _call(fn, *args):
    """Calls fn with the thread count of set_threads (OpenMP keeps it per OS thread, and PyTorch
    sets its own at import), restores the caller's, and raises on failure."""
    want = _threads_wanted or _DEFAULT_THREADS
    prev = lib.sal_threads()
    if prev == want:
        st = fn(*args)
    else:
        lib.sal_set_threads(want)
        try:
            st = fn(*args)
        finally:
            lib.sal_set_threads(prev)
    _check(st)


def set_memory_budget(nbytes):
    """Most bytes the library may hold at once; larger requests raise MemoryBudgetError before they
    allocate. 0 (or None) restores the default, 75% of physical memory."""
    lib.sal_set_memory_budget(int(nbytes or 0))


def memory_budget():
    return lib.sal_memory_budget()


def memory_in_use():
    return lib.sal_memory_in_use()


def memory_peak():
    return lib.sal_memory_peak()


# ---- arrays ------------------------------------------------------------------------------------

_DTYPES = {_lib.DT_F32: np.float32, _lib.DT_I64: np.int64, _lib.DT_BOOL: np.bool_}
_CODES = {np.dtype(np.float32): _lib.DT_F32, np.dtype(np.int64): _lib.DT_I64, np.dtype(np.bool_): _lib.DT_BOOL}


def _numpy(x, name):
    """x as a NumPy array: PyTorch tensors (detached, on the CPU), lists, arrays."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.dtype.kind not in "fiub":
        raise TypeError("%s: an array of %s cannot be converted to float32 (give real numbers)" % (name, a.dtype))
    return a


def _f32(x, name, ndim_min=1):
    """A C-ordered float32 copy (or view) of x; other real dtypes and layouts are converted."""
    a = np.ascontiguousarray(_numpy(x, name), dtype=np.float32)
    if not ndim_min <= a.ndim <= _lib.MAX_DIMS:
        raise ValueError("%s: %d dimensions, %s; want %d to %d" % (name, a.ndim, a.shape, ndim_min, _lib.MAX_DIMS))
    return a


class _In:
    """Arrays lent to the library for one call: sal_tensor views that keep their arrays alive."""

    def __init__(self):
        self.keep = []

    def tensor(self, a):
        if a is None:
            return None
        a = np.ascontiguousarray(a)
        if a.dtype not in _CODES:
            raise TypeError("arrays passed to the library are float32, int64 or bool, not %s" % a.dtype)
        t = _lib.Tensor(dtype=_CODES[a.dtype], ndim=a.ndim)
        t.dim[:a.ndim] = a.shape
        t.data = a.ctypes.data if a.size else None
        t.cap = 0
        t.array = a  # the pointer keeps t alive, t the array: safe even when the _In is a temporary
        self.keep.append(t)
        return C.pointer(t)


def _array(t):
    """A NumPy copy of a sal_tensor (a Tensor or a pointer to one)."""
    if isinstance(t, C._Pointer):
        t = t.contents
    dt = np.dtype(_DTYPES[t.dtype])
    shape = tuple(t.dim[:t.ndim])
    n = int(np.prod(shape, dtype=np.int64))
    if n == 0 or not t.data:
        return np.zeros(shape, dt)
    buf = (C.c_char * (n * dt.itemsize)).from_address(t.data)
    return np.frombuffer(buf, dt).reshape(shape).copy()


class _Owned(_lib.Tensor):
    """A sal_tensor the library fills (OUT); call take() once to copy it out and free it."""

    def take(self):
        try:
            return _array(self)
        finally:
            lib.sal_tensor_free(C.byref(self))


def read_npy(path):
    """An NPY file read by the library (float32, int64; float64 converted)."""
    t = _Owned()
    _check(lib.sal_npy_read(_b(path), C.byref(t)))
    return t.take()


def save_npy(path, x):
    """Writes x as NPY the way the CLI does (atomically); float arrays are stored as float32."""
    a = _numpy(x, "save_npy")
    if a.dtype.kind == "f":
        a = a.astype(np.float32)
    elif a.dtype.kind in "iu":
        a = a.astype(np.int64)
    _check(lib.sal_npy_write(_b(path), _In().tensor(a)))


def read_png(path):
    """A PNG as float32 (C, H, W) in [0, 1]."""
    t = _Owned()
    _check(lib.sal_png_read(_b(path), C.byref(t)))
    return t.take()


def _with_temp(suffix, write):
    """Bytes of a file that write(path) makes in a temporary folder."""
    d = tempfile.mkdtemp(prefix="saliency.")
    try:
        p = os.path.join(d, "out" + suffix)
        write(p)
        with open(p, "rb") as f:
            return f.read()
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- figures -------------------------------------------------------------------------------------

class Figure:
    """A PNG image. A notebook shows it (_repr_png_); to_png(path) writes it; .png holds its bytes."""

    def __init__(self, png):
        self.png = png

    def _repr_png_(self):
        return self.png

    def to_png(self, path):
        with open(path, "wb") as f:
            f.write(self.png)

    def to_array(self):
        """The image as float32 (C, H, W) in [0, 1]."""
        d = tempfile.mkdtemp(prefix="saliency.")
        try:
            p = os.path.join(d, "f.png")
            self.to_png(p)
            return read_png(p)
        finally:
            shutil.rmtree(d, ignore_errors=True)


_CMAPS = {"auto": 0, "diverging": 1, "sequential": 2}
_REDUCE = {"sum": 0, "abs-sum": 1, "abs_sum": 1, "max-abs": 2, "max_abs": 2}
_SHARE = {"tile": 0, "row": 1, "col": 2, "all": 3}


def _choice(table, value, name):
    if value not in table:
        raise ValueError("%s must be one of %s, not %r" % (name, ", ".join(sorted(table)), value))
    return table[value]


def _heat_opts(cmap, reduce, clip, scale, overlay, alpha, colorbar):
    if clip is not None and not 0 < clip <= 100:
        raise ValueError("clip must be a percentile in (0, 100], not %r" % (clip,))
    if alpha is not None and not 0 < alpha <= 1:
        raise ValueError("alpha must be in (0, 1], not %r" % (alpha,))
    return _lib.HeatmapOpts(cmap=_choice(_CMAPS, cmap, "cmap"), reduce=_choice(_REDUCE, reduce, "reduce"),
                            clip=clip or 0, scale=int(scale or 0), overlay=int(bool(overlay)), alpha=alpha or 0,
                            colorbar=int(bool(colorbar)))


class Heatmap(Figure):
    """Attribution maps drawn as the CLI's `saliency heatmap` draws them (docs/heatmaps.md): one
    sample (H,W) or (C,H,W) gives one heatmap; a batch (N, C, H, W) a grid of up to `max` samples,
    `cols` per row. `image` is the input (the same batch, or one sample): shown beside each map, or
    under it with overlay=True. scale None: about 224 pixels a side."""

    def __init__(self, attr, image=None, cmap="auto", reduce="sum", clip=None, scale=None, overlay=False, alpha=None,
                 colorbar=True, share="tile", max=16, cols=4):
        self.map = _f32(attr, "heatmap: attr", 2)
        self.image = None if image is None else _f32(image, "heatmap: image", 2)
        if overlay and self.image is None:
            raise ValueError("heatmap: overlay=True needs the image")
        if not np.all(np.isfinite(self.map)):
            raise ValueError("heatmap: attr has non-finite values")
        self.opts = _heat_opts(cmap, reduce, clip, scale, overlay, alpha, colorbar)
        self.share, self.max, self.cols = _choice(_SHARE, share, "share"), int(max), int(cols)
        super().__init__(_with_temp(".png", self._write))

    def _write(self, path):  # the layout of the CLI's cli_heatmap_png
        m, x, o, inp = self.map, self.image, _lib.HeatmapOpts.from_buffer_copy(self.opts), _In()
        batched = m.ndim >= 4
        samples = list(m) if batched else [m]
        if samples[0].ndim not in (2, 3):
            raise ShapeError("heatmap: a sample of shape %s is not an (H,W) or (C,H,W) map" % (samples[0].shape,))
        if o.scale == 0:
            o.scale = min(64, max(1, 224 // max(samples[0].shape[-2:])))
        in_batched = x is not None and batched and x.ndim == m.ndim
        if x is not None and (x.shape[-2:] != m.shape[-2:] or (in_batched and len(x) not in (1, len(m)))):
            raise ShapeError("heatmap: image shape %s does not fit maps of shape %s" % (x.shape, m.shape))

        def image_of(i):
            return None if x is None else x[0 if len(x) == 1 else i] if in_batched else x
        count = min(len(samples), self.max, 16)
        if count == 1 and (x is None or o.overlay):
            _check(lib.sal_heatmap_png(_b(path), inp.tensor(samples[0]), inp.tensor(image_of(0)), C.byref(o)))
            return
        pairs = x is not None and not o.overlay
        per_row = min(count, self.cols)
        rows, cols = (count + per_row - 1) // per_row, per_row * (2 if pairs else 1)
        tiles = (_lib.GridTile * (rows * cols))()
        for i in range(count):
            r, c = i // per_row, (i % per_row) * (2 if pairs else 1)
            if pairs:
                tiles[r * cols + c].image = inp.tensor(image_of(i))
            tiles[r * cols + c + pairs].map = inp.tensor(samples[i])
            if x is not None:
                tiles[r * cols + c + pairs].image = inp.tensor(image_of(i))
        go = _lib.GridOpts(heat=o, share=self.share)
        _check(lib.sal_png_grid(_b(path), rows, cols, tiles, C.byref(go)))


def heatmap(attr, image=None, **opts):
    """A Heatmap of attr (see Heatmap); in a notebook it shows itself."""
    return Heatmap(attr, image, **opts)


def grid(maps, images=None, row_labels=None, col_labels=None, cmap="auto", reduce="sum", clip=None, scale=1,
         overlay=False, alpha=None, colorbar=False, share="tile", gap=0):
    """A figure grid as in the papers: maps[r][c] (None for no map) over images[r][c] (or
    images[r], one per row; None for none). A tile with an image and no map shows the image."""
    rows = len(maps)
    cols = max(len(r) for r in maps) if rows else 0
    if not rows or not cols:
        raise ValueError("grid: no tiles")
    inp = _In()
    tiles = (_lib.GridTile * (rows * cols))()
    for r in range(rows):
        for c in range(cols):
            m = maps[r][c] if c < len(maps[r]) else None
            im = None
            if images is not None:
                row = images[r]
                im = row[c] if isinstance(row, (list, tuple)) else row
            tiles[r * cols + c].map = None if m is None else inp.tensor(_f32(m, "grid: map", 2))
            tiles[r * cols + c].image = None if im is None else inp.tensor(_f32(im, "grid: image", 2))

    def labels(v, n, name):
        if v is None:
            return None
        if len(v) != n:
            raise ValueError("grid: %d %s for %d" % (len(v), name, n))
        arr = (C.c_char_p * n)(*[_b(s) for s in v])
        inp.keep.append(arr)
        return arr
    go = _lib.GridOpts(heat=_heat_opts(cmap, reduce, clip, scale, overlay, alpha, colorbar),
                       share=_choice(_SHARE, share, "share"), gap=int(gap))
    go.row_labels = labels(row_labels, rows, "row labels")
    go.col_labels = labels(col_labels, cols, "column labels")
    return Figure(_with_temp(".png", lambda p: _check(lib.sal_png_grid(_b(p), rows, cols, tiles, C.byref(go)))))


# ---- methods ------------------------------------------------------------------------------------

def methods():
    """Every attribution method: {name: {"summary", "logits_note", "params": {name: {"default",
    "help"}}}}, in the library's order. A default of None marks a required parameter."""
    out = {}
    for i in range(lib.sal_method_count()):
        params = {}
        for k in range(lib.sal_method_nparams(i)):
            n, d, h = C.c_char_p(), C.c_char_p(), C.c_char_p()
            lib.sal_method_param(i, k, C.byref(n), C.byref(d), C.byref(h))
            params[_str(n.value)] = {"default": _str(d.value) or None, "help": _str(h.value)}
        out[_str(lib.sal_method_name(i))] = {"summary": _str(lib.sal_method_summary(i)),
                                            "logits_note": _str(lib.sal_method_logits_note(i)), "params": params}
    return out


class _Params:
    """KEY=VALUE strings for the library: numbers and text as written, True/False as true/false, a
    list as the key repeated (as repeated --param options: rule=["conv*=gamma:0.25", "*=epsilon"]),
    an array as a temporary NPY file (baseline=, segments=)."""

    def __init__(self, params):
        self.dir = None
        self.items = []
        for k, v in params.items():
            for one in (v if isinstance(v, list) else [v]):
                self.items.append(("%s=%s" % (k, self._value(k, one))).encode())
        self.array = (C.c_char_p * max(1, len(self.items)))(*self.items)

    def _value(self, k, v):
        if isinstance(v, (bool, np.bool_)):
            return "true" if v else "false"
        if isinstance(v, np.ndarray) or hasattr(v, "detach"):
            if self.dir is None:
                self.dir = tempfile.mkdtemp(prefix="saliency.")
            p = os.path.join(self.dir, "%s%d.npy" % (k.replace(".", "_"), len(self.items)))
            save_npy(p, v)
            return p
        if isinstance(v, (tuple, dict, set)):
            raise TypeError("parameter %s: give the text the method takes (saliency.methods() says which, e.g. "
                            "window=\"4x4\"), not %r" % (k, v))
        return os.fspath(v) if isinstance(v, os.PathLike) else str(v)

    def __len__(self):
        return len(self.items)

    def close(self):
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


class Explanation:
    """What sal_explain returns: .map (the input's shape), .layer_map (layer methods, else None),
    .targets and .outputs per sample, .method (the fallback when it stood in), .fallback (why),
    .info (the JSON: parameters with defaults, checks) and .json (its text, as the CLI's --json)."""

    def __init__(self, ptr):
        self.map = _array(lib.sal_explanation_map(ptr))
        lm = lib.sal_explanation_layer_map(ptr)
        self.layer_map = _array(lm) if lm else None
        n = self.map.shape[0]
        self.targets = np.ctypeslib.as_array(lib.sal_explanation_targets(ptr), (n,)).copy()
        self.outputs = np.ctypeslib.as_array(lib.sal_explanation_outputs(ptr), (n,)).copy()
        self.method = _str(lib.sal_explanation_method(ptr))
        self.fallback = _str(lib.sal_explanation_fallback(ptr))
        js = C.c_void_p()
        _check(lib.sal_explanation_json(ptr, C.byref(js)))
        # "ranks" first, as the CLI writes it (one process here: docs/scaling.md)
        self.json = '{\n  "ranks": 1,' + _lib.take_string(js)[1:]
        self.info = json.loads(self.json)

    def heatmap(self, image=None, **opts):
        return Heatmap(self.map, image, **opts)


_TARGETS = {"max": 0, "min": 1, "sum": 3}


# ---- models ---------------------------------------------------------------------------------------

class Model:
    """An ONNX model loaded by the library (opsets 9 to 17). Calls from several Python threads are
    safe: each thread gets its own session (the buffers of forward and backward passes)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._ptr = C.c_void_p()
        _check(lib.sal_model_load(_b(self.path), C.byref(self._ptr)))
        self._local = threading.local()
        self._shapes = {}
        self._sessions = []
        self._lock = threading.Lock()

    def close(self):
        """Frees the model now (it is freed when collected otherwise)."""
        if getattr(self, "_ptr", None):
            for s in self._sessions:
                lib.sal_session_free(s)
            self._sessions = []
            lib.sal_model_free(self._ptr)
            self._ptr = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 (interpreter shutdown: the library may be gone first)
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "saliency.Model(%r)" % self.path

    def _p(self):
        if not self._ptr:
            raise ValueError("the model is closed")
        return self._ptr

    def _session(self):
        s = getattr(self._local, "session", None)
        if s is None:
            s = C.c_void_p()
            _check(lib.sal_session_new(self._p(), C.byref(s)))
            with self._lock:
                self._sessions.append(s)
            self._local.session = s
        return s

    def save(self, path):
        """Writes the model as ONNX."""
        _check(lib.sal_model_save(self._p(), _b(path)))

    def input_shape(self, i=0):
        """Declared shape of input i; the dynamic batch reads -1."""
        if i not in self._shapes:
            nd, dim = C.c_int(), (C.c_int64 * _lib.MAX_DIMS)()
            lib.sal_model_input_shape(self._p(), i, C.byref(nd), dim)
            self._shapes[i] = tuple(dim[:nd.value])
        return self._shapes[i]

    def _batch(self, x, i=0, name="x"):
        a = _f32(x, name)
        shape = self.input_shape(i)
        if a.ndim == len(shape) - 1 and len(shape) > 1:  # one sample: add the batch axis, as the CLI does
            a = a[None]
        return a

    def info(self):
        """Inputs, outputs (with shapes from a pass on zeros at batch 1), nodes, parameter count,
        what output 0 holds and the layers Grad-CAM can use (the last is the default)."""
        m = self._p()
        kinds = ["scores", "softmax", "sigmoid", "log_softmax"]
        inputs = [{"name": _str(lib.sal_model_input_name(m, i)), "shape": self.input_shape(i)}
                  for i in range(lib.sal_model_num_inputs(m))]
        nodes = []
        for i in range(lib.sal_model_num_nodes(m)):
            nodes.append({"name": _str(lib.sal_model_node_name(m, i)), "op": _str(lib.sal_model_node_op(m, i)),
                          "inputs": [_str(lib.sal_model_node_input(m, i, k))
                                     for k in range(lib.sal_model_node_num_inputs(m, i))],
                          "outputs": [_str(lib.sal_model_node_output(m, i, k))
                                      for k in range(lib.sal_model_node_num_outputs(m, i))]})
        out = {"path": self.path, "producer": _str(lib.sal_model_producer(m)), "opset": lib.sal_model_opset(m),
               "params": lib.sal_model_param_count(m), "output_kind": kinds[lib.sal_model_output_kind(m)],
               "inputs": inputs, "nodes": nodes, "cam_layers": []}
        names = [_str(lib.sal_model_output_name(m, i)) for i in range(lib.sal_model_num_outputs(m))]
        out["outputs"] = [{"name": n, "shape": None} for n in names]
        try:
            self._forward([np.zeros([1 if d < 0 else d for d in i["shape"]], np.float32) for i in inputs], keep=True)
        except SaliencyError:
            return out  # shapes unknown (as the CLI's info says)
        s = self._session()
        for o in out["outputs"]:
            t = lib.sal_session_value(s, _b(o["name"]))
            o["shape"] = tuple(t.contents.dim[:t.contents.ndim]) if t else None
        cnt = C.c_int()
        if lib.sal_cam_layers(s, None, 0, C.byref(cnt)) == 0 and cnt.value:
            idx = (C.c_int * cnt.value)()
            _check(lib.sal_cam_layers(s, idx, cnt.value, C.byref(cnt)))
            out["cam_layers"] = [nodes[i]["name"] for i in idx]
        return out

    def _forward(self, inputs, keep):
        """sal_forward on the model's session, keeping every value or (keep False) the outputs only,
        whose pass reuses each activation's buffer once no later node reads it. The outputs."""
        m = self._p()
        n = lib.sal_model_num_inputs(m)
        if len(inputs) != n:
            raise ValueError("the model takes %d inputs, %d given" % (n, len(inputs)))
        inp = _In()
        arr = (_lib.Tensor * n)()
        for i, x in enumerate(inputs):
            arr[i] = inp.tensor(self._batch(x, i, "input %d" % i)).contents
        outs = (C.POINTER(_lib.Tensor) * max(1, lib.sal_model_num_outputs(m)))()
        s = self._session()
        lib.sal_session_keep_values(s, 1 if keep else 0)
        try:
            _call(lib.sal_forward, s, n, arr, outs)
        finally:
            lib.sal_session_keep_values(s, 1)
        return outs

    def run(self, *inputs, output=None):
        """Forward pass: one array per model input (one sample without the batch axis is taken as a
        batch of one). Returns output 0, or the value named `output` (any node output), or a dict
        when `output` is a list of names."""
        outs = self._forward(inputs, keep=output is not None)
        s = self._session()
        if output is None:
            return _array(outs[0])
        names = [output] if isinstance(output, str) else list(output)
        vals = {}
        for name in names:
            t = lib.sal_session_value(s, _b(name))
            if not t:
                raise ArgumentError("the model has no value named '%s'" % name)
            vals[name] = _array(t)
        return vals[output] if isinstance(output, str) else vals

    def explain(self, x, method="gradient", target=None, *, details=False, prob=False, data=None, range=None,
                chunk=0, fallback=None, output_name=None, target_mask=None, patterns=None, **params):
        """Attributions of x (N, ...) (or one sample) for output 0 (or output_name), of the shape of x.

        target: None or "max" (the predicted class), "min", a class index, one index per sample,
        or "sum" (the whole output: segmentation, detection); target_mask=M explains the output
        weighted by M instead. params are the method's (saliency.methods() lists them), e.g.
        steps=32, baseline="black"; an array value is passed as an NPY file. prob: explain the
        softmax probability. data: reference samples (baselines, input range); range=(lo, hi).
        patterns: a file written by `saliency patterns` (or give patterns="FILE" as a parameter).
        details=True returns an Explanation (map, targets, outputs, the JSON) instead of the map."""
        a = self._batch(x)
        inp = _In()
        o = _lib.ExplainOpts(method=_b(method), prob=int(bool(prob)), chunk=int(chunk), fallback=_b(fallback),
                             output_name=_b(output_name))
        if target_mask is not None:
            if target not in (None, "max"):
                raise ValueError("target_mask replaces target: give one of them")
            o.target, o.target_mask = 4, inp.tensor(_f32(target_mask, "target_mask"))
        elif target is None or isinstance(target, str):
            o.target = _choice(_TARGETS, target or "max", "target")
        else:
            cls = np.ascontiguousarray(np.atleast_1d(_numpy(target, "target")))
            if cls.dtype.kind not in "iu" or cls.ndim != 1:
                raise TypeError("target: a class index or one per sample (integers), not %r" % (target,))
            cls = cls.astype(np.int64)
            inp.keep.append(cls)
            o.target, o.nclasses = 2, len(cls)
            o.classes = cls.ctypes.data_as(C.POINTER(C.c_int64))
        if data is not None:
            o.data = inp.tensor(_f32(data, "data"))
        if range is not None:
            o.data_lo, o.data_hi = map(float, range)
            if not o.data_hi > o.data_lo:
                raise ValueError("range must be (lo, hi) with lo < hi, not %r" % (range,))
        pat = None
        if patterns is not None:
            pat = C.c_void_p()
            _check(lib.sal_patterns_load(_b(patterns), C.byref(pat)))
            o.patterns = pat
        ps = _Params(params)
        o.nparams, o.params = len(ps), ps.array
        o.session = self._session()
        e = C.c_void_p()
        try:
            _call(lib.sal_explain, self._p(), inp.tensor(a), C.byref(o), C.byref(e))
            if details:
                return Explanation(e)
            return _array(lib.sal_explanation_map(e))
        finally:
            lib.sal_explanation_free(e)
            lib.sal_patterns_free(pat)
            ps.close()

    def gradient(self, x, seed):
        """Gradient of sum(seed * output 0) with respect to each input (a list), after a forward
        pass on x (a single-input model) or on the tuple x."""
        xs = x if isinstance(x, tuple) else (x,)
        self._forward(xs, keep=True)
        s = self._session()
        n = lib.sal_model_num_inputs(self._p())
        g = (C.POINTER(_lib.Tensor) * n)()
        _call(lib.sal_input_gradient, s, _In().tensor(_f32(seed, "seed")), g)
        return [_array(g[i]) for i in builtins.range(n)]

    def estimate_patterns(self, data, path, source="array"):
        """Signal patterns of PatternNet and PatternAttribution estimated from data (N, ...), saved
        to path (as `saliency patterns`); then explain(x, "pattern_attribution", patterns=path)."""
        pat = C.c_void_p()
        try:
            _call(lib.sal_patterns_estimate, self._p(), _In().tensor(_f32(data, "data")), _b(source), None,
                  C.byref(pat))
            _check(lib.sal_patterns_save(pat, _b(path)))
        finally:
            lib.sal_patterns_free(pat)
        return os.fspath(path)

    def rules(self, method, output_name=None, **params):
        """The backward rule each node gets from an LRP-family method: {node name: rule}."""
        ps = _Params(params)
        r = C.POINTER(C.c_char_p)()
        try:
            _check(lib.sal_method_rules(self._p(), _b(method), len(ps), ps.array, _b(output_name), C.byref(r)))
            n = lib.sal_model_num_nodes(self._p())
            out = {_str(lib.sal_model_node_name(self._p(), i)): _str(r[i]) for i in builtins.range(n)}
            lib.sal_method_rules_free(r, n)
            return out
        finally:
            ps.close()



def from_torch(module, example_input, opset=13, path=None):
    """Exports a PyTorch module through torch.onnx (opset 13 or above, dynamic batch) and loads it.
    example_input: one batch (a tensor or array; a tuple for several inputs). path: keep the ONNX
    file there (default: a temporary file, deleted after loading)."""
    import torch
    if opset < 13:
        raise ValueError("from_torch exports with opset 13 or above, not %d" % opset)
    xs = example_input if isinstance(example_input, tuple) else (example_input,)
    xs = tuple(x if isinstance(x, torch.Tensor) else torch.from_numpy(_f32(x, "example_input")) for x in xs)
    names = ["input"] if len(xs) == 1 else ["input%d" % i for i in builtins.range(len(xs))]
    axes = {n: {0: "batch"} for n in names + ["output"]}
    d = None
    if path is None:
        d = tempfile.mkdtemp(prefix="saliency.")
        p = os.path.join(d, "model.onnx")
    else:
        p = os.fspath(path)
    try:
        with torch.no_grad():
            torch.onnx.export(module, xs, p, opset_version=opset, input_names=names, output_names=["output"],
                              dynamic_axes=axes)
        m = Model(p)
        if d:  # the file is gone: audits and reports name the module instead
            m.path = "torch:%s" % type(module).__name__
        return m
    finally:
        if d:
            shutil.rmtree(d, ignore_errors=True)


# ---- audits ----------------------------------------------------------------------------------

class AuditResult(dict):
    """An audit's report: the dict of its JSON (docs/audits.md), plus .json and .csv (the texts the
    CLI's --json and --csv write), figure() (the grid of maps, as --figure) and plot() (the
    curves of randomization and faithfulness, as --plot), both Figures."""

    def __init__(self, ptr):
        js, cs = C.c_void_p(), C.c_void_p()
        try:
            _check(lib.sal_audit_json(ptr, C.byref(js)))
            self.json = _lib.take_string(js)
            _check(lib.sal_audit_csv(ptr, C.byref(cs)))
            self.csv = _lib.take_string(cs)
        except BaseException:
            lib.sal_audit_free(ptr)
            raise
        super().__init__(json.loads(self.json))
        self._ptr = ptr
        self.violations = lib.sal_audit_violations(ptr)

    def __del__(self):
        if getattr(self, "_ptr", None) and lib:
            lib.sal_audit_free(self._ptr)
            self._ptr = None

    def figure(self):
        return Figure(_with_temp(".png", lambda p: _check(lib.sal_audit_figure(self._ptr, _b(p)))))

    def plot(self):
        return Figure(_with_temp(".png", lambda p: _check(lib.sal_audit_plot(self._ptr, _b(p)))))

    def save(self, prefix, figure=True):
        """Writes PREFIX.json, PREFIX.csv and (figure=True, when the audit has one) PREFIX.png: the
        files `saliency report` reads."""
        with open(prefix + ".json", "w") as f:
            f.write(self.json)
        with open(prefix + ".csv", "w") as f:
            f.write(self.csv)
        if figure:
            try:
                self.figure().to_png(prefix + ".png")
            except SaliencyError:
                pass  # audits without maps to show (documented in sal_audit_figure)


def _audit_common(model, methods, data, seed, batch, chunk, prob, tol, figure_sample, model_name, data_name, progress,
                  inp):
    c = _lib.AuditCommon(seed=int(seed), batch=int(batch), chunk=int(chunk), prob=int(bool(prob)), tol=float(tol),
                         figure_sample=int(figure_sample))
    c.model_name = _b(model.path if model_name is None else model_name)
    c.data_name = _b(data_name if data_name is not None else "array")
    if data is not None:
        c.data = inp.tensor(_f32(data, "data"))
    if progress is not None:  # called from the computing thread, which takes the GIL for it
        def cb(user, what, done, total, detail):
            progress(_str(what), done, total, _str(detail))
        c.progress = _lib.PROGRESS(cb)
        inp.keep.append(c.progress)
    if methods is not None:
        if isinstance(methods, str):
            methods = methods.split(",")
        known = set(_method_names())
        arr = (_lib.AuditMethod * len(methods))()
        for i, m in enumerate(methods):
            name, params = (m, {}) if isinstance(m, str) else (m[0], m[1])
            if name not in known:
                raise ArgumentError("unknown method '%s' (saliency.methods() lists them)" % name)
            ps = _Params(params)
            inp.keep.append(ps)
            arr[i].name, arr[i].nparams, arr[i].params = _b(name), len(ps), ps.array
            inp.keep.append(arr[i].name)
        c.methods, c.nmethods = arr, len(methods)
        inp.keep.append(arr)
    return c


def _method_names():
    return [_str(lib.sal_method_name(i)) for i in builtins.range(lib.sal_method_count())]


def _run_audit(fn, model, x, opts, inp):
    a = model._batch(x)
    out = C.c_void_p()
    try:
        _call(fn, model._p(), inp.tensor(a), C.byref(opts), C.byref(out))
    finally:
        for k in inp.keep:
            if isinstance(k, _Params):
                k.close()
    return AuditResult(out)


_COMMON_DOC = """
    Common arguments: methods (None: every method with its defaults; names, "a,b", or (name,
    {params}) pairs), data (reference samples), seed, batch (samples per explanation call), chunk,
    prob (explain softmax probabilities), tol (verdict threshold; 0: the audit's default),
    figure_sample, model_name / data_name as the report shows them, and progress: a function
    progress(what, done, total, detail) called as the audit goes. Returns an AuditResult:
    the JSON's dict, with .json, .csv, figure() and plot()."""


def audit_invariance(model, x, shift, *, own_decisions=False, methods=None, data=None, seed=1, batch=0, chunk=0,
                     prob=False, tol=0, figure_sample=0, model_name=None, data_name=None, progress=None):
    """Input invariance (Kindermans et al.): shift is a number (a constant shift, e.g. -1) or one
    sample's array (see shift_checkerboard, shift_image, shift_targeted)."""
    inp = _In()
    a = model._batch(x)
    if np.isscalar(shift):
        shift = np.full(a.shape[1:], shift, np.float32)
    o = _lib.InvarianceOpts(common=_audit_common(model, methods, data, seed, batch, chunk, prob, tol,
                                                 figure_sample, model_name, data_name, progress, inp),
                            own_decisions=int(bool(own_decisions)))
    o.shift = inp.tensor(_f32(shift, "shift"))
    return _run_audit(lib.sal_audit_invariance, model, a, o, inp)


def audit_randomization(model, x, *, mode="both", init="gaussian", sigma=0, methods=None, data=None, seed=1,
                        batch=0, chunk=0, prob=False, tol=0, figure_sample=0, model_name=None, data_name=None,
                        progress=None):
    """Parameter randomization (Adebayo et al.): mode cascading, independent or both; init gaussian
    (N(0, sigma^2), sigma 0.01 by default) or scaled (N(0, 2/fan_in))."""
    inp = _In()
    o = _lib.RandomizationOpts(common=_audit_common(model, methods, data, seed, batch, chunk, prob, tol,
                                                    figure_sample, model_name, data_name, progress, inp),
                               mode=_choice({"cascading": 1, "independent": 2, "both": 3}, mode, "mode"),
                               scaled=_choice({"gaussian": 0, "scaled": 1}, init, "init"), sigma=float(sigma))
    return _run_audit(lib.sal_audit_randomization, model, x, o, inp)


def audit_class_sensitivity(model, x, *, figure_samples=0, methods=None, data=None, seed=1, batch=0, chunk=0,
                            prob=False, tol=0, figure_sample=0, model_name=None, data_name=None, progress=None):
    """Class sensitivity (Rebuffi et al.): maps of the top and the bottom class must differ."""
    inp = _In()
    o = _lib.ClassSensitivityOpts(common=_audit_common(model, methods, data, seed, batch, chunk, prob, tol,
                                                       figure_sample, model_name, data_name, progress, inp),
                                  figure_samples=int(figure_samples))
    return _run_audit(lib.sal_audit_class_sensitivity, model, x, o, inp)


def audit_pointing(model, x, masks, labels, *, radius=0, point_map="energy", methods=None, data=None, seed=1,
                   batch=0, chunk=0, prob=False, tol=0, figure_sample=0, model_name=None, data_name=None,
                   progress=None):
    """Pointing game and restricted pointing game: masks (N,H,W) class + 1 per pixel (or
    (N,K,H,W)), labels (N,K) multi-hot; point_map energy, max_abs or sum."""
    inp = _In()
    o = _lib.PointingOpts(common=_audit_common(model, methods, data, seed, batch, chunk, prob, tol,
                                               figure_sample, model_name, data_name, progress, inp),
                          radius=float(radius), reduce=_choice({"energy": 0, "max_abs": 1, "sum": 2}, point_map,
                                                               "point_map"))
    mk = _numpy(masks, "masks")
    o.masks = inp.tensor(np.ascontiguousarray(mk, np.int64 if mk.dtype.kind in "iub" else np.float32))
    o.labels = inp.tensor(_f32(labels, "labels"))
    return _run_audit(lib.sal_audit_pointing, model, x, o, inp)


def audit_faithfulness(model, x, *, steps=0, replace="value", value=0.0, blur_sigma=0, noise=0,
                       occlusion_params=None, methods=None, data=None, seed=1, batch=0, chunk=0, prob=False, tol=0,
                       figure_sample=0, model_name=None, data_name=None, progress=None):
    """Deletion and insertion curves, AOPC, agreement with occlusion: replace value (with value;
    NaN: the range's low end), blur (blur_sigma pixels) or noise (noise: a fraction of the range)."""
    inp = _In()
    ps = _Params(occlusion_params or {})
    inp.keep.append(ps)
    o = _lib.FaithfulnessOpts(common=_audit_common(model, methods, data, seed, batch, chunk, prob, tol,
                                                   figure_sample, model_name, data_name, progress, inp),
                              steps=int(steps),
                              replace=_choice({"value": 0, "blur": 1, "noise": 2}, replace, "replace"),
                              value=float(value), blur_sigma=float(blur_sigma), noise=float(noise),
                              nocc_params=len(ps), occ_params=ps.array)
    return _run_audit(lib.sal_audit_faithfulness, model, x, o, inp)


for _f in (audit_invariance, audit_randomization, audit_class_sensitivity, audit_pointing, audit_faithfulness):
    _f.__doc__ += _COMMON_DOC


def report(out_dir, results=None, in_dir=None, title=None):
    """The HTML report (docs/report.md) in out_dir/index.html, of the audit files in in_dir (as
    `saliency report --in`), or of results: {name: AuditResult}. Returns the page's path."""
    if (results is None) == (in_dir is None):
        raise ValueError("report: give results or in_dir")
    tmp = None
    if results is not None:
        tmp = in_dir = tempfile.mkdtemp(prefix="saliency.")
        for name, r in results.items():
            r.save(os.path.join(tmp, name))
    try:
        n = C.c_int()
        o = _lib.ReportOpts(title=_b(title))
        _check(lib.sal_report_write(_b(in_dir), _b(out_dir), C.byref(o), C.byref(n)))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return os.path.join(os.fspath(out_dir), "index.html")


# ---- data builders ----------------------------------------------------------------------------

def dataset(spec):
    """A data set by name ("mnist", "fashion-mnist", "X.npy:Y.npy"): a dict of train_x, train_y,
    test_x and test_y arrays (test ones None when it has no test part)."""
    d = _lib.Dataset()
    _check(lib.sal_dataset_load(_b(spec), C.byref(d)))
    try:
        return {k: (_array(getattr(d, k)) if getattr(d, k).data else None)
                for k in ("train_x", "train_y", "test_x", "test_y")}
    finally:
        lib.sal_dataset_free(C.byref(d))


def composite(x, y, count=1000, size=(56, 56), items=2, items_max=None, scale=1, threshold=0.1, seed=1):
    """Multi-object images for the pointing game (as `saliency data composite`): items of x
    (M,1,h,w) with labels y (M) placed on canvases. Returns (images, labels, masks)."""
    inp = _In()
    h, w = (size, size) if np.isscalar(size) else size
    o = _lib.CompositeOpts(count=int(count), h=int(h), w=int(w), items=int(items),
                           items_max=int(items if items_max is None else items_max), scale=int(scale),
                           threshold=float(threshold), seed=int(seed))
    yy = np.ascontiguousarray(_numpy(y, "y"), np.int64)
    outs = [_Owned(), _Owned(), _Owned()]
    _call(lib.sal_composite, inp.tensor(_f32(x, "x")), inp.tensor(yy), C.byref(o), *[C.byref(t) for t in outs])
    return tuple(t.take() for t in outs)


def _sample_shape(shape):
    shape = tuple(int(s) for s in shape)
    return len(shape), (C.c_int64 * max(1, len(shape)))(*shape)


def shift_checkerboard(shape, cell, amp):
    """A checkerboard shift of one sample's shape: amp on cells of cell pixels, 0 on the others."""
    t = _Owned()
    _check(lib.sal_shift_checkerboard(*_sample_shape(shape), int(cell), float(amp), C.byref(t)))
    return t.take()


def shift_image(image, shape, amp=1.0):
    """An image (H,W) or (C,H,W) fitted to one sample's shape and multiplied by amp."""
    t = _Owned()
    _check(lib.sal_shift_image(_In().tensor(_f32(image, "image", 2)), *_sample_shape(shape), float(amp), C.byref(t)))
    return t.take()


def shift_targeted(model, x, target, scale=0.0, clip=0.3):
    """Kindermans et al.'s targeted shift: makes gradient x input on the shifted model show target."""
    inp = _In()
    t = _Owned()
    _check(lib.sal_shift_targeted(model._p(), inp.tensor(model._batch(x)[:1]), inp.tensor(_f32(target, "target", 2)),
                                  float(scale), float(clip), C.byref(t)))
    return t.take()


# ---- feature visualization ----------------------------------------------------------------------

class Visualization(Figure):
    """Inputs optimized to maximize an objective: .images (batch, ...), .before and .after (the
    objective per image), .snapshots and .steps (when asked for), .info (the JSON). Shows the images
    as a grid."""

    def __init__(self, ptr):
        self.images = _array(lib.sal_featviz_images(ptr))
        n = len(self.images)
        self.before = np.ctypeslib.as_array(lib.sal_featviz_before(ptr), (n,)).copy()
        self.after = np.ctypeslib.as_array(lib.sal_featviz_after(ptr), (n,)).copy()
        snap = lib.sal_featviz_snapshots(ptr)
        self.snapshots = _array(snap) if snap else None
        self.steps = (np.ctypeslib.as_array(lib.sal_featviz_snapshot_steps(ptr), (len(self.snapshots),)).copy()
                      if snap else None)
        js = C.c_void_p()
        _check(lib.sal_featviz_json(ptr, C.byref(js)))
        # "ranks" first, as the CLI writes it (one process here: docs/scaling.md)
        self.json = '{\n  "ranks": 1,' + _lib.take_string(js)[1:]
        self.info = json.loads(self.json)
        png = None
        if self.images.ndim == 4:  # images: one row of tiles, about 112 pixels a side
            png = grid([[None] * n], [list(self.images)], scale=max(1, 112 // max(self.images.shape[-2:]))).png
        super().__init__(png)


_FV_ENUMS = {"opt": {"adam": 1, "sgd": 0, "gd": 0}, "space": {"pixel": 0, "fourier": 1, "softmax": 2}}


def visualize(model, objective, **opts):
    """Feature visualization (docs/feature-visualization.md): optimizes inputs that maximize an
    objective ("channel:conv2:3", "logit:7", "layer:c1 - 0.2*layer:c2", ...). opts are the fields
    of sal_featviz_opts: steps, lr, seed, batch, opt ("adam", "sgd"), space ("pixel", "fourier",
    "softmax": a position probability matrix for one-hot sequence models),
    decay, decorrelate, init_sd, lo, hi, clip, l1, l2, center, tv, tv_beta, norm, blur_every,
    blur_sigma, pad, fill, jitter, jitter2, diversity, diversity_node, ppm, entropy, snapshots; data, init
    (arrays), scales and angles (lists); robust=True is the CLI's --robust (Olah et al.'s
    transformations scaled to the input). Returns a Visualization."""
    obj = C.c_void_p()
    _check(lib.sal_objective_parse(model._p(), _b(objective), C.byref(obj)))
    try:
        return _featviz(model, obj, opts)
    finally:
        lib.sal_objective_free(obj)


def invert(model, x, node, **opts):
    """Model inversion (Mahendran & Vedaldi, as `saliency invert`): inputs whose representation at
    node matches that of x. opts as visualize's; total variation 0.01 by default, and the range
    that of x unless data, lo and hi say otherwise."""
    a = model._batch(x)
    obj = C.c_void_p()
    _check(lib.sal_objective_inversion(model._p(), _b(node), _In().tensor(a), C.byref(obj)))
    opts.setdefault("tv", 0.01)
    if opts.get("data") is None and "lo" not in opts and "hi" not in opts:
        lo, hi = float(a.min()), float(a.max())
        opts["lo"], opts["hi"] = lo, hi if hi > lo else lo + 1
    try:
        return _featviz(model, obj, opts)
    finally:
        lib.sal_objective_free(obj)


def _featviz(model, obj, opts):
    inp = _In()
    o = lib.sal_featviz_defaults()
    fields = dict(_lib.FeatvizOpts._fields_)
    data, init = opts.pop("data", None), opts.pop("init", None)
    lists = {k: opts.pop(k) for k in ("scales", "angles") if opts.get(k) is not None}
    if opts.pop("robust", False):  # as the CLI: pad, jitter, scale, rotate, jitter again
        shape = model.input_shape()
        side = shape[2] if len(shape) in (3, 4) else -1
        if side <= 0 and data is not None and np.ndim(data) == len(shape) >= 3:
            side = np.shape(data)[2]
        if side <= 0:
            raise ValueError("robust=True needs (N,C,L) or (N,C,H,W) inputs of a known size")
        o.pad = o.jitter = max(1, side // 14)
        o.jitter2 = max(1, side // 28)
        if len(shape) == 4:
            lists = dict(scales=[1, 0.975, 1.025, 0.95, 1.05], angles=list(builtins.range(-5, 6)), **lists)
    for k, v in opts.items():
        if k in _FV_ENUMS:
            v = _choice(_FV_ENUMS[k], v, k)
        elif k not in fields or k in ("nscales", "nangles", "on_step", "user"):
            raise TypeError("unknown feature visualization option %r" % k)
        elif k == "diversity_node":
            v = _b(v)
        setattr(o, k, int(v) if fields[k] in (C.c_int, C.c_uint64) else v)
    if data is not None:
        o.data = inp.tensor(_f32(data, "data"))
    if init is not None:
        o.init = inp.tensor(model._batch(init, 0, "init"))
    for name, vals in lists.items():
        arr = (C.c_float * len(vals))(*vals)
        inp.keep.append(arr)
        setattr(o, name, arr)
        setattr(o, "n" + name, len(vals))
    out = C.c_void_p()
    try:
        _call(lib.sal_visualize, model._p(), obj, C.byref(o), C.byref(out))
        return Visualization(out)
    finally:
        lib.sal_featviz_free(out)


def objective_values(model, objective, x, chunk=0):
    """The objective of each sample of x."""
    a = model._batch(x)
    obj = C.c_void_p()
    _check(lib.sal_objective_parse(model._p(), _b(objective), C.byref(obj)))
    try:
        vals = np.zeros(len(a), np.float32)
        _call(lib.sal_objective_values, model._p(), obj, _In().tensor(a), int(chunk),
              vals.ctypes.data_as(C.POINTER(C.c_float)))
        return vals
    finally:
        lib.sal_objective_free(obj)
