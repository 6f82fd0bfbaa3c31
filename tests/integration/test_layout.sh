# The design, checked on the objects the build made: which file's code
# calls which.  The layers: common/ (small helpers, libc alone) under the
# core (lib/), the input backends (lib/sources/) on the source interface,
# the policy of a program (lib/open/: stdin, $TMPDIR, qemu-nbd, qemu-img)
# on top, lib/api.c over all, and the program on the public interface only.
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
# The qcow2 format layer, which both directions share: bytes in, fields
# out, nothing of the rest of the library but its errors, and no I/O.
check "lib/format/ calls nothing of the library but lib/error" \
    bash -c '! grep -E "^lib/format/[^ ]+ " edges | grep -vE " (lib/error|lib/format/[^ ]+)$"'
check "lib/format/ does no I/O" \
    bash -c 'ls objects/lib/format/*.o > /dev/null && ! nm --undefined-only objects/lib/format/*.o | awk "{ print \$2 }" | grep -xE "(p?read|p?write|open|openat|close|f?open|fread|fwrite|mmap|lseek|ioctl|splice|sendfile)(64)?"'
check "there are edges to check (the objects were found)" \
    bash -c '[ "$(wc -l < edges)" -ge 20 ] && grep -q "^lib/export/api lib/export/build$" edges'

# The program uses the interface and nothing else of the library.
program_object=$build/programs/qcow2-to-stdout.o
nm --undefined-only "$program_object" | awk '$2 ~ /^q2s_/ { print $2 }' | sort > used
sed -n 's/^    \(q2s_[a-z0-9_]*\);$/\1/p' "$top/lib/qcow2-to-stdout.map" | sort > exported
check "the program calls only functions the library exports" \
    bash -c '[ -s used ] && comm -23 used exported | { ! grep .; }'

finish
