#!/usr/bin/env bash
# qcow2-from-stdin --apply: restores of increments onto the disk they
# were made from.  A chain of this tool's increments (data and zero
# clusters), a qemu-img overlay with zero writes and discards, one with
# subclusters, and XAPI's fork's --diff output, each checked against
# QEMU's own view of the same image.
. "$(dirname "$0")/lib.sh"

MiB=$((1024 * 1024))

# change FILE SEED: random writes, and zeros over data, in FILE.
change() {
    local file=$1 i off
    RANDOM=$2
    for i in $(seq 12); do
        off=$(( (RANDOM * 331) % (15 * MiB) ))
        head -c $(( (RANDOM % 64 + 1) * 4096 )) /dev/urandom | write_at "$file" "$off"
    done
    head -c $((192 * 1024)) /dev/zero | write_at "$file" $((RANDOM * 13 % (15 * MiB)))
}

make_image v0.raw $((16 * MiB))
cp v0.raw v1.raw; change v1.raw 1
cp v1.raw v2.raw; change v2.raw 2
# Zeros over data the image had (make_image's random run at 1.8 MB).
head -c $((128 * 1024)) /dev/zero | write_at v2.raw $((2 * MiB))
# The disk at its three times, as backups: a full stream, then two
# increments over it (each against the version before, read raw).
"$Q2S" v0.raw > full.qcow2
"$Q2S" --diff=v0.raw -B full.qcow2 -F qcow2 v1.raw > inc1.qcow2
"$Q2S" --diff=v1.raw -B inc1.qcow2 -F qcow2 v2.raw > inc2.qcow2

zero_clusters() {
    qemu-img map --output=json -f qcow2 inc2.qcow2 |
        grep -q '"depth": 0, "present": true, "zero": true, "data": false' ||
        { echo "inc2.qcow2 has no zero cluster"; return 1; }
}
check "the second increment holds zero clusters" zero_clusters

chain() {
    rm -f disk.raw
    "$Q2F" disk.raw < full.qcow2 || return 1
    cmp disk.raw v0.raw || { echo "full restore differs"; return 1; }
    cat inc1.qcow2 | "$Q2F" --apply disk.raw || return 1
    cmp disk.raw v1.raw || { echo "after inc1: differs"; return 1; }
    cat inc2.qcow2 | "$Q2F" --apply disk.raw || return 1
    cmp disk.raw v2.raw || { echo "after inc2: differs"; return 1; }
}
check "a full stream, then two increments with --apply" chain

without_apply() {
    cp v1.raw disk.raw
    fails 1 'the image is an overlay of "inc1.qcow2"' sh -c "\"$Q2F\" disk.raw < inc2.qcow2" || return 1
    cmp disk.raw v1.raw || { echo "the target changed"; return 1; }
}
check "an overlay without --apply is refused, the target untouched" without_apply

wrong_size() {
    cp v1.raw disk.raw
    truncate -s $((16 * MiB + 512)) disk.raw
    fails 1 "apply needs a target of the image's size" sh -c "\"$Q2F\" --apply disk.raw < inc2.qcow2" || return 1
    cmp -n $((16 * MiB)) disk.raw v1.raw || { echo "the target changed"; return 1; }
}
check "--apply onto a target of another size is refused, untouched" wrong_size
check "--apply onto a missing file is refused" \
    fails 1 "missing.raw: No such file or directory" sh -c "\"$Q2F\" --apply missing.raw < inc1.qcow2"
check "--apply to standard output is a usage error" \
    fails 2 "apply writes onto a disk" sh -c "\"$Q2F\" --apply < inc1.qcow2"

# qemu-img's overlay of a base: data, zero writes and discards (zero
# clusters over a backing file), and clusters left to the base.
overlay() {
    local opts=$1
    qemu-img convert -f raw -O qcow2 v0.raw base.qcow2 || return 1
    rm -f ov.qcow2
    qemu-img create -f qcow2 -b base.qcow2 -F qcow2 ${opts:+-o "$opts"} ov.qcow2 >/dev/null || return 1
    qemu-io -f qcow2 -c 'write -P 0x41 64k 100k' -c 'write -z 1M 128k' \
        -c 'discard 2M 64k' -c 'write -P 0x42 5000k 3k' -c 'write -z 7M 3k' \
        -c 'write -P 0x43 16380k 4k' ov.qcow2 >/dev/null || return 1
    qemu-img convert -f qcow2 -O raw ov.qcow2 want.raw || return 1
    cp v0.raw disk.raw
    cat ov.qcow2 | "$Q2F" --apply disk.raw || return 1
    cmp disk.raw want.raw
}
check "a qemu-img overlay applied onto its base" overlay ""
check "an overlay with subclusters applied onto its base" overlay "extended_l2=on"

xapi=$top/../shared/reference/qcow2-to-stdout-xapi.py
xapi_diff() {
    python3 "$xapi" --diff v0.raw v1.raw > xdiff.qcow2 2>/dev/null || return 1
    cp v0.raw disk.raw
    cat xdiff.qcow2 | "$Q2F" --apply disk.raw || return 1
    cmp disk.raw v1.raw
}
if [ -f "$xapi" ] && have python3; then
    check "XAPI's fork's --diff output applied onto its base" xapi_diff
else
    skip "XAPI's fork's --diff output applied onto its base" "no XAPI reference script"
fi

# The README's restore example, as it is written there.
readme_example() {
    mkdir -p readme bin && cd readme || return 1
    ln -sf "$Q2S" ../bin/qcow2-to-stdout
    ln -sf "$Q2F" ../bin/qcow2-from-stdin
    cp ../v0.raw monday.raw; cp ../v1.raw tuesday.raw; cp ../v2.raw wednesday.raw
    sed -n '/^<!-- restore-example -->$/,/^<!-- end restore-example -->$/p' \
        "$top/README.md" | sed '1,2d;$d' | sed '$d' > example.sh
    grep -q 'qcow2-from-stdin --apply' example.sh || { echo "no example found"; cd ..; return 1; }
    PATH="$scratch/bin:$PATH" bash -e example.sh
    local status=$?
    cd ..
    return $status
}
check "the README's restore example runs as written" readme_example

finish
