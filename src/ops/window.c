/* Sliding-window attributes and output shapes (ONNX Conv and pooling rules). */
#include "window.h"

/* Reads an INTS attribute of `want` entries (0: any count from 1 to max) into v. */
static sal_status win_ints(const sal_node *n, const char *name, int max, int *nsp, int64_t *v, bool *has) {
    int cnt = 0;
    const int64_t *a = sal_attr_ints(n, name, &cnt);
    *has = a != NULL;
    if (!a) return SAL_OK;
    if (cnt < 1 || cnt > max)
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "%s has %d entries; 1 to 3 spatial dimensions are supported",
                             name, max == 6 ? cnt / 2 : cnt);
    int sp = max == 6 ? cnt / 2 : cnt;
    if ((max == 6 && cnt % 2) || (*nsp && *nsp != sp))
        return sal_node_fail(n, SAL_ERR_FORMAT, "%s has %d entries, which does not fit %d spatial dimensions", name,
                             cnt, *nsp ? *nsp : sp);
    *nsp = sp;
    memcpy(v, a, sizeof *v * (size_t)cnt);
    return SAL_OK;
}

sal_status sal_win_parse(const sal_node *n, bool need_k, bool pool, sal_win_attr *a) {
    memset(a, 0, sizeof *a);
    SAL_TRY(win_ints(n, "kernel_shape", 3, &a->nsp, a->k, &a->has_k));
    SAL_TRY(win_ints(n, "strides", 3, &a->nsp, a->s, &a->has_s));
    SAL_TRY(win_ints(n, "dilations", 3, &a->nsp, a->d, &a->has_d));
    SAL_TRY(win_ints(n, "pads", 6, &a->nsp, a->pads, &a->has_pads));
    if (need_k && !a->has_k) return sal_node_fail(n, SAL_ERR_FORMAT, "the kernel_shape attribute is required");
    for (int i = 0; i < a->nsp; i++) {
        if ((a->has_k && a->k[i] < 1) || (a->has_s && a->s[i] < 1) || (a->has_d && a->d[i] < 1))
            return sal_node_fail(n, SAL_ERR_FORMAT, "kernel_shape, strides and dilations must be positive");
        if (a->has_pads && (a->pads[i] < 0 || a->pads[a->nsp + i] < 0))
            return sal_node_fail(n, SAL_ERR_FORMAT, "pads must not be negative");
        /* no axis is longer than a tensor may hold (2^40): larger values are errors, and bounding
         * them keeps the geometry's sums and products within int64 */
        const int64_t lim = (int64_t)1 << 40;
        if ((a->has_k && a->k[i] > lim) || (a->has_s && a->s[i] > lim) || (a->has_d && a->d[i] > lim) ||
            (a->has_pads && (a->pads[i] > lim || a->pads[a->nsp + i] > lim)))
            return sal_node_fail(n, SAL_ERR_FORMAT, "kernel_shape, strides, dilations or pads out of range");
    }
    const char *ap = sal_attr_string(n, "auto_pad", "NOTSET");
    if (!strcmp(ap, "NOTSET") || !*ap) a->autopad = SAL_AUTOPAD_NOTSET;
    else if (!strcmp(ap, "SAME_UPPER")) a->autopad = SAL_AUTOPAD_SAME_UPPER;
    else if (!strcmp(ap, "SAME_LOWER")) a->autopad = SAL_AUTOPAD_SAME_LOWER;
    else if (!strcmp(ap, "VALID")) a->autopad = SAL_AUTOPAD_VALID;
    else return sal_node_fail(n, SAL_ERR_FORMAT, "unknown auto_pad '%s'", ap);
    a->ceil_mode = pool && sal_attr_int(n, "ceil_mode", 0) != 0;
    return SAL_OK;
}

sal_status sal_win_check_kernel(const sal_node *n, int i, int64_t k, int64_t d) {
    if (k < 1) return sal_node_fail(n, SAL_ERR_SHAPE, "the weights' kernel is empty along spatial dimension %d", i);
    if (k - 1 > ((int64_t)1 << 40) / d) /* d is bounded by sal_win_parse */
        return sal_node_fail(n, SAL_ERR_SHAPE, "spatial dimension %d: dilated window of %lld taps spaced %lld is too "
                             "large", i, (long long)k, (long long)d);
    return SAL_OK;
}

sal_status sal_win_plan(const sal_node *n, const sal_win_attr *a, int nsp, const int64_t *in_sp,
                        const int64_t *k_w, sal_win *w) {
    if (nsp < 1 || nsp > 3)
        return sal_node_fail(n, SAL_ERR_UNSUPPORTED, "%d spatial dimensions; 1 to 3 are supported", nsp);
    if (a->nsp && a->nsp != nsp)
        return sal_node_fail(n, SAL_ERR_SHAPE, "attributes describe %d spatial dimensions, the input has %d", a->nsp,
                             nsp);
    w->nsp = nsp;
    w->in_sz = w->out_sz = w->k_sz = 1;
    for (int j = 0; j < 3; j++) {
        int i = j - (3 - nsp); /* index into the real spatial dims; < 0 for the padding dims */
        int64_t *in = &w->in[j], *k = &w->k[j], *s = &w->s[j], *d = &w->d[j], *pb = &w->pb[j], *pe = &w->pe[j];
        *in = 1, *k = 1, *s = 1, *d = 1, *pb = 0, *pe = 0;
        w->out[j] = 1;
        if (i < 0) continue;
        *in = in_sp[i];
        *k = k_w ? k_w[i] : a->k[i];
        if (a->has_s) *s = a->s[i];
        if (a->has_d) *d = a->d[i];
        SAL_TRY(sal_win_check_kernel(n, i, *k, *d));
        if (a->has_k && a->k[i] != *k)
            return sal_node_fail(n, SAL_ERR_SHAPE, "kernel_shape[%d] = %lld but the weights have %lld", i,
                                 (long long)a->k[i], (long long)*k);
        int64_t dk = (*k - 1) * *d + 1, o;
        switch (a->autopad) {
        case SAL_AUTOPAD_NOTSET:
            if (a->has_pads) *pb = a->pads[i], *pe = a->pads[nsp + i];
            if (*in + *pb + *pe < dk) goto too_small;
            o = (*in + *pb + *pe - dk) / *s + 1;
            if (a->ceil_mode) {
                o = (*in + *pb + *pe - dk + *s - 1) / *s + 1;
                /* as in PyTorch and ONNX: the last window must start inside the input or left padding */
                if ((o - 1) * *s >= *in + *pb) o--;
            }
            break;
        case SAL_AUTOPAD_VALID:
            if (*in < dk) goto too_small;
            o = (*in - dk) / *s + 1;
            break;
        default: { /* SAME_*: out = ceil(in / stride), padding split with the odd one at the end (UPPER) */
            o = (*in + *s - 1) / *s;
            int64_t total = (o - 1) * *s + dk - *in;
            if (total < 0) total = 0;
            *pb = a->autopad == SAL_AUTOPAD_SAME_UPPER ? total / 2 : total - total / 2;
            *pe = total - *pb;
        }
        }
        if (o < 1) goto too_small;
        w->out[j] = o;
        w->in_sz *= *in;
        w->out_sz *= o;
        w->k_sz *= *k;
        continue;
    too_small:
        return sal_node_fail(n, SAL_ERR_SHAPE,
                             "window of %lld (dilated) does not fit spatial dimension %d of size %lld",
                             (long long)dk, i, (long long)*in);
    }
    return SAL_OK;
}
