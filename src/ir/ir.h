/* The model's intermediate representation: named values, nodes and their attributes. It sits below
 * both ops/ (which read nodes and attributes) and graph/ (which builds, finalizes and runs them), so
 * neither includes the other's header to see these types. */
#ifndef SAL_IR_H
#define SAL_IR_H

#include "core/core.h"

/* Attribute types use ONNX AttributeProto.AttributeType values. */
typedef enum {
    SAL_ATTR_FLOAT = 1,
    SAL_ATTR_INT = 2,
    SAL_ATTR_STRING = 3,
    SAL_ATTR_TENSOR = 4,
    SAL_ATTR_FLOATS = 6,
    SAL_ATTR_INTS = 7,
} sal_attr_type;

typedef struct {
    char *name;
    sal_attr_type type;
    float f;
    int64_t i;
    char *s;
    int n; /* count of floats or ints */
    float *floats;
    int64_t *ints;
    sal_tensor t;
} sal_attr;

typedef enum { SAL_VAL_INPUT, SAL_VAL_CONST, SAL_VAL_NODE } sal_val_kind;

typedef struct {
    char *name;
    sal_val_kind kind;
    int producer; /* node index for SAL_VAL_NODE, else -1 */
    sal_tensor t; /* CONST: its data. INPUT: declared dtype and shape (-1 = dynamic), no data.
                   * NODE: for a graph output read from a file, its declared dtype and shape, no
                   * data (dtype 0 when the file declares none); the ONNX writer reuses them. */
    bool param;   /* trainable: a float constant in a parameter slot of some node (op->param_mask) */
} sal_value;

struct sal_op;
typedef struct sal_node {
    char *name;    /* unique; the importer names anonymous nodes "<op_type>_<index>" */
    char *op_type; /* as in ONNX, e.g. "Conv" */
    const struct sal_op *op;
    int nin, nout;
    int *in;  /* value indices; -1 marks an omitted optional input */
    int *out; /* value indices; -1 marks an omitted optional output */
    int nattr;
    sal_attr *attr;
    void *p; /* the op's parsed attributes (op->init), freed by op->fini or sal_free */
} sal_node;

struct sal_model {
    sal_value *val;
    int nval, capval;
    sal_node *node; /* topologically sorted once finalized */
    int nnode, capnode;
    int *input; /* values fed by the caller */
    int ninput;
    int *output;
    int noutput;
    sal_strmap names; /* value name -> index */
    int64_t opset, ir_version;
    char *producer; /* producer_name of the file, or "saliency" */
    char *path;     /* file it came from, for messages ("<built>" otherwise) */
    bool finalized;
    /* The invariance audit's shifted model f2 may carry its original f1 (sal_model_set_twin): then
     * every session of f2 runs f1 at input - twin_shift beside it and takes f1's activations for
     * the values beyond the first linear node, which f2 computes equal up to rounding (exec.c). */
    const struct sal_model *twin;
    sal_tensor twin_shift;
    /* Bumped by everything that changes parameter values in place (a training step, re-drawn
     * weights): kernels that keep a transformed copy of a weight (oneDNN's blocked or Winograd
     * layouts) redo it when the version moved. Code that writes weights must call
     * sal_model_weights_changed. */
    uint64_t version;
};

/* ---- attributes ---- */
const sal_attr *sal_attr_find(const sal_node *n, const char *name);
int64_t sal_attr_int(const sal_node *n, const char *name, int64_t def);
float sal_attr_float(const sal_node *n, const char *name, float def);
const char *sal_attr_string(const sal_node *n, const char *name, const char *def);
/* Returns the INTS attribute (count in *count) or NULL if absent. */
const int64_t *sal_attr_ints(const sal_node *n, const char *name, int *count);
void sal_attr_clear(sal_attr *a);
/* Builders for programmatic graphs; on allocation failure the returned attr has a NULL name and
 * sal_graph_add_node reports it. */
sal_attr sal_attr_make_int(const char *name, int64_t v);
sal_attr sal_attr_make_float(const char *name, float v);
sal_attr sal_attr_make_ints(const char *name, int n, const int64_t *v);
sal_attr sal_attr_make_string(const char *name, const char *s);

static inline void sal_model_weights_changed(struct sal_model *m) { m->version++; }

#endif
