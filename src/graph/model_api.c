/* Public accessors of a loaded model. */
#include "exec.h"

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

sal_output_kind sal_model_output_kind(const sal_model *m) {
    int v = m->noutput ? m->output[0] : -1;
    for (int hops = 0; v >= 0 && m->val[v].kind == SAL_VAL_NODE && hops < m->nnode; hops++) {
        const sal_node *n = &m->node[m->val[v].producer];
        if (sal_node_is(n, SAL_OP_Softmax)) return SAL_OUTPUT_SOFTMAX;
        if (sal_node_is(n, SAL_OP_LogSoftmax)) return SAL_OUTPUT_LOG_SOFTMAX;
        if (sal_node_is(n, SAL_OP_Sigmoid)) return SAL_OUTPUT_SIGMOID;
        if (!sal_node_has(n, SAL_TR_VIEW) || n->nin < 1) break; /* a reshape keeps what it carries */
        v = n->in[0];
    }
    return SAL_OUTPUT_SCORES;
}

int64_t sal_model_opset(const sal_model *m) { return m->opset; }
const char *sal_model_producer(const sal_model *m) { return m->producer; }
int sal_model_num_nodes(const sal_model *m) { return m->nnode; }

static const sal_node *node_at(const sal_model *m, int i) { return i >= 0 && i < m->nnode ? &m->node[i] : NULL; }

const char *sal_model_node_name(const sal_model *m, int i) {
    const sal_node *n = node_at(m, i);
    return n ? n->name : NULL;
}

const char *sal_model_node_op(const sal_model *m, int i) {
    const sal_node *n = node_at(m, i);
    return n ? n->op_type : NULL;
}

int sal_model_node_num_inputs(const sal_model *m, int i) {
    const sal_node *n = node_at(m, i);
    return n ? n->nin : 0;
}

int sal_model_node_num_outputs(const sal_model *m, int i) {
    const sal_node *n = node_at(m, i);
    return n ? n->nout : 0;
}

const char *sal_model_node_input(const sal_model *m, int i, int k) {
    const sal_node *n = node_at(m, i);
    if (!n || k < 0 || k >= n->nin) return NULL;
    return n->in[k] >= 0 ? m->val[n->in[k]].name : "";
}

const char *sal_model_node_output(const sal_model *m, int i, int k) {
    const sal_node *n = node_at(m, i);
    if (!n || k < 0 || k >= n->nout) return NULL;
    return n->out[k] >= 0 ? m->val[n->out[k]].name : "";
}

const sal_tensor *sal_session_value(const sal_session *s, const char *name) {
    int v = sal_graph_find(s->m, name);
    if (v < 0 || !s->forward_done || s->partial || !s->act[v].data) return NULL;
    if (s->viewed_by[v] >= 0) return NULL; /* holds its ReLU's values (sal_session.fuse) */
    /* a value kept blocked is handed out plain: the session's layouts are its own business */
    if (sal_exec_unblock((sal_session *)s, v, true) != SAL_OK) return NULL;
    return &s->act[v];
}
