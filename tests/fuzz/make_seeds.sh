#!/bin/sh
# Seed inputs for one fuzz target: make_seeds.sh TARGET SRCDIR OUTDIR.
# Configs and checkpoints come from the project; IDX and CIFAR seeds are
# small well-formed files made here, since the real data sets are large.
set -e
t=$1 src=$2 out=$3
case $t in
config)
    cp "$src"/models/*.yaml "$src"/tests/configs/*.yaml "$out"/ ;;
safetensors)
    cp "$src"/tests/fixtures/*.safetensors "$out"/ ;;
idx)
    # Two 2x3 images and their labels; the first two bytes are the offset
    # (little-endian) where the labels file begins: 16 + 12 = 28.
    {
        printf '\034\000'
        printf '\000\000\010\003\000\000\000\002\000\000\000\002\000\000\000\003'
        printf '\000\001\002\003\004\005\377\376\375\374\373\372'
        printf '\000\000\010\001\000\000\000\002\003\011'
    } >"$out"/plain
    # The same pair gzip-compressed (zlib reads either).
    {
        printf '\000\000\010\003\000\000\000\002\000\000\000\002\000\000\000\003'
        printf '\000\001\002\003\004\005\377\376\375\374\373\372'
    } | gzip -9n >"$out"/img.gz
    printf '\000\000\010\001\000\000\000\002\003\011' | gzip -9n >"$out"/lab.gz
    n=$(wc -c <"$out"/img.gz)
    { printf "\\$(printf %03o $((n % 256)))\\$(printf %03o $((n / 256)))"
      cat "$out"/img.gz "$out"/lab.gz; } >"$out"/gzip
    rm -f "$out"/img.gz "$out"/lab.gz ;;
cifar)
    # Two records: a label byte and 3072 pixel bytes each.
    { printf '\003'; head -c 3072 /dev/zero | tr '\000' '\200'
      printf '\011'; head -c 3072 /dev/zero; } >"$out"/two ;;
checkpoint)
    # Mutation programs for fuzz_checkpoint (see its mutate()): the base,
    # a count of operations, then per operation a tensor index, the
    # operation and its arguments. Each base unchanged, and one short
    # program per kind of operation (a value, every value, the YAML, a
    # counter, a removal, a dtype).
    printf '\000\000' >"$out"/base0
    printf '\001\000' >"$out"/base1
    printf '\000\001\003\000\000\000\000\002\000' >"$out"/nan
    printf '\000\001\003\000\000\000\000\001\003' >"$out"/value
    printf '\000\001\004\001\003' >"$out"/all-zero
    printf '\000\001\000\006\000\000\006' >"$out"/yaml
    printf '\000\001\000\007\001\000\004' >"$out"/counter
    printf '\001\001\005\005' >"$out"/removed
    printf '\001\002\002\003\001\002\002\002\000' >"$out"/dtype ;;
*)
    echo "make_seeds.sh: unknown target $t" >&2; exit 1 ;;
esac
