/* flowgrad check: evidence that a declared flow is what it claims to be
 * (fg_model_self_check, models/model_check.h), printed. */
#include "examples/cli.h"
#include "models/model_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char cmd[] = "check";

static void help(void)
{
    puts("usage: flowgrad check CONFIG [options]\n"
         "\n"
         "Builds the model at batch 2 on random input, moves its parameters off their\n"
         "identity initialization and reports the round-trip error, the analytic vs\n"
         "numerical log-determinant and a directional gradient check. Exits non-zero\n"
         "if any check fails.\n"
         "\n"
         "  --seed S   seed of the weights, inputs and perturbation (default 1)\n"
         "  --json     print the results as JSON\n"
         "  --help     this text");
}

int cmd_check(int argc, char **argv)
{
    const char *config = NULL, *v;
    long long seed = 1;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--seed")) {
            if (!(v = cli_value(argc, argv, &i)) || cli_int(a, v, 0, INT64_MAX, &seed) != FG_OK)
                return cli_usage_error(cmd, "%s", fg_last_error());
        } else {
            int rc = cli_positional(cmd, a, &config, "CONFIG");
            if (rc)
                return rc;
        }
    }
    if (!config)
        return cli_usage_error(cmd, "missing CONFIG: expected a YAML model config");
    fg_config *cfg;
    if (fg_config_load_file(config, &cfg) != FG_OK)
        return cli_fail(cmd, "%s", fg_last_error());
    const fg_model_spec *s = &cfg->model;
    fg_model_check_report r;
    if (fg_train_memory_check_build(cfg) != FG_OK) {
        fg_config_free(cfg);
        return cli_fail(cmd, "%s", fg_last_error());
    }
    if (fg_model_self_check(s, (uint64_t)seed, &r) != FG_OK) {
        int rc = cli_fail(cmd, "%s: %s", config, fg_last_error());
        fg_config_free(cfg);
        return rc;
    }
    const char *yes[2] = {"false", "true"};
    if (json) {
        printf("{\"config\": ");
        cli_json_string(stdout, config);
        printf(", \"round_trip_max_abs_error\": %.3g, \"round_trip_ok\": %s, "
               "\"logdet_input\": [%d, %d, %d], \"logdet_analytic\": %.6f, "
               "\"logdet_numeric\": %.6f, \"logdet_ok\": %s, \"grad_analytic\": %.6g, "
               "\"grad_numeric\": %.6g, \"grad_rel_error\": %.3g, \"grad_ok\": %s, "
               "\"ok\": %s}\n", r.round_trip, yes[r.round_trip_ok], r.small.c, r.small.h,
               r.small.w, r.logdet_analytic, r.logdet_numeric, yes[r.logdet_ok],
               r.grad_analytic, r.grad_numeric, r.grad_rel, yes[r.grad_ok], yes[r.ok]);
    } else {
        printf("%s: %d layers\n", config, s->n_layers);
        printf("round trip (batch 2, (%d, %d, %d)): max |x - decode(encode(x))| = %.3g  [%s, "
               "limit %g]\n", r.full.c, r.full.h, r.full.w, r.round_trip,
               r.round_trip_ok ? "ok" : "FAIL", FG_CHECK_TOL_ROUND_TRIP);
        if (r.have_logdet)
            printf("log-det on (%d, %d, %d), couplings <= %d wide: analytic %.5f, numerical "
                   "%.5f, diff %.3g  [%s]\n", r.small.c, r.small.h, r.small.w, r.max_hidden,
                   r.logdet_analytic, r.logdet_numeric,
                   fabs(r.logdet_analytic - r.logdet_numeric), r.logdet_ok ? "ok" : "FAIL");
        else
            printf("log-det: skipped, %d dimensions is too many for a full Jacobian\n", r.dims);
        printf("gradient along a mixed direction: analytic %.6g, numerical %.6g, rel. "
               "error %.3g  [%s, limit %g]\n", r.grad_analytic, r.grad_numeric, r.grad_rel,
               r.grad_ok ? "ok" : "FAIL", FG_CHECK_TOL_GRAD_REL);
        printf("%s\n", r.ok ? "all checks passed" : "CHECK FAILED");
    }
    fg_config_free(cfg);
    return r.ok ? 0 : 1;
}
