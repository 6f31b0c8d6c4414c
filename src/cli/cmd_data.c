/* saliency data composite: multi-object images with masks for the pointing games;
 * saliency data dna: simulated DNA with planted motifs, and FASTA to one-hot NPY */
#include "cli.h"

static const char k_dna_help[] =
    "usage: saliency data dna --out PREFIX [options]\n"
    "       saliency data dna --input SEQS.fa --out PREFIX [--n zero|uniform] [--layout 4xL|Lx4]\n\n"
    "Simulates one-hot DNA with motif instances planted from built-in position probability matrices\n"
    "(docs/sequences.md), and writes\n"
    "  PREFIX_x.npy      sequences (N, 4, L) one-hot, channels A, C, G, T\n"
    "  PREFIX_y.npy      labels: int64 classes (N), or float multi-hot (N, K) for --task multi\n"
    "  PREFIX_masks.npy  planted positions (N, L) int64: k + 1 on motif k's instances, 0 elsewhere\n"
    "  PREFIX.fa         the sequences as FASTA, headers holding the labels\n"
    "  --count N         sequences (default 1000)\n"
    "  --length L        bases per sequence (default 200)\n"
    "  --gc X            GC content the background draws from (default 0.42; CpG depletion lowers\n"
    "                    the realized content a little)\n"
    "  --cpg X           observed / expected CpG of the Markov background (default 0.25; 1: none)\n"
    "  --task T          class: one motif or none, class k + 1 for motif k (default);\n"
    "                    multi: each motif with probability --presence, multi-hot labels (--loss bce);\n"
    "                    and: two motifs, class 1 only when both are present\n"
    "  --motifs A,B,...  built-in motifs (default CTCF,SPI1; list them with --list); GATA and TAL1\n"
    "                    are short enough to occur by chance in the background\n"
    "  --presence X      --task multi: probability of each motif (default 0.5)\n"
    "  --seed N          (default 1); the same seed gives the same bytes\n"
    "  --list            print the built-in motifs with their sources\n"
    "With --input, converts FASTA (records of equal length; A, C, G, T, N in either case) to\n"
    "PREFIX_x.npy: N as an all-zero column (--n zero, default) or 0.25 each (--n uniform), shape\n"
    "(N, 4, L) or (N, L, 4) (--layout Lx4).\n";

static int dna_list(void) {
    for (int i = 0; i < sal_dna_motif_count(); i++) {
        sal_tensor p = {0};
        if (sal_dna_motif_ppm(i, &p) != SAL_OK) return cli_fail("data", SAL_ERR_NOMEM);
        printf("%-6s width %2d  %s\n", sal_dna_motif_name(i), sal_dna_motif_width(i), sal_dna_motif_source(i));
        sal_tensor_free(&p);
    }
    return 0;
}

static int dna_convert(const char *in, const char *out, bool uniform, bool last) {
    sal_fasta_opts fo = {.n_uniform = uniform, .length_last = last};
    sal_tensor x = {0};
    int64_t n;
    sal_status st = sal_fasta_read(in, &fo, &x, NULL, &n);
    char px[1024];
    snprintf(px, sizeof px, "%s_x.npy", out);
    if (st == SAL_OK) st = sal_npy_write(px, &x);
    int rc = 0;
    if (st != SAL_OK) rc = cli_fail("data", st);
    else printf("wrote %s: %lld sequences of %lld bases\n", px, (long long)n, (long long)x.dim[last ? 1 : 2]);
    sal_tensor_free(&x);
    return rc;
}

static int cmd_data_dna(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) return fputs(k_dna_help, stdout), 0;
    const char *out = NULL, *input = NULL, *motifs = "CTCF,SPI1", *task = "class", *nmode = "zero", *layout = "4xL";
    sal_dna_opts o = {.count = 1000, .length = 200, .gc = 0.42, .cpg = 0.25, .seed = 1};
    cli_args a = cli_args_start(argc, argv, 3);
    while (cli_next(&a)) {
        if (cli_is(&a, "--out")) out = cli_value(&a);
        else if (cli_is(&a, "--input")) input = cli_value(&a);
        else if (cli_is(&a, "--count")) o.count = cli_long(&a, 1, 1 << 24);
        else if (cli_is(&a, "--length")) o.length = cli_long(&a, 1, 1 << 22);
        else if (cli_is(&a, "--gc")) o.gc = cli_double(&a);
        else if (cli_is(&a, "--cpg")) o.cpg = cli_double(&a);
        else if (cli_is(&a, "--task")) task = cli_value(&a);
        else if (cli_is(&a, "--motifs")) motifs = cli_value(&a);
        else if (cli_is(&a, "--presence")) o.presence = cli_double(&a);
        else if (cli_is(&a, "--seed")) o.seed = (uint64_t)cli_long(&a, 0, 0x7fffffffL);
        else if (cli_is(&a, "--n")) nmode = cli_value(&a);
        else if (cli_is(&a, "--layout")) layout = cli_value(&a);
        else if (cli_is(&a, "--list")) return dna_list();
        else return cli_unknown(&a, "data");
    }
    if (a.error) return 1;
    if (!out) return cli_error("data", "missing --out PREFIX");
    if (strcmp(nmode, "zero") && strcmp(nmode, "uniform")) return cli_error("data", "--n must be zero or uniform, not '%s'", nmode);
    if (strcmp(layout, "4xL") && strcmp(layout, "Lx4")) return cli_error("data", "--layout must be 4xL or Lx4, not '%s'", layout);
    if (input) return dna_convert(input, out, !strcmp(nmode, "uniform"), !strcmp(layout, "Lx4"));
    if (!strcmp(task, "class")) o.task = SAL_DNA_TASK_CLASS;
    else if (!strcmp(task, "multi")) o.task = SAL_DNA_TASK_MULTI;
    else if (!strcmp(task, "and")) o.task = SAL_DNA_TASK_AND;
    else return cli_error("data", "--task must be class, multi or and, not '%s'", task);
    if (!(o.presence >= 0 && o.presence <= 1)) return cli_error("data", "--presence must lie in [0, 1]");
    int ids[16], k = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", motifs);
    for (char *sv, *t = strtok_r(buf, ",", &sv); t; t = strtok_r(NULL, ",", &sv)) {
        int id = sal_dna_motif_lookup(t);
        if (id < 0) return cli_error("data", "unknown motif '%s' in --motifs (saliency data dna --list)", t);
        if (k == 16) return cli_error("data", "--motifs: at most 16");
        ids[k++] = id;
    }
    o.nmotifs = k, o.motifs = ids;
    sal_tensor x = {0}, y = {0}, mk = {0};
    char px[1024], py[1024], pm[1024], pf[1024];
    snprintf(px, sizeof px, "%s_x.npy", out);
    snprintf(py, sizeof py, "%s_y.npy", out);
    snprintf(pm, sizeof pm, "%s_masks.npy", out);
    snprintf(pf, sizeof pf, "%s.fa", out);
    char **hdr = NULL;
    sal_status st = sal_dna_simulate(&o, &x, &y, &mk);
    if (st == SAL_OK && !(hdr = calloc((size_t)o.count, sizeof *hdr))) st = SAL_ERR_NOMEM;
    for (int64_t i = 0; st == SAL_OK && i < o.count; i++) { /* ">seq12 label=1" or "labels=1,0" */
        char h[256];
        int n = snprintf(h, sizeof h, "seq%lld %s=", (long long)i, y.ndim == 2 ? "labels" : "label");
        for (int j = 0; y.ndim == 2 && j < k; j++) n += snprintf(h + n, sizeof h - (size_t)n, "%s%d", j ? "," : "", (int)sal_f32(&y)[i * k + j]);
        if (y.ndim == 1) snprintf(h + n, sizeof h - (size_t)n, "%lld", (long long)((int64_t *)y.data)[i]);
        if (!(hdr[i] = strdup(h))) st = SAL_ERR_NOMEM;
    }
    if (st == SAL_OK) st = sal_npy_write(px, &x);
    if (st == SAL_OK) st = sal_npy_write(py, &y);
    if (st == SAL_OK) st = sal_npy_write(pm, &mk);
    if (st == SAL_OK) st = sal_fasta_write(pf, &x, 1, (const char *const *)hdr);
    int rc = 0;
    if (st != SAL_OK) rc = cli_fail("data", st);
    else printf("wrote %s, %s, %s, %s: %lld sequences of %lld bases, task %s, motifs %s\n", px, py, pm, pf,
                (long long)o.count, (long long)o.length, task, motifs);
    for (int64_t i = 0; hdr && i < o.count; i++) free(hdr[i]);
    free(hdr);
    sal_tensor_free(&x);
    sal_tensor_free(&y);
    sal_tensor_free(&mk);
    return rc;
}

static const char k_help[] =
    "usage: saliency data composite --out PREFIX [options]\n"
    "       saliency data dna --out PREFIX [options] (simulated DNA with motifs: saliency data dna --help)\n\n"
    "Builds images holding several Fashion-MNIST items or MNIST digits (of distinct classes, cropped\n"
    "to their pixels and placed without overlap at random positions) for `saliency audit pointing`,\n"
    "and writes\n"
    "  PREFIX_x.npy      images (N, 1, H, W) in [0, 1]\n"
    "  PREFIX_y.npy      labels (N, K) float multi-hot (train with saliency train --loss bce)\n"
    "  PREFIX_masks.npy  masks (N, H, W) int64: class + 1 on an item's pixels, 0 elsewhere\n"
    "  --source SET      fashion-mnist (default), mnist, or X.npy:Y.npy with (M,1,h,w) items\n"
    "  --split train|test   which part of the source (default train; test where it has one)\n"
    "  --count N         images (default 1000)\n"
    "  --size HxW        canvas (default 56x56)\n"
    "  --items N[-M]     items per image, or a range (default 2)\n"
    "  --scale K         shrink items K times first (default 1)\n"
    "  --threshold T     pixels above T belong to an item's mask (default 0.1)\n"
    "  --seed N          placement (default 1); the same seed gives the same bytes\n";

int cmd_data(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[2], "dna")) return cmd_data_dna(argc, argv);
    if (argc < 3 || cli_wants_help(argc, argv)) {
        bool help = cli_wants_help(argc, argv);
        fputs(k_help, help ? stdout : stderr);
        return !help;
    }
    if (strcmp(argv[2], "composite")) return cli_error("data", "unknown data command '%s' (composite, dna)", argv[2]);
    const char *out = NULL, *source = "fashion-mnist", *split = "train", *size = "56x56", *items = "2";
    sal_composite_opts o = {.count = 1000, .seed = 1};
    cli_args a = cli_args_start(argc, argv, 3);
    while (cli_next(&a)) {
        if (cli_is(&a, "--out")) out = cli_value(&a);
        else if (cli_is(&a, "--source")) source = cli_value(&a);
        else if (cli_is(&a, "--split")) split = cli_value(&a);
        else if (cli_is(&a, "--count")) o.count = cli_long(&a, 1, 1 << 24);
        else if (cli_is(&a, "--size")) size = cli_value(&a);
        else if (cli_is(&a, "--items")) items = cli_value(&a);
        else if (cli_is(&a, "--scale")) o.scale = (int)cli_long(&a, 1, 64);
        else if (cli_is(&a, "--threshold")) o.threshold = cli_double(&a);
        else if (cli_is(&a, "--seed")) o.seed = (uint64_t)cli_long(&a, 0, 0x7fffffffL);
        else return cli_unknown(&a, "data");
    }
    if (a.error) return 1;
    if (!out) return cli_error("data", "missing --out PREFIX");
    if (strcmp(split, "train") && strcmp(split, "test")) return cli_error("data", "--split must be train or test");
    char *end;
    long h = strtol(size, &end, 10), w = *end == 'x' ? strtol(end + 1, &end, 10) : h;
    if (*end || h < 1 || w < 1 || h > 4096 || w > 4096)
        return cli_error("data", "--size must read HxW (or one number for a square), not '%s'", size);
    long i0 = strtol(items, &end, 10), i1 = *end == '-' ? strtol(end + 1, &end, 10) : i0;
    if (*end || i0 < 1 || i1 < i0 || i1 > 64) return cli_error("data", "--items must read N or N-M with 1 <= N <= M <= 64");
    if (!(o.threshold >= 0 && o.threshold < 1)) return cli_error("data", "--threshold must be in [0, 1)");
    o.h = (int)h, o.w = (int)w, o.items = (int)i0, o.items_max = (int)i1;
    sal_dataset d;
    sal_status st = sal_dataset_load(source, &d);
    if (st != SAL_OK) return cli_fail("data", st);
    sal_tensor *sx = &d.train_x, *sy = &d.train_y;
    if (!strcmp(split, "test") && d.test_x.data) sx = &d.test_x, sy = &d.test_y;
    sal_tensor x = {0}, y = {0}, mk = {0};
    char px[1024], py[1024], pm[1024];
    snprintf(px, sizeof px, "%s_x.npy", out);
    snprintf(py, sizeof py, "%s_y.npy", out);
    snprintf(pm, sizeof pm, "%s_masks.npy", out);
    st = sal_composite(sx, sy, &o, &x, &y, &mk);
    if (st == SAL_OK) st = sal_npy_write(px, &x);
    if (st == SAL_OK) st = sal_npy_write(py, &y);
    if (st == SAL_OK) st = sal_npy_write(pm, &mk);
    int rc = 0;
    if (st != SAL_OK) rc = cli_fail("data", st);
    else printf("wrote %s, %s, %s: %lld images of %ldx%ld, %lld classes\n", px, py, pm, (long long)x.dim[0], h, w,
                (long long)y.dim[1]);
    sal_tensor_free(&x);
    sal_tensor_free(&y);
    sal_tensor_free(&mk);
    sal_dataset_free(&d);
    return rc;
}
