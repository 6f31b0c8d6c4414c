/* The model graph: named values (inputs, constants, node outputs) and nodes in topological order.
 * Built by the ONNX importer or programmatically (train/arch.c), then finalized once. */
#ifndef SAL_GRAPH_H
#define SAL_GRAPH_H

#include "ops/ops.h"

/* ---- building ---- */
sal_status sal_graph_create(const char *path, sal_model **out);
sal_status sal_graph_add_input(sal_model *g, const char *name, sal_dtype dt, int ndim, const int64_t *dim);
/* Takes ownership of *t (it is zeroed). */
sal_status sal_graph_add_const(sal_model *g, const char *name, sal_tensor *t);
/* Takes ownership of attrs[0..nattr) (the array itself is copied). in[i] may be "" or NULL for an
 * omitted optional input. name may be NULL or "" (a name is made up). */
sal_status sal_graph_add_node(sal_model *g, const char *op_type, const char *name, int nin,
                              const char *const *in, int nout, const char *const *out, int nattr,
                              sal_attr *attrs);
/* The same for a node of a known op, named by id (programmatic graphs and rewrites). */
sal_status sal_graph_add_op(sal_model *g, sal_op_id op, const char *name, int nin, const char *const *in, int nout,
                            const char *const *out, int nattr, sal_attr *attrs);
sal_status sal_graph_add_output(sal_model *g, const char *name);
/* Checks references, sorts topologically (rejecting cycles), binds and initializes ops, folds
 * constant subgraphs, marks parameters. */
sal_status sal_graph_finalize(sal_model *g);
int sal_graph_find(const sal_model *g, const char *name); /* value index or -1 */
int sal_graph_find_node(const sal_model *g, const char *name); /* node index or -1 */

#endif
