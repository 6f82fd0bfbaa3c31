# Every cluster size and refcount width: the image is valid for QEMU and
# holds the input's bytes.
. "$(dirname "$0")/lib.sh"

if ! have qemu-img; then
    skip "conversions checked by qemu-img" "qemu-img is not installed (Debian package qemu-utils)"
    finish; exit 0
fi

# Not a multiple of 512: the last sector is padded.
make_image disk.raw $((5 * 1024 * 1024 + 1234))
for cluster_size in 512 1024 2048 4096 8192 16384 32768 65536 131072 262144 524288 1048576 2097152; do
    for bits in 1 2 4 8 16 32 64; do
        if "$Q2S" -c "$cluster_size" -r "$bits" disk.raw > out.qcow2; then
            check "-c $cluster_size -r $bits: valid, same content" valid_image out.qcow2 disk.raw
        else
            not_ok "-c $cluster_size -r $bits: conversion failed"
        fi
    done
done

# Sizes around the edges.
for size in 0 1 511 512 513 65535 65536 65537; do
    rm -f edge.raw; truncate -s "$size" edge.raw
    [ "$size" -gt 0 ] && printf '\x01' | write_at edge.raw $((size - 1))
    if "$Q2S" edge.raw > edge.qcow2; then
        check "size $size: valid, same content" valid_image edge.qcow2 edge.raw
    else
        not_ok "size $size: conversion failed"
    fi
done

# A fully allocated image of zeros allocates no data cluster and no L2
# table (header, refcount table and block, L1: 4 clusters); one full of
# data allocates all of them.
head -c 1048576 /dev/zero > zeros.raw
"$Q2S" zeros.raw > zeros.qcow2
check "allocated zeros: valid" valid_image zeros.qcow2 zeros.raw
check "allocated zeros: no data cluster" \
    test "$(stat -c %s zeros.qcow2)" = $((4 * 65536))
head -c 1048576 /dev/urandom > full.raw
"$Q2S" -c 4096 full.raw > full.qcow2
check "fully allocated: valid" valid_image full.qcow2 full.raw

# Output into a regular file (copy_file_range), a pipe (splice), a file
# opened for appending (plain writes): the same bytes.
"$Q2S" disk.raw > file.qcow2
"$Q2S" disk.raw | cat > pipe.qcow2
: > append.qcow2; "$Q2S" disk.raw >> append.qcow2
check "regular file and pipe outputs are identical" cmp file.qcow2 pipe.qcow2
check "appending output is identical" cmp file.qcow2 append.qcow2
to_dev_null() { "$Q2S" disk.raw > /dev/null; }
check "output to /dev/null succeeds" to_dev_null
finish
