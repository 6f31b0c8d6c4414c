/* Public accessors of a loaded model. */
#include "graph.h"

int sal_model_num_inputs(const sal_model *m) { return m->ninput; }
int sal_model_num_outputs(const sal_model *m) { return m->noutput; }

const char *sal_model_input_name(const sal_model *m, int i) {
    return i >= 0 && i < m->ninput ? m->val[m->input[i]].name : NULL;
}

const char *sal_model_output_name(const sal_model *m, int i) {
    return i >= 0 && i < m->noutput ? m->val[m->output[i]].name : NULL;
}

void sal_model_input_shape(const sal_model *m, int i, int *ndim, int64_t *dim) {
    *ndim = 0;
    if (i < 0 || i >= m->ninput) return;
    const sal_tensor *t = &m->val[m->input[i]].t;
    *ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) dim[d] = t->dim[d];
}

int64_t sal_model_param_count(const sal_model *m) {
    int64_t n = 0;
    for (int v = 0; v < m->nval; v++)
        if (m->val[v].param) n += sal_tensor_numel(&m->val[v].t);
    return n;
}
