#!/usr/bin/env bash
# qcow2-from-stdin: every layout QEMU, this tool and the reference scripts
# write, piped in, must give exactly what qemu-img convert -O raw reads
# from the same image: into a new file, over a file full of other bytes,
# and on standard output.  The images are made here, by qemu-img and
# qemu-io, with data written in random order, zero writes, discards,
# compressed writes, snapshots and resizes.
. "$(dirname "$0")/lib.sh"

MiB=$((1024 * 1024))

# imports NAME IMAGE: the three targets against qemu-img's view.
imports() {
    local name=$1 image=$2
    qemu-img convert -f qcow2 -O raw "$image" want.raw || return 1
    # A new file.
    rm -f got.raw
    cat "$image" | "$Q2F" --flush got.raw || { echo "new file: status $?"; return 1; }
    cmp want.raw got.raw || { echo "new file differs"; return 1; }
    # A file that held other bytes, longer than the disk.
    head -c $(($(stat -c %s want.raw) + 12345)) /dev/urandom > got.raw
    cat "$image" | "$Q2F" got.raw || { echo "old file: status $?"; return 1; }
    cmp want.raw got.raw || { echo "old file differs"; return 1; }
    # Standard output, through a pipe.
    cat "$image" | "$Q2F" | cmp - want.raw || { echo "stdout differs"; return 1; }
}

# A raw disk with data in many places, some of it zeros.
make_image disk.raw $((24 * MiB + 512))
qemu-img convert -f raw -O raw disk.raw disk24.raw
truncate -s $((24 * MiB)) disk24.raw

check "qemu-img convert, 64 KiB clusters" \
    sh -c 'qemu-img convert -f raw -O qcow2 disk24.raw c.qcow2 && exit 0'
check "imports qemu-img convert" imports convert c.qcow2
for cs in 512 4096 2M; do
    qemu-img convert -f raw -O qcow2 -o cluster_size=$cs disk24.raw c$cs.qcow2
    check "imports qemu-img convert, cluster size $cs" imports cs c$cs.qcow2
done
qemu-img convert -f raw -O qcow2 -o compat=0.10 disk24.raw v2.qcow2
check "imports qcow2 version 2" imports v2 v2.qcow2
for bits in 1 64; do
    qemu-img convert -f raw -O qcow2 -o refcount_bits=$bits disk24.raw r$bits.qcow2
    check "imports refcount_bits=$bits" imports r$bits r$bits.qcow2
done
qemu-img convert -f raw -O qcow2 -c disk24.raw z.qcow2
check "imports qemu-img convert -c (zlib)" imports zlib z.qcow2
qemu-img convert -f raw -O qcow2 -c -o compression_type=zstd disk24.raw zs.qcow2
check "imports qemu-img convert -c (zstd)" imports zstd zs.qcow2
qemu-img convert -f raw -O qcow2 -c -o cluster_size=4096 disk24.raw z4k.qcow2
check "imports compressed 4 KiB clusters" imports z4k z4k.qcow2
qemu-img convert -f raw -O qcow2 -o preallocation=metadata disk24.raw pm.qcow2
check "imports preallocation=metadata" imports prealloc pm.qcow2

# Images a VM has used: writes in random order, zero writes, discards,
# compressed writes, partial clusters.
used_image() {
    local file=$1; shift
    qemu-img create -f qcow2 "$@" "$file" $((32 * MiB)) >/dev/null
    local ops=() i off len
    RANDOM=7
    for i in $(seq 60); do
        off=$(( (RANDOM * 977) % (32 * MiB - 300000) ))
        len=$(( (RANDOM % 200) * 1024 + 512 ))
        case $((RANDOM % 6)) in
            0) ops+=(-c "write -z $off $len") ;;
            1) ops+=(-c "discard $((off / 65536 * 65536)) 131072") ;;
            *) ops+=(-c "write -P $((RANDOM % 255 + 1)) $off $len") ;;
        esac
    done
    qemu-io -f qcow2 "${ops[@]}" "$file" >/dev/null
}
used_image used.qcow2
check "imports a used image" imports used used.qcow2
used_image used2.qcow2 -o compat=0.10
check "imports a used version 2 image" imports used2 used2.qcow2
used_image sub.qcow2 -o extended_l2=on,cluster_size=64K
check "imports subclusters (extended L2 entries)" imports sub sub.qcow2
used_image sub2m.qcow2 -o extended_l2=on,cluster_size=2M
check "imports subclusters of 2 MiB clusters" imports sub2m sub2m.qcow2
used_image used512.qcow2 -o cluster_size=512
check "imports a used image of 512-byte clusters" imports used512 used512.qcow2
# Compressed writes among the others (whole clusters, as qemu-io needs).
qemu-img create -f qcow2 -o compression_type=zstd mixed.qcow2 $((8 * MiB)) >/dev/null
qemu-io -f qcow2 -c 'write -c -P 3 1M 192k' -c 'write -P 4 64k 64k' \
    -c 'write -c -P 5 4M 64k' -c 'write -z 1088k 64k' -c 'write -c -P 6 0 64k' \
    mixed.qcow2 >/dev/null
check "imports compressed writes in random order" imports mixed mixed.qcow2

# A resize after the data: the L1 table moves past it, so every table
# arrives after the data it maps.
qemu-img create -f qcow2 grown.qcow2 $((4 * MiB)) >/dev/null
qemu-io -f qcow2 -c 'write -P 7 0 3M' -c 'write -P 8 3584k 512k' grown.qcow2 >/dev/null
qemu-img resize grown.qcow2 $((1024 * MiB)) >/dev/null
qemu-io -f qcow2 -c 'write -P 9 900M 1M' grown.qcow2 >/dev/null
l1_after_data() {
    local l1
    l1=$(od -An -tx1 -j40 -N8 grown.qcow2 | tr -d ' \n')
    [ $((16#$l1)) -gt $((3 * MiB)) ] || { echo "L1 table at $((16#$l1))"; return 1; }
}
check "the L1 table moved after the data" l1_after_data
grown_import() {
    qemu-img convert -f qcow2 -O raw grown.qcow2 want.raw || return 1
    rm -f got.raw
    cat grown.qcow2 | "$Q2F" --spool-memory=64K got.raw || return 1
    cmp want.raw got.raw
}
check "imports an image whose tables come after its data (spooled to a file)" grown_import

# Internal snapshots: the active L1 table and its tables, not the
# snapshot's.
qemu-img create -f qcow2 snap.qcow2 $((8 * MiB)) >/dev/null
qemu-io -f qcow2 -c 'write -P 1 0 2M' snap.qcow2 >/dev/null
qemu-img snapshot -c one snap.qcow2
qemu-io -f qcow2 -c 'write -P 2 1M 2M' -c 'write -z 0 64k' snap.qcow2 >/dev/null
check "imports the active state of an image with a snapshot" imports snap snap.qcow2

# This tool's layouts, and the reference scripts'.
"$Q2S" disk24.raw > ours.qcow2
check "imports qcow2-to-stdout's image" imports ours ours.qcow2
"$Q2S" --compress=zstd disk24.raw > ours-zstd.qcow2
check "imports qcow2-to-stdout --compress=zstd" imports ours-zstd ours-zstd.qcow2
"$Q2S" --compress=zlib -c 4096 disk24.raw > ours-zlib.qcow2
check "imports qcow2-to-stdout --compress=zlib -c 4096" imports ours-zlib ours-zlib.qcow2
if [ -f "$REFERENCE" ] && have python3; then
    python3 "$REFERENCE" disk24.raw > ref.qcow2
    check "imports the reference script's image" imports ref ref.qcow2
else
    skip "imports the reference script's image" "no reference script"
fi
xapi=$top/../shared/reference/qcow2-to-stdout-xapi.py
if [ -f "$xapi" ] && have python3; then
    python3 "$xapi" disk24.raw > xapi.qcow2 2>/dev/null
    check "imports XAPI's fork's image" imports xapi xapi.qcow2
else
    skip "imports XAPI's fork's image" "no XAPI reference script"
fi

# An empty disk, and a disk of one partial cluster.
qemu-img create -f qcow2 empty.qcow2 0 >/dev/null
check "imports a disk of 0 bytes" imports empty empty.qcow2
qemu-img create -f qcow2 tiny.qcow2 1536 >/dev/null
qemu-io -f qcow2 -c 'write -P 5 512 1024' tiny.qcow2 >/dev/null
check "imports a disk of 1536 bytes" imports tiny tiny.qcow2

# A sparse target: holes where the image has none.
sparse_target() {
    rm -f got.raw
    cat c.qcow2 | "$Q2F" got.raw || return 1
    local used
    used=$(du -k got.raw | cut -f1)
    [ "$used" -lt 8000 ] || { echo "got.raw takes $used KiB"; return 1; }
}
check "a file target is sparse" sparse_target

# Memory: nothing kept for metadata-first and qemu-img convert layouts,
# whatever the disk's size: a 1 TiB disk with data in every L2 table's
# range of its first 64 GiB.
rss_bound() {
    local layout=$1 kib
    truncate -s 1T big.raw
    local i
    for i in $(seq 0 127); do
        printf 'data %d' "$i" | write_at big.raw $((i * 512 * MiB + 4096))
    done
    head -c $((8 * MiB)) /dev/urandom | write_at big.raw $((100 * MiB))
    if [ "$layout" = ours ]; then
        "$Q2S" big.raw > big.qcow2 || return 1
    else
        qemu-img convert -f raw -O qcow2 big.raw big.qcow2 || return 1
    fi
    rm -f big-out.raw
    kib=$(cat big.qcow2 | /usr/bin/time -f %M "$Q2F" big-out.raw 2>&1 >/dev/null | tail -n 1)
    cmp -n $((200 * MiB)) big.raw big-out.raw || return 1
    rm -f big.raw big-out.raw big.qcow2
    [ "$kib" -lt $((64 * 1024)) ] || { echo "RSS $kib KiB"; return 1; }
}
if [ -x /usr/bin/time ] && [ -z "${Q2S_VALGRIND_IMPORTER:-}" ]; then
    check "RSS under 64 MiB for a 1 TiB disk, this tool's layout" rss_bound ours
    check "RSS under 64 MiB for a 1 TiB disk, qemu-img convert's layout" rss_bound convert
else
    skip "RSS bounds" "no /usr/bin/time (Debian package time), or under valgrind"
fi

finish
