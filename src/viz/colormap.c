/* Colormaps, computed from paths in CIE L*C*h (the polar form of CIELAB, D65 white) and converted
 * to sRGB with the standard formulas (CIE 15 for Lab -> XYZ, IEC 61966-2-1 for XYZ -> sRGB).
 *
 * Lightness L* changes linearly along each map, so equal steps in value are roughly equal steps in
 * perceived lightness, and the maps read correctly in greyscale. A colour outside the sRGB gamut
 * keeps its L* and hue and loses chroma until it fits (bisection), so gamut mapping never breaks
 * the lightness ramp.
 *   diverging  t in [-1,1]: L* = 97 - 60|t|, chroma 64|t|, hue 262 deg (blue) for t < 0 and 32 deg
 *              (red) for t > 0; t = 0 is a neutral near-white (L* 97, chroma 0), and t and -t have
 *              the same L*, so the two sides are equally strong.
 *   sequential t in [0,1]: L* = 4 + 92 t, hue turning from 300 deg (purple) through red and orange
 *              to 95 deg (yellow), chroma 70 sin(pi (0.1 + 0.85 t)): near black to pale yellow. */
#include "viz.h"
#include <math.h>

#define PI 3.14159265358979323846

/* CIELAB inverse companding f^-1 (CIE 15). */
static double lab_finv(double t) {
    const double d = 6.0 / 29.0;
    return t > d ? t * t * t : 3 * d * d * (t - 4.0 / 29.0);
}

/* L*C*h (h in degrees) to linear sRGB, which may fall outside [0,1]. */
static void lch_to_linear(double L, double C, double hdeg, double lin[3]) {
    if (C <= 0) { /* exact grey (the matrix rows do not sum to exactly 1 at the white point) */
        lin[0] = lin[1] = lin[2] = lab_finv((L + 16) / 116);
        return;
    }
    double a = C * cos(hdeg * PI / 180), b = C * sin(hdeg * PI / 180);
    double fy = (L + 16) / 116, fx = fy + a / 500, fz = fy - b / 200;
    double X = 0.95047 * lab_finv(fx), Y = lab_finv(fy), Z = 1.08883 * lab_finv(fz);
    lin[0] = 3.2406 * X - 1.5372 * Y - 0.4986 * Z;
    lin[1] = -0.9689 * X + 1.8758 * Y + 0.0415 * Z;
    lin[2] = 0.0557 * X - 0.2040 * Y + 1.0570 * Z;
}

static bool in_gamut(const double lin[3]) {
    const double eps = 1e-9;
    return lin[0] >= -eps && lin[0] <= 1 + eps && lin[1] >= -eps && lin[1] <= 1 + eps && lin[2] >= -eps &&
           lin[2] <= 1 + eps;
}

static double srgb_encode(double c) {
    c = c < 0 ? 0 : c > 1 ? 1 : c;
    return c <= 0.0031308 ? 12.92 * c : 1.055 * pow(c, 1 / 2.4) - 0.055;
}

static double srgb_decode(double c) { return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4); }

/* sRGB of L*C*h, reducing chroma until the colour is in gamut. */
static void lch_to_srgb(double L, double C, double h, double rgb[3]) {
    double lin[3];
    lch_to_linear(L, C, h, lin);
    if (!in_gamut(lin)) {
        double lo = 0, hi = C; /* chroma 0 is grey, always in gamut for 0 <= L <= 100 */
        for (int i = 0; i < 40; i++) {
            double mid = (lo + hi) / 2;
            lch_to_linear(L, mid, h, lin);
            if (in_gamut(lin)) lo = mid;
            else hi = mid;
        }
        lch_to_linear(L, lo, h, lin);
    }
    for (int k = 0; k < 3; k++) rgb[k] = srgb_encode(lin[k]);
}

void viz_cmap_eval(sal_cmap kind, double t, double rgb[3]) {
    if (kind == SAL_CMAP_SEQUENTIAL) {
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        lch_to_srgb(4 + 92 * t, 70 * sin(PI * (0.1 + 0.85 * t)), fmod(300 + 155 * t, 360), rgb);
    } else {
        t = t < -1 ? -1 : t > 1 ? 1 : t;
        double s = fabs(t);
        lch_to_srgb(97 - 60 * s, 64 * s, t < 0 ? 262 : 32, rgb);
    }
}

void viz_cmap_lut(sal_cmap kind, uint8_t lut[VIZ_LUT_N][3]) {
    for (int i = 0; i < VIZ_LUT_N; i++) {
        double u = (double)i / (VIZ_LUT_N - 1), rgb[3];
        viz_cmap_eval(kind, kind == SAL_CMAP_SEQUENTIAL ? u : 2 * u - 1, rgb);
        for (int k = 0; k < 3; k++) lut[i][k] = (uint8_t)lrint(rgb[k] * 255);
    }
}

double viz_luminance(const double rgb[3]) {
    return 0.2126 * srgb_decode(rgb[0]) + 0.7152 * srgb_decode(rgb[1]) + 0.0722 * srgb_decode(rgb[2]);
}
