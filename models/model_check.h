/* flowgrad model check: evidence that a declared flow is what it claims to
 * be. With parameters moved off their identity initialization it measures
 *   - the round trip decode(encode(x)) against x on the full model,
 *   - the analytic log-determinant against log|det J| of the whole chain's
 *     Jacobian by central differences, on a reduced instance of the same
 *     layer list (smallest input the squeezes allow, narrow couplings),
 *   - the gradient of the training loss along a direction half random, half
 *     the analytic gradient, against a finite difference, on the reduced
 *     instance. */
#ifndef FLOWGRAD_MODELS_MODEL_CHECK_H
#define FLOWGRAD_MODELS_MODEL_CHECK_H

#include "models/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits the verdicts use (the others are in model_check.c). */
#define FG_CHECK_TOL_ROUND_TRIP 1e-3
#define FG_CHECK_TOL_GRAD_REL 2e-2

typedef struct fg_model_check_report {
    fg_chw full, small;        /* input shapes of the two instances */
    int max_hidden;            /* coupling width cap of the small one */
    double round_trip;         /* max |x - decode(encode(x))| */
    int dims, have_logdet;     /* the Jacobian is skipped above 1024 dims */
    double logdet_analytic, logdet_numeric;
    double grad_analytic, grad_numeric, grad_rel;
    int round_trip_ok, logdet_ok, grad_ok, ok;
} fg_model_check_report;

/* Builds the spec's model (and the reduced instance) from seed and runs the
 * three checks. FG_ERR only when a model cannot be built; a failed check is
 * r->ok == 0. */
FG_API int fg_model_self_check(const fg_model_spec *s, uint64_t seed, fg_model_check_report *r);

#ifdef __cplusplus
}
#endif
#endif
