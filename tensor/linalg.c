/* Small dense linear algebra in double (c x c matrices of invertible 1x1
 * convolutions), row-major. */
#include "tensor/tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double max_abs(int n, const double *a)
{
    double m = 0.0;
    for (int i = 0; i < n * n; i++)
        m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

/* Partial pivoting: piv[i] is the row swapped with row i at step i
 * (LAPACK's convention). A pivot below n * eps * max|a| counts as zero,
 * since rounding leaves exactly singular matrices with such residues. */
int fg_lu_decompose(int n, double *a, int *piv, int *sign)
{
    const double tiny = n * 2.220446049250313e-16 * max_abs(n, a);
    int s = 1;
    for (int k = 0; k < n; k++) {
        int p = k;
        for (int i = k + 1; i < n; i++)
            if (fabs(a[i * n + k]) > fabs(a[p * n + k]))
                p = i;
        piv[k] = p;
        if (p != k) {
            for (int j = 0; j < n; j++) {
                double t = a[k * n + j];
                a[k * n + j] = a[p * n + j];
                a[p * n + j] = t;
            }
            s = -s;
        }
        double d = a[k * n + k];
        if (fabs(d) <= tiny || d == 0.0) {
            *sign = 0;
            return fg_error("lu_decompose: %dx%d matrix is singular (pivot %g at column %d)",
                            n, n, d, k);
        }
        for (int i = k + 1; i < n; i++) {
            double f = a[i * n + k] / d;
            a[i * n + k] = f;
            for (int j = k + 1; j < n; j++)
                a[i * n + j] -= f * a[k * n + j];
        }
    }
    *sign = s;
    return FG_OK;
}

int fg_mat_inverse(int n, const double *a, double *inv)
{
    double *lu = fg_xmalloc((size_t)n * n * sizeof(double), "matrix inverse");
    int *piv = fg_xmalloc((size_t)(n ? n : 1) * sizeof(int), "matrix inverse pivots");
    int sign;
    memcpy(lu, a, (size_t)n * n * sizeof(double));
    if (fg_lu_decompose(n, lu, piv, &sign) != FG_OK) {
        free(lu);
        free(piv);
        return fg_error("mat_inverse: %dx%d matrix is singular", n, n);
    }
    /* Solve L U X = P I: start from the identity with P's row swaps. */
    memset(inv, 0, (size_t)n * n * sizeof(double));
    for (int i = 0; i < n; i++)
        inv[i * n + i] = 1.0;
    for (int k = 0; k < n; k++)
        if (piv[k] != k)
            for (int j = 0; j < n; j++) {
                double t = inv[k * n + j];
                inv[k * n + j] = inv[piv[k] * n + j];
                inv[piv[k] * n + j] = t;
            }
    for (int i = 0; i < n; i++)          /* forward: unit lower L */
        for (int k = 0; k < i; k++) {
            double f = lu[i * n + k];
            for (int j = 0; j < n; j++)
                inv[i * n + j] -= f * inv[k * n + j];
        }
    for (int i = n - 1; i >= 0; i--) {   /* backward: upper U */
        for (int k = i + 1; k < n; k++) {
            double f = lu[i * n + k];
            for (int j = 0; j < n; j++)
                inv[i * n + j] -= f * inv[k * n + j];
        }
        double d = lu[i * n + i];
        for (int j = 0; j < n; j++)
            inv[i * n + j] /= d;
    }
    free(lu);
    free(piv);
    return FG_OK;
}

void fg_mat_slogdet(int n, const double *a, double *logabsdet, int *sign)
{
    double *lu = fg_xmalloc((size_t)n * n * sizeof(double), "slogdet");
    int *piv = fg_xmalloc((size_t)(n ? n : 1) * sizeof(int), "slogdet pivots");
    int s;
    memcpy(lu, a, (size_t)n * n * sizeof(double));
    if (fg_lu_decompose(n, lu, piv, &s) != FG_OK) {
        *logabsdet = -INFINITY;
        *sign = 0;
    } else {
        double l = 0.0;
        for (int i = 0; i < n; i++) {
            double d = lu[i * n + i];
            if (d < 0)
                s = -s;
            l += log(fabs(d));
        }
        *logabsdet = l;
        *sign = s;
    }
    free(lu);
    free(piv);
}

/* Householder reflections H_k = I - 2 v v^T zero R below the diagonal one
 * column at a time; Q = H_0 H_1 ... accumulates them. */
void fg_qr(int n, const double *a, double *q, double *r)
{
    double *v = fg_xmalloc((size_t)(n ? n : 1) * sizeof(double), "qr reflector");
    memcpy(r, a, (size_t)n * n * sizeof(double));
    memset(q, 0, (size_t)n * n * sizeof(double));
    for (int i = 0; i < n; i++)
        q[i * n + i] = 1.0;
    for (int k = 0; k < n - 1; k++) {
        double norm = 0.0;
        for (int i = k; i < n; i++)
            norm += r[i * n + k] * r[i * n + k];
        norm = sqrt(norm);
        if (norm == 0.0)
            continue;
        /* Reflect onto -sign(x0) |x| e0 so that v0 never cancels. */
        double alpha = r[k * n + k] > 0 ? -norm : norm;
        double vnorm = 0.0;
        for (int i = k; i < n; i++) {
            v[i] = r[i * n + k] - (i == k ? alpha : 0.0);
            vnorm += v[i] * v[i];
        }
        vnorm = sqrt(vnorm);
        if (vnorm == 0.0)
            continue;
        for (int i = k; i < n; i++)
            v[i] /= vnorm;
        for (int j = 0; j < n; j++) {       /* R = H R */
            double dot = 0.0;
            for (int i = k; i < n; i++)
                dot += v[i] * r[i * n + j];
            for (int i = k; i < n; i++)
                r[i * n + j] -= 2.0 * v[i] * dot;
        }
        for (int i = 0; i < n; i++) {       /* Q = Q H */
            double dot = 0.0;
            for (int j = k; j < n; j++)
                dot += q[i * n + j] * v[j];
            for (int j = k; j < n; j++)
                q[i * n + j] -= 2.0 * dot * v[j];
        }
        for (int i = k + 1; i < n; i++)
            r[i * n + k] = 0.0;
    }
    free(v);
}

void fg_random_orthogonal(int n, fg_rng *rng, double *q)
{
    size_t nn = (size_t)n * n;
    double *g = fg_xmalloc((nn ? nn : 1) * sizeof(double), "random orthogonal");
    double *r = fg_xmalloc((nn ? nn : 1) * sizeof(double), "random orthogonal R");
    fg_rng_normal_double(rng, g, nn);
    fg_qr(n, g, q, r);
    /* QR is unique only up to column signs; making diag(R) positive makes
     * Q Haar distributed. */
    for (int j = 0; j < n; j++)
        if (r[j * n + j] < 0)
            for (int i = 0; i < n; i++)
                q[i * n + j] = -q[i * n + j];
    free(g);
    free(r);
}

void fg_matmul_double(int n, const double *a, const double *b, double *c)
{
    /* A temporary lets c alias a or b. */
    double *t = fg_xcalloc((size_t)(n ? n : 1) * (n ? n : 1), sizeof(double), "matmul");
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            double f = a[i * n + k];
            for (int j = 0; j < n; j++)
                t[i * n + j] += f * b[k * n + j];
        }
    memcpy(c, t, (size_t)n * n * sizeof(double));
    free(t);
}
