# The design, checked on the objects the build made: which file's code
# calls which.  Two directions over one shared layer: the export
# (lib/export/, qcow2-to-stdout) and the import (lib/import/,
# qcow2-from-stdin) call nothing of each other, only what is under both:
# the qcow2 format layer (lib/format/, codecs included), the errors
# (lib/error.c), the version and what an NBD URI is (lib/api.c) and
# common/ (small helpers, libc alone), none of which calls either.
# Within the export: the core (lib/export/), the input backends
# (lib/export/sources/) on the source interface, the policy of a program
# (lib/export/open/: stdin, $TMPDIR, qemu-nbd, qemu-img) on top, and
# lib/export/api.c over all; the programs on the public interface only.
source "$(dirname "$0")/lib.sh"

build=${Q2S_BUILD:-$top/build}
if [ ! -d "$build/lib/export/open" ] || ! have nm; then
    skip "the layout of the library" "no objects in $build/lib or no nm"
    finish
    exit 0
fi

# "A B" for each object A that uses a symbol object B defines.
edges() {
    local dir=$1 object name symbol
    declare -A defined_in
    while read -r object; do
        name=${object#"$dir"/}
        for symbol in $(nm --defined-only "$object" | awk '$2 ~ /^[TDBRV]$/ { print $3 }'); do
            defined_in[$symbol]=${name%.o}
        done
    done < <(find "$dir" -name '*.o' | sort)
    while read -r object; do
        name=${object#"$dir"/}
        for symbol in $(nm --undefined-only "$object" | awk '{ print $2 }'); do
            target=${defined_in[$symbol]:-}
            if [ -n "$target" ] && [ "$target" != "${name%.o}" ]; then
                echo "${name%.o} $target"
            fi
        done
    done < <(find "$dir" -name '*.o' | sort)
}
# The objects of the sources as they are now, not of files since removed.
mkdir objects
(cd "$top" && find lib common -name '*.c') | while read -r source; do
    mkdir -p "objects/$(dirname "$source")"
    cp "$build/${source%.c}.o" "objects/${source%.c}.o"
done
edges objects | sort -u > edges

check "the library's files call each other without a circle" \
    bash -c 'tsort edges > /dev/null'
check "the input backends call nothing of lib/export/open/, lib/export/api.c or each other" \
    bash -c '! grep -E "^lib/export/sources/[^ ]+ (lib/export/open/|lib/export/api$|lib/export/sources/)" edges'
check "the core calls nothing of lib/export/open/ (only lib/export/api.c does)" \
    bash -c '! grep -E "^lib/(export/)?[^/ ]+ lib/export/open/" edges | grep -v "^lib/export/api "'
check "common/ calls nothing of lib/" \
    bash -c '! grep -E "^common/[^ ]+ lib/" edges'
check "lib/error calls nothing of the library but common/" \
    bash -c '! grep -E "^lib/error " edges | grep -vE " common/[^ ]+$"'
# The two directions: neither calls the other; what both use is in
# common/, lib/error.c, lib/format/ and lib/api.c (the version, what an
# NBD URI is).
check "lib/export/ calls nothing of lib/import/" \
    bash -c '! grep -E "^lib/export/[^ ]+ lib/import/" edges'
check "lib/import/ calls nothing of lib/export/" \
    bash -c '! grep -E "^lib/import/[^ ]+ lib/export/" edges'
check "lib/api calls nothing of either direction" \
    bash -c '! grep -E "^lib/api lib/(export|import)/" edges'
# The qcow2 format layer, which both directions share: bytes in, fields
# out, nothing of the rest of the library but its errors, and no I/O.
check "lib/format/ calls nothing of the library but lib/error" \
    bash -c '! grep -E "^lib/format/[^ ]+ " edges | grep -vE " (lib/error|lib/format/[^ ]+)$"'
check "lib/format/ does no I/O" \
    bash -c 'ls objects/lib/format/*.o > /dev/null && ! nm --undefined-only objects/lib/format/*.o | awk "{ print \$2 }" | grep -xE "(p?read|p?write|open|openat|close|f?open|fread|fwrite|mmap|lseek|ioctl|splice|sendfile)(64)?"'
# Edges that the layout has, one of each part: if these are not found,
# the rules above looked at nothing.
check "there are edges to check (the objects were found)" \
    bash -c '[ "$(wc -l < edges)" -ge 20 ] &&
             grep -q "^lib/export/api lib/export/build$" edges &&
             grep -q "^lib/export/compress_pool lib/format/qcow2_compress$" edges &&
             grep -q "^lib/export/open/open lib/export/sources/nbd$" edges &&
             grep -q "^lib/import/reader lib/format/qcow2_entries$" edges &&
             grep -q "^lib/import/api common/tmpdir$" edges'

# The programs use the interface and nothing else of the library.
sed -n 's/^    \(q2s_[a-z0-9_]*\);$/\1/p' "$top/lib/qcow2-to-stdout.map" | sort > exported
for program in qcow2-to-stdout qcow2-from-stdin; do
    nm --undefined-only "$build/programs/$program.o" | awk '$2 ~ /^q2s_/ { print $2 }' |
        sort > "used-$program"
    check "$program calls only functions the library exports" \
        bash -c '[ -s "$0" ] && comm -23 "$0" exported | { ! grep .; }' "used-$program"
done

finish
