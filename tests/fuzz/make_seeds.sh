#!/bin/sh
# Seed inputs for one fuzz target: make_seeds.sh TARGET SRCDIR OUTDIR.
# Configs and checkpoints come from the project; IDX and CIFAR seeds are
# small well-formed files made here, since the real data sets are large,
# and PNG and JPEG seeds are small files kept here in base64.
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
image)
    # Small PNGs (gray; RGBA interlaced; 4-bit palette with transparency;
    # 16-bit gray with alpha) and JPEGs (gray; progressive RGB), made with
    # libpng and libjpeg, each after a first byte that picks the target
    # size (see fuzz_image.c).
    seed() { { printf "$2"; echo "$3" | base64 -d; } >"$out"/"$1"; }
    seed gray.png '\042' \
iVBORw0KGgoAAAANSUhEUgAAAAUAAAADCAAAAAB+XZokAAAAGklEQVQI12Nk\
UFVVVWXZqap67x7Lzns7VVUBKjEF90osI4QAAAAASUVORK5CYII=
    seed rgba-interlaced.png '\307' \
iVBORw0KGgoAAAANSUhEUgAAAAYAAAAECAYAAAHaA37VAAAAVUlEQVQI12Ng\
UPXKZ4huWHqKQcO3aDqjoFl0g4aGhoaxsbExw5Sd95j3PGTTfi9iGcckiASY\
m1ec/XTtxW/e1XsvPHrPNGX5zjP3PjJPW7EbRRUyAADEKB9955Hf4AAAAABJ\
RU5ErkJggg==
    seed palette-trns.png '\017' \
iVBORw0KGgoAAAANSUhEUgAAAAQAAAACBAMAAACNhmBQAAAACVBMVEX/AAAA\
/wAAAP8tSs2KAAAAAXRSTlOArV5bRgAAAA5JREFUCNdjEGJkUFAEAADFAFUs\
Qt6oAAAAAElFTkSuQmCC
    seed gray16-alpha.png '\360' \
iVBORw0KGgoAAAANSUhEUgAAAAMAAAACEAQAAABn7XLSAAAAI0lEQVQI12Nm\
UPXKn7J855l7H5mnMex5yKYd3bD01HsRyzgAlqwLvGXKBEQAAAAASUVORK5C\
YII=
    seed gray.jpg '\063' \
/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYW\
GDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/\
wAALCAAIAAgBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAAA//EAB8QAAIBBAID\
AAAAAAAAAAAAAAEDAgQRITEFFDNBUf/aAAgBAQAAPwAkLWyhamnj1ePh5amV\
xJsfgGwCfWzgYuQf/9k=
    seed rgb-progressive.jpg '\177' \
/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYW\
GDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/\
2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2Nj\
Y2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wgARCAAIABADASIAAhEBAxEB/8QA\
FQABAQAAAAAAAAAAAAAAAAAAAAL/xAAVAQEBAAAAAAAAAAAAAAAAAAAAAf/a\
AAwDAQACEAMQAAABmhP/xAAXEAADAQAAAAAAAAAAAAAAAAAAAREx/9oACAEB\
AAEFApDH/8QAFREBAQAAAAAAAAAAAAAAAAAAAAH/2gAIAQMBAT8Bj//EABYR\
AAMAAAAAAAAAAAAAAAAAAAABUf/aAAgBAgEBPwGM/8QAGBAAAgMAAAAAAAAA\
AAAAAAAAAEEREvH/2gAIAQEABj8ChFlp/8QAHBABAAEEAwAAAAAAAAAAAAAA\
AREAITHBQXGh/9oACAEBAAE/ISHkiPA204l0z3dar//aAAwDAQACAAMAAAAQ\
9//EABkRAAEFAAAAAAAAAAAAAAAAAAEAETFhgf/aAAgBAwEBPxApFti//8QA\
FxEAAwEAAAAAAAAAAAAAAAAAAAEhYf/aAAgBAgEBPxB3Q//EABwQAAMAAQUA\
AAAAAAAAAAAAAAERITEAQVHB8P/aAAgBAQABPxCKUmFD3/WAZyhiDc4Ea//Z
    ;;
*)
    echo "make_seeds.sh: unknown target $t" >&2; exit 1 ;;
esac
