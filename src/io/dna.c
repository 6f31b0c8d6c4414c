/* Biological sequences: one-hot DNA (A, C, G, T on 4 channels), simulated sequences with planted
 * motifs and their positions, FASTA in and out, and the dinucleotide-preserving shuffle that
 * DeepLIFT-SHAP takes its references from. docs/sequences.md. */
#include "io/io.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>

static const char k_bases[] = "ACGT";

/* ---- built-in motifs ----
 * Position probability matrices (rows: positions; columns: A, C, G, T) written from published
 * consensus sites, not downloaded: a consensus letter gets 0.94 and the other three 0.02 each; an
 * IUPAC two-letter code (W = A/T, R = A/G, S = C/G, K = G/T, Y = C/T) 0.48 each and 0.02 for the
 * others; N is uniform. The sources name the consensus each row follows. */
typedef struct {
    const char *name, *consensus, *source;
} motif_def;

static const motif_def k_motifs[] = {
    {"GATA", "WGATAR",
     "GATA-1 consensus (A/T)GATA(A/G): Evans & Felsenfeld 1989 (Cell 58:877), Ko & Engel 1993 (MCB 13:4011); "
     "cf. JASPAR MA0035 (Gata1)"},
    {"TAL1", "CAGCTG",
     "TAL1/E47 heterodimer E-box CAGCTG (CANNTG family): Hsu et al. 1994 (MCB 14:1256); cf. JASPAR MA0091 "
     "(TAL1::TCF3)"},
    {"CTCF", "CCGCGNGGNGGCAG",
     "CTCF core consensus CCGCGNGGNGGCAG: Kim et al. 2007 (Cell 128:1231); cf. JASPAR MA0139 (CTCF)"},
    {"SPI1", "AAAGAGGAAGTG",
     "PU.1 (SPI1) ETS site AAAGAGGAAGTG (GGAA core): Klemsz et al. 1990 (Cell 61:113); cf. JASPAR MA0080 "
     "(SPI1)"},
};
enum { NMOTIFS = sizeof k_motifs / sizeof k_motifs[0], MAX_WIDTH = 32 };

int sal_dna_motif_count(void) { return NMOTIFS; }
const char *sal_dna_motif_name(int i) { return i >= 0 && i < NMOTIFS ? k_motifs[i].name : NULL; }
const char *sal_dna_motif_source(int i) { return i >= 0 && i < NMOTIFS ? k_motifs[i].source : NULL; }
int sal_dna_motif_width(int i) { return i >= 0 && i < NMOTIFS ? (int)strlen(k_motifs[i].consensus) : 0; }

int sal_dna_motif_lookup(const char *name) {
    for (int i = 0; i < NMOTIFS; i++)
        if (!strcasecmp(name, k_motifs[i].name)) return i;
    return -1;
}

/* Row p of motif i's PPM into ppm[4]. */
static void ppm_row(char code, float *ppm) {
    const char *set = code == 'W' ? "AT" : code == 'R' ? "AG" : code == 'S' ? "CG" : code == 'K' ? "GT"
                    : code == 'Y' ? "CT" : code == 'N' ? "ACGT" : NULL;
    char one[2] = {code, 0};
    if (!set) set = one;
    size_t k = strlen(set);
    float hi = k == 4 ? 0.25f : k == 2 ? 0.48f : 0.94f, lo = k == 4 ? 0.25f : 0.02f;
    for (int b = 0; b < 4; b++) ppm[b] = strchr(set, k_bases[b]) ? hi : lo;
}

sal_status sal_dna_motif_ppm(int i, sal_tensor *out) {
    if (i < 0 || i >= NMOTIFS) return sal_fail(SAL_ERR_ARG, "motif %d: there are %d built-in motifs", i, NMOTIFS);
    int w = sal_dna_motif_width(i);
    SAL_TRY(sal_tensor_alloc(out, SAL_F32, 2, (int64_t[]){w, 4}));
    for (int p = 0; p < w; p++) ppm_row(k_motifs[i].consensus[p], sal_f32(out) + 4 * p);
    return SAL_OK;
}

static int draw(sal_rng *r, const double *p) {
    double u = sal_rng_uniform(r), c = 0;
    for (int b = 0; b < 3; b++)
        if (u < (c += p[b])) return b;
    return 3;
}

/* ---- simulation ---- */

/* Which motifs a sample holds (bit k: motif k of the task's list), and its label(s). */
static uint32_t pick_motifs(const sal_dna_opts *o, int K, sal_rng *r, int64_t i, int64_t *cls, float *multi) {
    double presence = o->presence > 0 ? o->presence : 0.5;
    uint32_t set = 0;
    switch (o->task) {
    case SAL_DNA_TASK_CLASS: { /* class 0: background only; class k: motif k - 1 */
        int64_t c = (int64_t)(sal_rng_u64(r) % (uint64_t)(K + 1));
        *cls = c;
        return c ? 1u << (c - 1) : 0;
    }
    case SAL_DNA_TASK_MULTI:
        for (int k = 0; k < K; k++)
            if (sal_rng_uniform(r) < presence) set |= 1u << k, multi[k] = 1;
        return set;
    case SAL_DNA_TASK_AND: /* none, first only, second only, both: equally often; label 1 for both */
        set = (uint32_t)(sal_rng_u64(r) % 4);
        *cls = set == 3;
        return set;
    }
    (void)i;
    return 0;
}

sal_status sal_dna_simulate(const sal_dna_opts *o, sal_tensor *x, sal_tensor *y, sal_tensor *masks) {
    int K = o->nmotifs;
    int64_t N = o->count, L = o->length;
    if (N < 1 || L < 1 || L > (1 << 24)) return sal_fail(SAL_ERR_ARG, "dna: count and length must be positive");
    if (!(o->gc > 0 && o->gc < 1)) return sal_fail(SAL_ERR_ARG, "dna: GC content %g must lie in (0, 1)", o->gc);
    if (!(o->cpg >= 0 && o->cpg <= 1)) return sal_fail(SAL_ERR_ARG, "dna: CpG ratio %g must lie in [0, 1]", o->cpg);
    if (K < 1 || K > 16 || !o->motifs) return sal_fail(SAL_ERR_ARG, "dna: give 1 to 16 motifs");
    if (o->task == SAL_DNA_TASK_AND && K != 2) return sal_fail(SAL_ERR_ARG, "dna: the AND task takes exactly two motifs");
    int64_t need = 0;
    for (int k = 0; k < K; k++) {
        if (o->motifs[k] < 0 || o->motifs[k] >= NMOTIFS)
            return sal_fail(SAL_ERR_ARG, "dna: motif %d: there are %d built-in motifs", o->motifs[k], NMOTIFS);
        need += sal_dna_motif_width(o->motifs[k]);
    }
    if (need > L) return sal_fail(SAL_ERR_ARG, "dna: length %lld cannot hold the motifs (%lld positions)", (long long)L,
                                  (long long)need);
    SAL_TRY(sal_tensor_alloc(x, SAL_F32, 3, (int64_t[]){N, 4, L}));
    if (o->task == SAL_DNA_TASK_MULTI) SAL_TRY(sal_tensor_alloc(y, SAL_F32, 2, (int64_t[]){N, K}));
    else SAL_TRY(sal_tensor_alloc(y, SAL_I64, 1, (int64_t[]){N}));
    SAL_TRY(sal_tensor_alloc(masks, SAL_I64, 2, (int64_t[]){N, L}));
    memset(x->data, 0, (size_t)(N * 4 * L) * sizeof(float));
    memset(masks->data, 0, (size_t)(N * L) * sizeof(int64_t));
    /* background: first-order Markov chain with base frequencies from the GC content and the CG
     * dinucleotide depleted by the cpg factor (observed / expected CpG, about 0.2 in mammals) */
    double pi[4] = {(1 - o->gc) / 2, o->gc / 2, o->gc / 2, (1 - o->gc) / 2}, tr[4][4];
    for (int a = 0; a < 4; a++) {
        double z = 0;
        for (int b = 0; b < 4; b++) z += tr[a][b] = pi[b] * (a == 1 && b == 2 ? o->cpg : 1);
        for (int b = 0; b < 4; b++) tr[a][b] /= z;
    }
    sal_rng r;
    sal_rng_seed(&r, o->seed);
    uint8_t *seq = sal_malloc((size_t)L);
    if (!seq) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    sal_status st = SAL_OK;
    for (int64_t i = 0; i < N && st == SAL_OK; i++) {
        int64_t *mk = (int64_t *)masks->data + i * L, cls = 0;
        float *multi = o->task == SAL_DNA_TASK_MULTI ? sal_f32(y) + i * K : NULL;
        uint32_t set = pick_motifs(o, K, &r, i, &cls, multi);
        if (!multi) ((int64_t *)y->data)[i] = cls;
        seq[0] = (uint8_t)draw(&r, pi);
        for (int64_t p = 1; p < L; p++) seq[p] = (uint8_t)draw(&r, tr[seq[p - 1]]);
        for (int k = 0; k < K; k++) { /* an instance drawn from the PPM, where no other motif lies */
            if (!(set >> k & 1)) continue;
            int m = o->motifs[k], w = sal_dna_motif_width(m);
            int64_t at = -1;
            for (int tries = 0; tries < 1000 && at < 0; tries++) {
                int64_t p0 = (int64_t)(sal_rng_u64(&r) % (uint64_t)(L - w + 1));
                bool free = true;
                for (int q = 0; q < w && free; q++) free = mk[p0 + q] == 0;
                if (free) at = p0;
            }
            if (at < 0) {
                st = sal_fail(SAL_ERR_ARG, "dna: no room for motif %s in a sequence of length %lld", k_motifs[m].name,
                              (long long)L);
                break;
            }
            for (int q = 0; q < w; q++) {
                float row[4];
                double pr[4];
                ppm_row(k_motifs[m].consensus[q], row);
                for (int b = 0; b < 4; b++) pr[b] = row[b];
                seq[at + q] = (uint8_t)draw(&r, pr);
                mk[at + q] = k + 1;
            }
        }
        float *xi = sal_f32(x) + i * 4 * L;
        for (int64_t p = 0; p < L; p++) xi[seq[p] * L + p] = 1;
    }
    sal_free(seq);
    return st;
}

/* ---- one-hot <-> letters ---- */

sal_status sal_dna_decode(const float *x, int64_t L, int axis, char *out) {
    for (int64_t p = 0; p < L; p++) {
        float v[4];
        double s = 0;
        int hot = -1, ones = 0;
        for (int b = 0; b < 4; b++) {
            v[b] = axis == 1 ? x[b * L + p] : x[p * 4 + b];
            s += v[b];
            if (v[b] == 1) hot = b, ones++;
        }
        if (s == 1 && ones == 1) out[p] = k_bases[hot];
        else if (s == 0 || (v[0] == 0.25f && v[1] == 0.25f && v[2] == 0.25f && v[3] == 0.25f)) out[p] = 'N';
        else return sal_fail(SAL_ERR_FORMAT, "position %lld is not one-hot (%g %g %g %g)", (long long)p, v[0], v[1], v[2], v[3]);
    }
    out[L] = 0;
    return SAL_OK;
}

/* ---- FASTA ---- */

sal_status sal_fasta_read(const char *path, const sal_fasta_opts *o, sal_tensor *x, char ***names, int64_t *count) {
    static const sal_fasta_opts def = {0};
    if (!o) o = &def;
    *count = 0;
    if (names) *names = NULL;
    unsigned char *data = NULL;
    size_t len = 0;
    SAL_TRY(sal_read_file(path, (size_t)1 << 34, &data, &len));
    /* pass 1: records and their length; pass 2: fill */
    int64_t n = 0, L = -1, cur = 0, line = 1, rec_line = 0;
    sal_status st = SAL_OK;
    for (size_t i = 0; i <= len && st == SAL_OK; i++) {
        int ch = i < len ? data[i] : '>';
        bool bol = i == 0 || data[i - 1] == '\n';
        if (i == len || (ch == '>' && bol)) {
            if (n > 0) {
                if (cur == 0) st = sal_fail(SAL_ERR_FORMAT, "%s:%lld: record %lld holds no sequence", path, (long long)rec_line, (long long)n);
                else if (L >= 0 && cur != L)
                    st = sal_fail(SAL_ERR_FORMAT, "%s:%lld: record %lld has length %lld, the first had %lld (every sequence "
                                  "must have the same length)", path, (long long)rec_line, (long long)n, (long long)cur, (long long)L);
                L = cur;
            }
            if (i == len) break;
            n++, cur = 0, rec_line = line;
            /* stop on the header's last byte: its '\n' (counted below) or the end of the file,
             * where the check above must still run for this record */
            while (i + 1 < len && data[i + 1] != '\n') i++;
            continue;
        }
        if (ch == '\n') { line++; continue; }
        if (ch == '\r' || ch == ' ' || ch == '\t') continue;
        if (n == 0) { st = sal_fail(SAL_ERR_FORMAT, "%s:%lld: sequence before the first '>' header", path, (long long)line); break; }
        int u = toupper(ch);
        if (!strchr("ACGTN", u) || !u)
            st = sal_fail(SAL_ERR_FORMAT, "%s:%lld: letter '%c' (0x%02x) in record %lld is not A, C, G, T or N", path,
                          (long long)line, isprint(ch) ? ch : '?', ch, (long long)n);
        cur++;
    }
    if (st == SAL_OK && n == 0) st = sal_fail(SAL_ERR_FORMAT, "%s: no FASTA records", path);
    char **nm = NULL;
    if (st == SAL_OK) st = sal_tensor_alloc(x, SAL_F32, 3, o->length_last ? (int64_t[]){n, L, 4} : (int64_t[]){n, 4, L});
    if (st == SAL_OK && names && !(nm = sal_calloc((size_t)n, sizeof *nm))) st = sal_fail(SAL_ERR_NOMEM, "out of memory");
    if (st == SAL_OK) memset(x->data, 0, (size_t)(n * 4 * L) * sizeof(float));
    int64_t r = -1, p = 0;
    for (size_t i = 0; i < len && st == SAL_OK; i++) {
        int ch = data[i];
        if (ch == '>' && (i == 0 || data[i - 1] == '\n')) {
            /* the header runs to the end of its line, as in pass 1 (a '\r' inside it is not its end) */
            size_t e = i + 1;
            while (e < len && data[e] != '\n') e++;
            r++, p = 0;
            if (nm) {
                size_t s0 = i + 1, k = 0;
                while (s0 + k < e && !isspace(data[s0 + k])) k++;
                if (!(nm[r] = sal_malloc(k + 1))) { st = sal_fail(SAL_ERR_NOMEM, "out of memory"); break; }
                memcpy(nm[r], data + s0, k);
                nm[r][k] = 0;
            }
            i = e;
            continue;
        }
        if (isspace(ch)) continue;
        int u = toupper(ch);
        const char *b = strchr(k_bases, u);
        float *xr = sal_f32(x) + r * 4 * L;
        for (int c = 0; c < 4; c++) {
            float v = b ? (float)(b - k_bases == c) : o->n_uniform ? 0.25f : 0.0f;
            xr[o->length_last ? p * 4 + c : c * L + p] = v;
        }
        p++;
    }
    sal_free(data);
    if (st != SAL_OK) {
        sal_tensor_free(x);
        if (nm) for (int64_t i = 0; i < n; i++) sal_free(nm[i]);
        sal_free(nm);
        return st;
    }
    if (names) *names = nm;
    *count = n;
    return SAL_OK;
}

void sal_fasta_names_free(char **names, int64_t n) {
    if (!names) return;
    for (int64_t i = 0; i < n; i++) sal_free(names[i]);
    sal_free(names);
}

sal_status sal_fasta_write(const char *path, const sal_tensor *x, int axis, const char *const *headers) {
    if (x->dtype != SAL_F32 || x->ndim != 3 || x->dim[axis] != 4)
        return sal_fail(SAL_ERR_SHAPE, "%s: FASTA needs one-hot sequences (N, 4, L) or (N, L, 4)", path);
    int64_t N = x->dim[0], L = x->dim[axis == 1 ? 2 : 1];
    char *s = sal_malloc((size_t)L + 1);
    if (!s) return sal_fail(SAL_ERR_NOMEM, "out of memory");
    sal_outfile f;
    sal_status st = sal_outfile_open(&f, path);
    for (int64_t i = 0; i < N && st == SAL_OK; i++) {
        st = sal_dna_decode(sal_f32(x) + i * 4 * L, L, axis, s);
        if (st != SAL_OK) {
            st = sal_wrap(st, "%s: sequence %lld", path, (long long)i);
            break;
        }
        if (headers && headers[i]) fprintf(f.fp, ">%s\n", headers[i]);
        else fprintf(f.fp, ">seq%lld\n", (long long)i);
        for (int64_t p = 0; p < L; p += 60) fprintf(f.fp, "%.*s\n", (int)(L - p < 60 ? L - p : 60), s + p);
    }
    sal_free(s);
    if (st == SAL_OK) return sal_outfile_commit(&f);
    if (f.fp) sal_outfile_abort(&f);
    return st;
}

/* ---- dinucleotide shuffle (Altschul & Erickson 1985) ----
 * The sequence is a walk through the graph whose vertices are letters and whose edges are its
 * dinucleotides. A shuffle is another Eulerian walk from the same first letter: for every letter
 * but the last one, pick at random which of its outgoing edges leaves it last, so that these edges
 * form a tree pointing to the last letter (a random walk backwards, Wilson's loop erasure, draws
 * such trees), permute the other edges of each letter, and walk. Every dinucleotide count, the
 * first and the last letter are kept. Symbols 0..4 (4: N). */
void sal_dinuc_shuffle(const uint8_t *seq, int64_t L, sal_rng *r, uint8_t *out, int64_t *work /* L */) {
    enum { S = 5 };
    if (L < 3) {
        memcpy(out, seq, (size_t)L);
        return;
    }
    int64_t cnt[S] = {0}, start[S + 1], fill[S];
    for (int64_t p = 0; p + 1 < L; p++) cnt[seq[p]]++;
    start[0] = 0;
    for (int a = 0; a < S; a++) start[a + 1] = start[a] + cnt[a];
    int64_t *edges = work; /* successors grouped by letter */
    memcpy(fill, start, sizeof fill);
    for (int64_t p = 0; p + 1 < L; p++) edges[fill[seq[p]]++] = seq[p + 1];
    int last = seq[L - 1];
    /* the last-exit tree: for each letter present (with outgoing edges) other than `last`, one
     * outgoing edge, chosen so that following them leads to `last` (Wilson's algorithm on the
     * reversed walk: random successor steps, loops erased) */
    int next[S], in_tree[S] = {0};
    int64_t last_edge[S];
    in_tree[last] = 1;
    for (int a = 0; a < S; a++) {
        if (in_tree[a] || cnt[a] == 0) continue;
        for (int u = a; !in_tree[u]; u = next[u]) {
            last_edge[u] = start[u] + (int64_t)(sal_rng_u64(r) % (uint64_t)cnt[u]);
            next[u] = (int)edges[last_edge[u]];
        }
        for (int u = a; !in_tree[u]; u = next[u]) in_tree[u] = 1;
    }
    /* move each tree edge to the end of its letter's list, shuffle the others before it */
    for (int a = 0; a < S; a++) {
        if (cnt[a] == 0) continue;
        int64_t e = start[a + 1] - 1;
        if (a != last) {
            int64_t t = edges[last_edge[a]];
            edges[last_edge[a]] = edges[e];
            edges[e] = t;
        }
        int64_t n = a != last ? cnt[a] - 1 : cnt[a];
        for (int64_t k = n - 1; k > 0; k--) {
            int64_t j = (int64_t)(sal_rng_u64(r) % (uint64_t)(k + 1)), t = edges[start[a] + j];
            edges[start[a] + j] = edges[start[a] + k];
            edges[start[a] + k] = t;
        }
    }
    memcpy(fill, start, sizeof fill);
    out[0] = seq[0];
    for (int64_t p = 1; p < L; p++) out[p] = (uint8_t)edges[fill[out[p - 1]]++];
}

sal_status sal_dna_shuffle(const sal_tensor *x, int axis, int64_t copies, uint64_t seed, sal_tensor *out) {
    if (x->dtype != SAL_F32 || x->ndim != 3 || (axis != 1 && axis != 2) || x->dim[axis] != 4)
        return sal_fail(SAL_ERR_SHAPE, "dinucleotide shuffle: needs one-hot sequences (N, 4, L) or (N, L, 4)");
    if (copies < 1) return sal_fail(SAL_ERR_ARG, "dinucleotide shuffle: copies must be positive");
    int64_t N = x->dim[0], L = x->dim[axis == 1 ? 2 : 1];
    SAL_TRY(sal_tensor_alloc(out, SAL_F32, 3, (int64_t[]){N * copies, x->dim[1], x->dim[2]}));
    uint8_t *seq = sal_malloc((size_t)(2 * L));
    int64_t *work = sal_malloc((size_t)L * sizeof *work);
    sal_status st = seq && work ? SAL_OK : sal_fail(SAL_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < N && st == SAL_OK; i++) {
        const float *xi = sal_f32(x) + i * 4 * L;
        int64_t qn = -1; /* an N column of the input: shuffled N columns copy its encoding (zero or uniform) */
        for (int64_t p = 0; p < L && st == SAL_OK; p++) {
            int hot = 4, ones = 0;
            double s = 0;
            for (int b = 0; b < 4; b++) {
                float v = axis == 1 ? xi[b * L + p] : xi[p * 4 + b];
                s += v;
                if (v == 1) hot = b, ones++;
            }
            if (!(s == 1 && ones == 1)) hot = 4, qn = qn < 0 ? p : qn;
            seq[p] = (uint8_t)hot;
            if (hot == 4 && s != 0 && fabs(s - 1) > 1e-6)
                st = sal_fail(SAL_ERR_ARG, "dinucleotide shuffle: sequence %lld, position %lld is not one-hot",
                              (long long)i, (long long)p);
        }
        sal_rng r;
        sal_rng_seed(&r, seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(i + 1)));
        for (int64_t k = 0; k < copies && st == SAL_OK; k++) {
            sal_dinuc_shuffle(seq, L, &r, seq + L, work);
            float *o = sal_f32(out) + (i * copies + k) * 4 * L;
            for (int64_t p = 0; p < L; p++) {
                int b = seq[L + p];
                for (int c = 0; c < 4; c++) {
                    float v = b < 4 ? (float)(c == b) : axis == 1 ? xi[c * L + qn] : xi[qn * 4 + c];
                    o[axis == 1 ? c * L + p : p * 4 + c] = v;
                }
            }
        }
    }
    sal_free(seq);
    sal_free(work);
    return st;
}

/* ---- MEME ---- */

sal_status sal_meme_write(const char *path, const sal_tensor *ppm, const char *const *names) {
    if (ppm->dtype != SAL_F32 || ppm->ndim != 3 || ppm->dim[1] != 4 || ppm->dim[0] < 1)
        return sal_fail(SAL_ERR_SHAPE, "%s: MEME motifs need position probability matrices (N, 4, L)", path);
    int64_t N = ppm->dim[0], L = ppm->dim[2];
    for (int64_t i = 0; i < N; i++)
        for (int64_t p = 0; p < L; p++) {
            double s = 0;
            for (int b = 0; b < 4; b++) {
                float v = sal_f32(ppm)[(i * 4 + b) * L + p];
                if (!(v >= 0)) return sal_fail(SAL_ERR_NUMERIC, "%s: motif %lld, position %lld: probability %g", path, (long long)i, (long long)p, v);
                s += v;
            }
            if (fabs(s - 1) > 1e-3)
                return sal_fail(SAL_ERR_NUMERIC, "%s: motif %lld, position %lld sums to %g, not 1", path, (long long)i, (long long)p, s);
        }
    sal_outfile f;
    SAL_TRY(sal_outfile_open(&f, path));
    fprintf(f.fp, "MEME version 4\n\nALPHABET= ACGT\n\nstrands: +\n\nBackground letter frequencies\nA 0.25 C 0.25 G 0.25 T 0.25\n");
    for (int64_t i = 0; i < N; i++) {
        if (names && names[i]) fprintf(f.fp, "\nMOTIF %s\n", names[i]);
        else fprintf(f.fp, "\nMOTIF ppm%lld\n", (long long)i);
        fprintf(f.fp, "letter-probability matrix: alength= 4 w= %lld nsites= 20 E= 0\n", (long long)L);
        for (int64_t p = 0; p < L; p++) {
            double v[4], s = 0;
            for (int b = 0; b < 4; b++) s += v[b] = sal_f32(ppm)[(i * 4 + b) * L + p];
            fprintf(f.fp, " %.6f %.6f %.6f %.6f\n", v[0] / s, v[1] / s, v[2] / s, v[3] / s);
        }
    }
    return sal_outfile_commit(&f);
}
