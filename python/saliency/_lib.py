"""ctypes declarations of include/saliency.h and the search for libsaliency.so.0.

ctypes (the standard library) keeps the package free of compiled code: a wheel is this folder, and
ctypes releases the GIL for the whole of every call into the library. The structures mirror the
header field by field; tests/test_python.py checks their sizes and offsets against a C compiler."""
import ctypes as C
import glob
import os

SONAME = "libsaliency.so.0"
MAX_DIMS = 8
DT_F32, DT_I64, DT_BOOL = 1, 7, 9

_HERE = os.path.dirname(os.path.abspath(__file__))


def _candidates():
    """Where the library may be, in order: $SALIENCY_LIB (a file), the copy pip installed beside
    this file, the build folder of the source tree this file sits in ($SALIENCY_BUILD, default
    build), then the dynamic loader's own search (ld.so.cache: make install, the Debian package)."""
    env = os.environ.get("SALIENCY_LIB")
    if env:
        return [env]
    root = os.path.dirname(os.path.dirname(_HERE))
    build = os.environ.get("SALIENCY_BUILD", "build")
    # make shared names the file by its full version (libsaliency.so.0.1.0); the soname link is install's
    built = sorted(glob.glob(os.path.join(root, build, SONAME + "*")))
    return [os.path.join(_HERE, SONAME)] + built[-1:] + [SONAME]


def _load():
    errors = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            errors.append("%s: not found" % path)
            continue
        try:
            return C.CDLL(path), path
        except OSError as e:
            errors.append(str(e))
    raise ImportError("saliency: cannot load %s (%s). Build it with `make shared`, install it with `make install`, "
                      "or point SALIENCY_LIB at it." % (SONAME, "; ".join(errors)))


class Tensor(C.Structure):
    _fields_ = [("dtype", C.c_int), ("ndim", C.c_int), ("dim", C.c_int64 * MAX_DIMS), ("data", C.c_void_p),
                ("cap", C.c_size_t)]


class HeatmapOpts(C.Structure):
    _fields_ = [("cmap", C.c_int), ("reduce", C.c_int), ("clip", C.c_double), ("scale", C.c_int),
                ("overlay", C.c_int), ("alpha", C.c_double), ("colorbar", C.c_int)]


class GridTile(C.Structure):
    _fields_ = [("map", C.POINTER(Tensor)), ("image", C.POINTER(Tensor))]


class GridOpts(C.Structure):
    _fields_ = [("heat", HeatmapOpts), ("share", C.c_int), ("gap", C.c_int),
                ("row_labels", C.POINTER(C.c_char_p)), ("col_labels", C.POINTER(C.c_char_p))]


PROGRESS = C.CFUNCTYPE(None, C.c_void_p, C.c_char_p, C.c_int64, C.c_int64, C.c_char_p)
ON_STEP = C.CFUNCTYPE(None, C.c_void_p, C.c_int, C.c_double, C.c_double)


class ExplainOpts(C.Structure):
    _fields_ = [("method", C.c_char_p), ("nparams", C.c_int), ("params", C.POINTER(C.c_char_p)),
                ("target", C.c_int), ("classes", C.POINTER(C.c_int64)), ("nclasses", C.c_int64), ("prob", C.c_int),
                ("data", C.POINTER(Tensor)), ("data_lo", C.c_double), ("data_hi", C.c_double),
                ("chunk", C.c_int64), ("session", C.c_void_p), ("patterns", C.c_void_p), ("fallback", C.c_char_p),
                ("output_name", C.c_char_p), ("target_mask", C.POINTER(Tensor)), ("first", C.c_int64)]


class AuditMethod(C.Structure):
    _fields_ = [("name", C.c_char_p), ("nparams", C.c_int), ("params", C.POINTER(C.c_char_p))]


class AuditCommon(C.Structure):
    _fields_ = [("nmethods", C.c_int), ("methods", C.POINTER(AuditMethod)), ("data", C.POINTER(Tensor)),
                ("model_name", C.c_char_p), ("data_name", C.c_char_p), ("seed", C.c_uint64), ("batch", C.c_int64),
                ("chunk", C.c_int64), ("prob", C.c_int), ("tol", C.c_double), ("figure_sample", C.c_int64),
                ("progress", PROGRESS), ("progress_user", C.c_void_p), ("shard", C.c_void_p)]


class InvarianceOpts(C.Structure):
    _fields_ = [("common", AuditCommon), ("shift", C.POINTER(Tensor)), ("own_decisions", C.c_int)]


class RandomizationOpts(C.Structure):
    _fields_ = [("common", AuditCommon), ("mode", C.c_int), ("scaled", C.c_int), ("sigma", C.c_double)]


class ClassSensitivityOpts(C.Structure):
    _fields_ = [("common", AuditCommon), ("figure_samples", C.c_int)]


class PointingOpts(C.Structure):
    _fields_ = [("common", AuditCommon), ("masks", C.POINTER(Tensor)), ("labels", C.POINTER(Tensor)),
                ("radius", C.c_double), ("reduce", C.c_int)]


class FaithfulnessOpts(C.Structure):
    _fields_ = [("common", AuditCommon), ("steps", C.c_int), ("replace", C.c_int), ("value", C.c_double),
                ("blur_sigma", C.c_double), ("noise", C.c_double), ("nocc_params", C.c_int),
                ("occ_params", C.POINTER(C.c_char_p))]


class CompositeOpts(C.Structure):
    _fields_ = [("count", C.c_int64), ("h", C.c_int), ("w", C.c_int), ("items", C.c_int), ("items_max", C.c_int),
                ("scale", C.c_int), ("threshold", C.c_double), ("seed", C.c_uint64)]


class ReportOpts(C.Structure):
    _fields_ = [("title", C.c_char_p)]


class Dataset(C.Structure):
    _fields_ = [("train_x", Tensor), ("train_y", Tensor), ("test_x", Tensor), ("test_y", Tensor),
                ("name", C.c_char * 64)]


class FeatvizOpts(C.Structure):
    _fields_ = [("opt", C.c_int), ("lr", C.c_float), ("steps", C.c_int), ("seed", C.c_uint64), ("batch", C.c_int),
                ("space", C.c_int), ("decay", C.c_float), ("decorrelate", C.c_int), ("data", C.POINTER(Tensor)),
                ("init", C.POINTER(Tensor)), ("init_sd", C.c_float), ("lo", C.c_double), ("hi", C.c_double),
                ("clip", C.c_int), ("l1", C.c_float), ("l2", C.c_float), ("center", C.c_double), ("tv", C.c_float),
                ("tv_beta", C.c_float), ("norm", C.c_float), ("blur_every", C.c_int), ("blur_sigma", C.c_float),
                ("pad", C.c_int), ("fill", C.c_double), ("jitter", C.c_int), ("scales", C.POINTER(C.c_float)),
                ("nscales", C.c_int), ("angles", C.POINTER(C.c_float)), ("nangles", C.c_int), ("jitter2", C.c_int),
                ("diversity", C.c_float), ("diversity_node", C.c_char_p), ("ppm", C.c_int), ("entropy", C.c_float),
                ("snapshots", C.c_int), ("on_step", ON_STEP), ("user", C.c_void_p)]


# C type names of the structures above, for the layout test.
C_NAMES = {Tensor: "sal_tensor", HeatmapOpts: "sal_heatmap_opts", GridTile: "sal_grid_tile", GridOpts: "sal_grid_opts",
           ExplainOpts: "sal_explain_opts", AuditMethod: "sal_audit_method", AuditCommon: "sal_audit_common",
           InvarianceOpts: "sal_invariance_opts", RandomizationOpts: "sal_randomization_opts",
           ClassSensitivityOpts: "sal_class_sensitivity_opts", PointingOpts: "sal_pointing_opts",
           FaithfulnessOpts: "sal_faithfulness_opts", CompositeOpts: "sal_composite_opts",
           ReportOpts: "sal_report_opts",
           Dataset: "sal_dataset", FeatvizOpts: "sal_featviz_opts"}

P = C.c_void_p
T = C.POINTER(Tensor)
S = C.c_char_p
I = C.c_int
I64 = C.c_int64
PP = C.POINTER(C.c_void_p)
ST = C.c_int  # sal_status

# name: (restype, argtypes)
_SIGNATURES = {
    "sal_status_string": (S, [ST]), "sal_last_error": (S, []),
    "sal_set_memory_budget": (None, [C.c_size_t]), "sal_memory_budget": (C.c_size_t, []),
    "sal_memory_default_budget": (C.c_size_t, []), "sal_memory_in_use": (C.c_size_t, []),
    "sal_memory_peak": (C.c_size_t, []), "sal_memory_reset_peak": (None, []),
    "sal_set_threads": (None, [I]), "sal_threads": (I, []),
    "sal_tensor_free": (None, [T]),
    "sal_npy_read": (ST, [S, T]), "sal_npy_write": (ST, [S, T]), "sal_png_read": (ST, [S, T]),
    "sal_heatmap_png": (ST, [S, T, T, C.POINTER(HeatmapOpts)]),
    "sal_png_grid": (ST, [S, I, I, C.POINTER(GridTile), C.POINTER(GridOpts)]),
    "sal_model_load": (ST, [S, PP]), "sal_model_save": (ST, [P, S]), "sal_model_free": (None, [P]),
    "sal_model_num_inputs": (I, [P]), "sal_model_num_outputs": (I, [P]),
    "sal_model_input_name": (S, [P, I]), "sal_model_output_name": (S, [P, I]),
    "sal_model_input_shape": (None, [P, I, C.POINTER(I), C.POINTER(I64)]),
    "sal_model_param_count": (I64, [P]), "sal_model_output_kind": (I, [P]), "sal_model_opset": (I64, [P]),
    "sal_model_producer": (S, [P]), "sal_model_num_nodes": (I, [P]), "sal_model_node_name": (S, [P, I]),
    "sal_model_node_op": (S, [P, I]), "sal_model_node_num_inputs": (I, [P, I]),
    "sal_model_node_num_outputs": (I, [P, I]), "sal_model_node_input": (S, [P, I, I]),
    "sal_model_node_output": (S, [P, I, I]), "sal_model_hash": (C.c_uint64, [P]),
    "sal_session_new": (ST, [P, PP]), "sal_session_free": (None, [P]), "sal_session_keep_values": (None, [P, I]),
    "sal_forward": (ST, [P, I, T, C.POINTER(T)]), "sal_session_value": (T, [P, S]),
    "sal_input_gradient": (ST, [P, T, C.POINTER(T)]),
    "sal_explain": (ST, [P, T, C.POINTER(ExplainOpts), PP]), "sal_explanation_free": (None, [P]),
    "sal_explanation_map": (T, [P]), "sal_explanation_layer_map": (T, [P]),
    "sal_cam_layers": (ST, [P, C.POINTER(I), I, C.POINTER(I)]),
    "sal_explanation_method": (S, [P]), "sal_explanation_fallback": (S, [P]),
    "sal_explanation_targets": (C.POINTER(I64), [P]), "sal_explanation_outputs": (C.POINTER(C.c_float), [P]),
    "sal_explanation_json": (ST, [P, C.POINTER(C.c_void_p)]),
    "sal_method_count": (I, []), "sal_method_name": (S, [I]), "sal_method_summary": (S, [I]),
    "sal_method_logits_note": (S, [I]), "sal_method_nparams": (I, [I]),
    "sal_method_param": (None, [I, I, C.POINTER(S), C.POINTER(S), C.POINTER(S)]),
    "sal_method_rules": (ST, [P, S, I, C.POINTER(S), S, C.POINTER(C.POINTER(C.c_char_p))]),
    "sal_method_rules_free": (None, [C.POINTER(C.c_char_p), I]),
    "sal_patterns_estimate": (ST, [P, T, S, P, PP]), "sal_patterns_load": (ST, [S, PP]),
    "sal_patterns_save": (ST, [P, S]), "sal_patterns_free": (None, [P]),
    "sal_dataset_load": (ST, [S, C.POINTER(Dataset)]), "sal_dataset_free": (None, [C.POINTER(Dataset)]),
    "sal_objective_parse": (ST, [P, S, PP]), "sal_objective_inversion": (ST, [P, S, T, PP]), "sal_objective_free": (None, [P]), "sal_objective_text": (S, [P]),
    "sal_objective_values": (ST, [P, P, T, I64, C.POINTER(C.c_float)]),
    "sal_featviz_defaults": (FeatvizOpts, []), "sal_visualize": (ST, [P, P, C.POINTER(FeatvizOpts), PP]),
    "sal_featviz_free": (None, [P]), "sal_featviz_images": (T, [P]), "sal_featviz_snapshots": (T, [P]),
    "sal_featviz_snapshot_steps": (C.POINTER(I), [P]), "sal_featviz_before": (C.POINTER(C.c_float), [P]),
    "sal_featviz_after": (C.POINTER(C.c_float), [P]), "sal_featviz_json": (ST, [P, C.POINTER(C.c_void_p)]),
    "sal_model_shifted": (ST, [P, T, PP]),
    "sal_shift_checkerboard": (ST, [I, C.POINTER(I64), I, C.c_double, T]),
    "sal_shift_image": (ST, [T, I, C.POINTER(I64), C.c_double, T]),
    "sal_shift_targeted": (ST, [P, T, T, C.c_double, C.c_double, T]),
    "sal_audit_invariance": (ST, [P, T, C.POINTER(InvarianceOpts), PP]),
    "sal_audit_randomization": (ST, [P, T, C.POINTER(RandomizationOpts), PP]),
    "sal_audit_class_sensitivity": (ST, [P, T, C.POINTER(ClassSensitivityOpts), PP]),
    "sal_audit_pointing": (ST, [P, T, C.POINTER(PointingOpts), PP]),
    "sal_audit_faithfulness": (ST, [P, T, C.POINTER(FaithfulnessOpts), PP]),
    "sal_audit_free": (None, [P]), "sal_audit_count": (I, [P]), "sal_audit_skipped": (I, [P, I]),
    "sal_audit_label": (S, [P, I]), "sal_audit_verdict": (S, [P, I]), "sal_audit_violations": (I, [P]),
    "sal_audit_json": (ST, [P, C.POINTER(C.c_void_p)]), "sal_audit_csv": (ST, [P, C.POINTER(C.c_void_p)]),
    "sal_audit_figure": (ST, [P, S]), "sal_audit_plot": (ST, [P, S]),
    "sal_composite": (ST, [T, T, C.POINTER(CompositeOpts), T, T, T]),
    "sal_report_write": (ST, [S, S, C.POINTER(ReportOpts), C.POINTER(I)]),
}

lib, path = _load()
for _name, (_res, _args) in _SIGNATURES.items():
    _f = getattr(lib, _name)
    _f.restype, _f.argtypes = _res, _args

libc = C.CDLL(None)
libc.free.argtypes, libc.free.restype = [C.c_void_p], None


def take_string(ptr):
    """A malloc'ed C string as Python text; frees it."""
    try:
        return C.string_at(ptr.value).decode()
    finally:
        libc.free(ptr)
