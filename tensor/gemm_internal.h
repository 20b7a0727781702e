/* GEMM internals shared by tensor/gemm.c, its test and its benchmark (not
 * installed): which kernel path serves fg_gemm_ex. */
#ifndef FLOWGRAD_GEMM_INTERNAL_H
#define FLOWGRAD_GEMM_INTERNAL_H

/* FLOWGRAD_GEMM_KERNEL=avx512|avx2|scalar|blis picks the path at the first
 * call; unset or "auto" takes the best one for the CPU: avx512 where it is
 * supported, else BLIS's own context when BLIS has kernels for this CPU,
 * else avx2 or scalar. "blis" is BLIS's own context, untouched. */
enum fg_gemm_path {
    FG_GEMM_AUTO = -1,
    FG_GEMM_BLIS = 0,
    FG_GEMM_SCALAR,
    FG_GEMM_AVX2,
    FG_GEMM_AVX512,
    FG_GEMM_NPATHS
};

int fg_gemm_path_supported(int path);
/* The path "auto" takes on this CPU. */
int fg_gemm_best_path(void);
/* Selects the path of every later call, process-wide; FG_GEMM_AUTO returns to
 * the environment's or the CPU's choice. FG_ERR when the CPU lacks it. */
int fg_gemm_set_path(int path);
int fg_gemm_get_path(void);
const char *fg_gemm_path_name(int path);
/* FG_GEMM_AUTO for "auto", -2 for an unknown name. */
int fg_gemm_path_from_name(const char *name);

/* The register and cache blocks of a path's context (MR, NR, MC, KC, NC). */
void fg_gemm_path_blocks(int path, int blocks[5]);

#endif
