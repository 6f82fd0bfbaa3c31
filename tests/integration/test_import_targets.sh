#!/usr/bin/env bash
# qcow2-from-stdin's other targets: a loop device and NBD exports
# (qemu-nbd of a raw file, nbdkit's memory plugin), each filled with
# random bytes first, so that every range the image leaves as zeros must
# be zeroed; and a device or export too small, refused before anything is
# written.
. "$(dirname "$0")/lib.sh"
. "$top/tests/integration/nbdkit.sh"

MiB=$((1024 * 1024))
make_image disk.raw $((8 * MiB))
qemu-img convert -f raw -O qcow2 disk.raw c.qcow2
qemu-img create -f qcow2 used.qcow2 $((8 * MiB)) >/dev/null
qemu-io -f qcow2 -c 'write -P 1 1M 300k' -c 'write -P 2 128k 64k' \
    -c 'write -z 1152k 64k' -c 'write -c -P 3 4M 64k' used.qcow2 >/dev/null
"$Q2S" --compress=zstd disk.raw > z.qcow2

# want IMAGE: what QEMU reads from it, in want.raw.
want() { qemu-img convert -f qcow2 -O raw "$1" want.raw; }

reason=""
if [ "$(id -u)" != 0 ]; then
    reason="not running as root, so no loop device can be set up"
elif ! have losetup; then
    reason="no losetup (Debian package mount)"
fi
if [ -z "$reason" ]; then
    head -c $((8 * MiB + 4096)) /dev/urandom > dev.img
    if ! device=$(losetup --find --show dev.img 2>loop.err); then
        reason="cannot set up a loop device: $(head -n 1 loop.err)"
    else
        cleanup_hooks+=("losetup -d '$device'")
    fi
fi
# onto_device IMAGE: written over a device full of random bytes; the
# device's bytes past the disk stay as they were.
onto_device() {
    want "$1" || return 1
    head -c $((8 * MiB + 4096)) /dev/urandom > before.img
    dd if=before.img of="$device" bs=1M oflag=direct status=none || return 1
    cat "$1" | "$Q2F" --flush "$device" || return 1
    cmp -n $((8 * MiB)) "$device" want.raw || { echo "the disk differs"; return 1; }
    cmp -i $((8 * MiB)) "$device" before.img ||
        { echo "the bytes past the disk changed"; return 1; }
}
small_device() {
    local small
    head -c $((4 * MiB)) /dev/urandom > small.img
    cp small.img small-before.img
    small=$(losetup --find --show small.img) || return 1
    fails 1 "holds 4194304 bytes, fewer than the image's 8388608" \
        sh -c "\"$Q2F\" $small < c.qcow2"
    local status=$?
    losetup -d "$small"
    [ $status = 0 ] || return 1
    cmp small.img small-before.img || { echo "the device changed"; return 1; }
}
if [ -z "$reason" ]; then
    for image in c.qcow2 used.qcow2 z.qcow2; do
        check "onto a loop device: $image" onto_device "$image"
    done
    check "a device smaller than the disk is refused, untouched" small_device
else
    skip "onto a loop device" "$reason"
fi

# NBD: qemu-nbd of a raw file of random bytes, and nbdkit's memory
# plugin (which can zero: NBD_CMD_WRITE_ZEROES).
onto_qemu_nbd() {
    want "$1" || return 1
    head -c $((8 * MiB)) /dev/urandom > export.raw
    rm -f qn.sock
    qemu-nbd -f raw -k "$scratch/qn.sock" --persistent export.raw &
    local pid=$! i
    for ((i = 0; i < 100; i++)); do [ -S qn.sock ] && break; sleep 0.05; done
    cat "$1" | "$Q2F" ${flush:+--flush} "nbd+unix:///?socket=$scratch/qn.sock"
    local status=$?
    kill "$pid"; wait "$pid" 2>/dev/null
    [ $status = 0 ] || { echo "status $status"; return 1; }
    cmp export.raw want.raw
}
if have qemu-nbd; then
    for image in c.qcow2 used.qcow2 z.qcow2; do
        flush=
        check "onto a qemu-nbd export: $image" onto_qemu_nbd "$image"
    done
    flush=1
    check "onto a qemu-nbd export, --flush" onto_qemu_nbd used.qcow2
else
    skip "onto a qemu-nbd export" "qemu-nbd is not installed (Debian package qemu-utils)"
fi

onto_nbdkit() {
    want "$1" || return 1
    serve mem memory $((8 * MiB)) || return 1
    # Other bytes in it first.
    qemu-io -f raw -c "write -P 0x55 0 $((8 * MiB))" "$uri" >/dev/null ||
        { stop_server; return 1; }
    cat "$1" | "$Q2F" "$uri" || { stop_server; return 1; }
    "$Q2S" "$uri" > back.qcow2 || { stop_server; return 1; }
    stop_server
    qemu-img compare -f qcow2 -F raw back.qcow2 want.raw >/dev/null
}
small_export() {
    serve small memory $((4 * MiB)) || return 1
    fails 1 "holds 4194304 bytes, fewer than the image's 8388608" \
        sh -c "\"$Q2F\" '$uri' < c.qcow2"
    local status=$?
    stop_server
    return $status
}
readonly_export() {
    serve ro memory $((8 * MiB)) -r || return 1
    fails 1 "the export is read-only" sh -c "\"$Q2F\" '$uri' < c.qcow2"
    local status=$?
    stop_server
    return $status
}
if have nbdkit && have_plugin memory; then
    check "onto an nbdkit memory export: used.qcow2" onto_nbdkit used.qcow2
    check "an export smaller than the disk is refused" small_export
    check "a read-only export is refused" readonly_export
else
    skip "onto an nbdkit export" "nbdkit's memory plugin is not installed"
fi

finish
