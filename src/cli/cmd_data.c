/* saliency data composite: multi-object images with masks for the pointing games */
#include "cli.h"

static const char k_help[] =
    "usage: saliency data composite --out PREFIX [options]\n\n"
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
    if (argc < 3 || cli_wants_help(argc, argv)) {
        bool help = cli_wants_help(argc, argv);
        fputs(k_help, help ? stdout : stderr);
        return !help;
    }
    if (strcmp(argv[2], "composite")) return cli_error("data", "unknown data command '%s' (composite)", argv[2]);
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
