# -d and -R: the input becomes the image's external data file.
. "$(dirname "$0")/lib.sh"

if ! have qemu-img; then
    skip "external data files checked by qemu-img" "qemu-img is not installed (Debian package qemu-utils)"
    finish; exit 0
fi

make_image disk.raw $((3 * 1024 * 1024 + 1000))
for flag in -d -R; do
    for cluster_size in 1024 4096 65536 2097152; do
        for bits in 1 16 64; do
            if "$Q2S" $flag -c "$cluster_size" -r "$bits" disk.raw > meta.qcow2; then
                check "$flag -c $cluster_size -r $bits: valid, same content" valid_image meta.qcow2 disk.raw
            else
                not_ok "$flag -c $cluster_size -r $bits: conversion failed"
            fi
        done
    done
done

"$Q2S" -d disk.raw > meta.qcow2
check "-d records the data file name" \
    bash -c 'qemu-img info meta.qcow2 | grep -q "data file: disk.raw"'
check "-d stream holds metadata only" test "$(stat -c %s meta.qcow2)" -lt 1000000
"$Q2S" -R disk.raw > raw.qcow2
check "-R sets data-file-raw" \
    bash -c 'qemu-img info raw.qcow2 | grep -q "data file raw: true"'
# With data_file_raw, writes through the image land in the data file.
if have qemu-io; then
    cp disk.raw data.raw && "$Q2S" -R data.raw > rw.qcow2
    qemu-io -f qcow2 -c 'write -P 0x5a 4096 512' rw.qcow2 >/dev/null
    check "-R: a write through the image reaches the data file" \
        bash -c 'cmp -s <(head -c 512 /dev/zero | tr "\0" Z) <(dd if=data.raw bs=512 skip=8 count=1 status=none)'
fi
finish
