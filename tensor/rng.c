/* Philox4x32-10 counter-based generator.
 *
 * The stream is a sequence of 64-bit units; Philox block b holds units 2b
 * and 2b+1. Every draw (uniform, normal, u32) consumes exactly one unit, and
 * the value of unit g depends only on (key, g). So a draw of n numbers can be
 * split over threads in any way, and two calls of n1 and n2 numbers give the
 * same numbers as one call of n1 + n2.
 *
 * Normals come from Box-Muller on the two 53-bit uniforms of a whole block:
 * unit 2b takes the cosine branch and unit 2b+1 the sine branch, so an odd
 * split between calls still yields every normal of the stream exactly once. */
#include "tensor/tensor.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

typedef struct { uint32_t v[4]; } block4;

static block4 philox(uint64_t key, uint64_t block)
{
    uint32_t c0 = (uint32_t)block, c1 = (uint32_t)(block >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    block4 r = {{c0, c1, c2, c3}};
    return r;
}

/* splitmix64 finalizer: spreads seeds such as 0, 1, 2 over the key space. */
static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void fg_rng_seed(fg_rng *r, uint64_t seed)
{
    *r = (fg_rng){.key = mix64(seed)};
}

void fg_rng_seed_stream(fg_rng *r, uint64_t seed, uint64_t stream)
{
    *r = (fg_rng){.key = mix64(mix64(seed) ^ mix64(stream + 0x632BE59BD9B4E019ull))};
}

static uint64_t unit_bits(block4 b, int half)
{
    return ((uint64_t)b.v[2 * half] << 32) | b.v[2 * half + 1];
}

/* [0, 1) with 24 bits, so the float never rounds up to 1. */
static float to_uniform_float(uint64_t bits)
{
    return (float)(bits >> 40) * 0x1.0p-24f;
}

/* Box-Muller branch of a block; u1 lies in (0, 1] so the log is finite. */
static double block_normal(block4 b, int half)
{
    double u1 = ((double)(unit_bits(b, 0) >> 11) + 1.0) * 0x1.0p-53;
    double u2 = (double)(unit_bits(b, 1) >> 11) * 0x1.0p-53;
    double radius = sqrt(-2.0 * log(u1));
    double angle = 6.283185307179586476925 * u2;  /* 2 pi */
    return half ? radius * sin(angle) : radius * cos(angle);
}

enum draw_kind { DRAW_UNIFORM, DRAW_NORMAL, DRAW_NORMAL_DOUBLE };

/* Fills out[0..n) with units counter..counter+n-1 by walking whole blocks,
 * so each block is computed once even though it serves two units. */
static void draw(fg_rng *r, enum draw_kind kind, void *out, size_t n)
{
    if (n == 0)
        return;
    uint64_t start = r->counter, after = r->counter + n;
    if (r->part_total > 0) {
        /* This part's images' share of a draw for the whole batch. */
        FG_CHECK(n % (size_t)r->part_count == 0, "rng",
                 "a draw of %zu values for a part of %d images", n, r->part_count);
        const uint64_t per_image = n / (size_t)r->part_count;
        start += (uint64_t)r->part_first * per_image;
        after = r->counter + (uint64_t)r->part_total * per_image;
    }
    const uint64_t end = start + n;
    const uint64_t first_block = start / 2, last_block = (end - 1) / 2;
    const long nblocks = (long)(last_block - first_block + 1);
    const uint64_t key = r->key;
    float *outf = out;
    double *outd = out;

    #pragma omp parallel for if(n > FG_PARALLEL_THRESHOLD)
    for (long i = 0; i < nblocks; i++) {
        uint64_t b = first_block + (uint64_t)i;
        block4 bits = philox(key, b);
        for (int half = 0; half < 2; half++) {
            uint64_t g = 2 * b + (uint64_t)half;
            if (g < start || g >= end)
                continue;
            size_t j = (size_t)(g - start);
            switch (kind) {
            case DRAW_UNIFORM:
                outf[j] = to_uniform_float(unit_bits(bits, half));
                break;
            case DRAW_NORMAL:
                outf[j] = (float)block_normal(bits, half);
                break;
            case DRAW_NORMAL_DOUBLE:
                outd[j] = block_normal(bits, half);
                break;
            }
        }
    }
    r->counter = after;
}

fg_rng fg_rng_part(const fg_rng *r, int first, int count, int total)
{
    FG_CHECK(count > 0 && first >= 0 && first + count <= total, "rng_part",
             "images %d to %d of a batch of %d", first, first + count - 1, total);
    fg_rng p = *r;
    p.part_first = first;
    p.part_count = count;
    p.part_total = total;
    return p;
}

void fg_rng_uniform(fg_rng *r, float *out, size_t n)
{
    draw(r, DRAW_UNIFORM, out, n);
}

void fg_rng_normal(fg_rng *r, float *out, size_t n)
{
    draw(r, DRAW_NORMAL, out, n);
}

void fg_rng_normal_double(fg_rng *r, double *out, size_t n)
{
    draw(r, DRAW_NORMAL_DOUBLE, out, n);
}

static uint64_t next_u64(fg_rng *r)
{
    uint64_t g = r->counter++;
    return unit_bits(philox(r->key, g / 2), (int)(g % 2));
}

uint32_t fg_rng_u32(fg_rng *r)
{
    return (uint32_t)(next_u64(r) >> 32);
}

void fg_rng_permutation(fg_rng *r, int *perm, int n)
{
    for (int i = 0; i < n; i++)
        perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        /* Multiply-shift maps 64 random bits onto 0..i; the bias is below
         * i / 2^64, far under anything a permutation test could see. */
        int j = (int)(((unsigned __int128)next_u64(r) * (unsigned)(i + 1)) >> 64);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
