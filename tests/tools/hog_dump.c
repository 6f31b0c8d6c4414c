/* hog_dump IMAGES.npy OUT.npy [CELL BLOCK BINS]: the HOG descriptor (sal_hog) of every image of a
 * float32 (N, H, W) array into a float32 (N, F) array, for tests/test_hog_skimage.py. Zero or
 * omitted options are sal_hog's defaults. */
#include "../testutil.h"

int main(int argc, char **argv) {
    if (argc != 3 && argc != 6) {
        fprintf(stderr, "usage: hog_dump IMAGES.npy OUT.npy [CELL BLOCK BINS]\n");
        return 2;
    }
    sal_hog_opts o = {0};
    if (argc == 6) o = (sal_hog_opts){atoi(argv[3]), atoi(argv[4]), atoi(argv[5])};
    sal_tensor x = {0}, f = {0};
    sal_status st = sal_npy_read(argv[1], &x);
    if (st == SAL_OK && (x.dtype != SAL_F32 || x.ndim != 3)) st = sal_fail(SAL_ERR_SHAPE, "want float32 (N, H, W)");
    int64_t N = st == SAL_OK ? x.dim[0] : 0, H = N ? x.dim[1] : 0, W = N ? x.dim[2] : 0, n = 0;
    if (st == SAL_OK) st = sal_hog(NULL, (int)H, (int)W, &o, NULL, &n);
    if (st == SAL_OK) st = sal_tensor_alloc(&f, SAL_F32, 2, (int64_t[]){N, n});
    for (int64_t i = 0; st == SAL_OK && i < N; i++)
        st = sal_hog(sal_f32(&x) + i * H * W, (int)H, (int)W, &o, sal_f32(&f) + i * n, &n);
    if (st == SAL_OK) st = sal_npy_write(argv[2], &f);
    sal_tensor_free(&x);
    sal_tensor_free(&f);
    if (st != SAL_OK) {
        fprintf(stderr, "hog_dump: %s\n", sal_last_error());
        return 1;
    }
    return 0;
}
