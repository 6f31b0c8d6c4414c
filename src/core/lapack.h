/* LAPACK through LAPACKE (Debian's liblapacke), loaded at first use (see lapack.c). Double precision,
 * row-major. */
#ifndef SAL_LAPACK_H
#define SAL_LAPACK_H

#include "core.h"

/* Loads LAPACKE (after OpenBLAS, so both share one OpenBLAS). */
sal_status sal_lapack_init(void);

/* Minimum-norm least squares min ||b - A x||_2 through the SVD (dgelsd); A (m, n) is overwritten,
 * b (max(m, n)) holds the right-hand side on entry and x in its first n entries on return. Singular
 * values below rcond times the largest count as zero; *rank (may be NULL) gets the effective rank. */
sal_status sal_lapack_gelsd(int m, int n, double *A, double *b, double rcond, int *rank);

/* Solves the banded system A X = B (dgbsv, column-major): A (n, n) with kl sub- and ku
 * super-diagonals in LAPACK's band storage ab (2 kl + ku + 1 rows, n columns: A[i][j] at
 * ab[(kl + ku + i - j) + j (2 kl + ku + 1)]), overwritten by its LU factors; b (n, nrhs) holds B on
 * entry and X on return. SAL_ERR_NUMERIC when A is singular. */
sal_status sal_lapack_gbsv(int n, int kl, int ku, int nrhs, double *ab, double *b);

#endif
