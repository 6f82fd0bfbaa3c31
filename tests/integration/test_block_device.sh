# Block devices: size from the device, contents scanned (no holes known).
. "$(dirname "$0")/lib.sh"

reason=""
if [ "$(id -u)" != 0 ]; then
    reason="not running as root, so no loop device can be set up"
elif ! have losetup; then
    reason="no losetup (Debian package mount)"
elif ! have qemu-img; then
    reason="qemu-img is not installed (Debian package qemu-utils)"
fi
if [ -z "$reason" ]; then
    make_image disk.raw $((4 * 1024 * 1024))
    if ! device=$(losetup --find --show --read-only disk.raw 2>loop.err); then
        reason="cannot set up a loop device: $(head -n 1 loop.err)"
    fi
fi
if [ -n "$reason" ]; then
    skip "block device input" "$reason"
    finish; exit 0
fi
cleanup_hooks+=("losetup -d '$device'")

for cluster_size in 512 65536; do
    "$Q2S" -c "$cluster_size" "$device" > dev.qcow2
    check "block device, -c $cluster_size: valid, same content" valid_image dev.qcow2 disk.raw
    "$Q2S" -c "$cluster_size" disk.raw > file.qcow2
    check "block device, -c $cluster_size: same bytes as its file" cmp dev.qcow2 file.qcow2
done
check "block device --measure" test "$("$Q2S" --measure "$device")" = "$("$Q2S" --measure disk.raw)"
"$Q2S" -d "$device" > meta.qcow2
check "block device as external data file" \
    bash -c "qemu-img info meta.qcow2 | grep -q 'data file: $device'"
finish
