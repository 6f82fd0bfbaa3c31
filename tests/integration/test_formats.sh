# Images in the formats QEMU reads, through qemu-nbd: the same bytes as
# converting the same content from a raw file, and valid for QEMU.
. "$(dirname "$0")/lib.sh"

if ! have qemu-img || ! have qemu-nbd; then
    skip "formats through qemu-nbd" "qemu-img or qemu-nbd is not installed (Debian package qemu-utils)"
    finish; exit 0
fi

# Not a multiple of the cluster size; several extents, allocated zeros.
make_image disk.raw $((6 * 1024 * 1024 + 4096))
"$Q2S" disk.raw > want.qcow2
"$Q2S" -c 4096 disk.raw > want-4k.qcow2

# same_as_raw FORMAT FILE: converting FILE as FORMAT gives want.qcow2, and
# with 4 KiB clusters want-4k.qcow2.
same_as_raw() {
    "$Q2S" -f "$1" "$2" > got.qcow2 || return 1
    cmp got.qcow2 want.qcow2 || return 1
    "$Q2S" -c 4096 -f "$1" "$2" > got.qcow2 || return 1
    cmp got.qcow2 want-4k.qcow2
}

# variant NAME FORMAT [qemu-img convert options...]
variant() {
    local name=$1 format=$2; shift 2
    if qemu-img convert -f raw -O "$format" "$@" disk.raw "$name.img" 2> convert.err; then
        check "$name: same bytes as the raw image" same_as_raw "$format" "$name.img"
    else
        skip "$name" "qemu-img cannot write it here: $(head -n 1 convert.err)"
    fi
    rm -f "$name.img"
}

variant qcow2 qcow2
variant "qcow2 with zlib-compressed clusters" qcow2 -c
variant "qcow2 with zstd-compressed clusters" qcow2 -c -o compression_type=zstd
variant "qcow2 with extended L2 entries" qcow2 -o extended_l2=on,cluster_size=128k
variant "qcow2 with 512-byte clusters" qcow2 -o cluster_size=512
variant "qcow2 version 2" qcow2 -o compat=0.10
variant "vmdk monolithicSparse" vmdk -o subformat=monolithicSparse
variant "vmdk streamOptimized" vmdk -o subformat=streamOptimized
variant "vpc dynamic" vpc -o subformat=dynamic,force_size=on
variant "vpc fixed" vpc -o subformat=fixed,force_size=on
variant vhdx vhdx
variant vdi vdi
variant qed qed
variant "qcow (version 1)" qcow
variant parallels parallels
# Its data in another file: the map names that file, which is read
# through qemu-nbd, not at those offsets in the image itself.
variant "qcow2 with an external data file" qcow2 -o data_file=external.data
rm -f external.data

# A backing chain: the guest sees the base under the overlay's writes.
qemu-img convert -f raw -O qcow2 disk.raw base.qcow2
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 overlay.qcow2
qemu-io -f qcow2 -c 'write -P 0x77 1M 64k' overlay.qcow2 > /dev/null
cp disk.raw chain.raw
head -c 65536 /dev/zero | tr '\0' '\167' | write_at chain.raw 1048576
"$Q2S" chain.raw > chain-want.qcow2
"$Q2S" -f qcow2 overlay.qcow2 > chain-got.qcow2
check "qcow2 backing chain: same bytes as the raw image" cmp chain-got.qcow2 chain-want.qcow2
check "qcow2 backing chain: valid, same content" valid_image chain-got.qcow2 chain.raw

# --measure, ranges and progress through qemu-nbd.
qemu-img convert -f raw -O vmdk disk.raw disk.vmdk
check "--measure through qemu-nbd" \
    test "$("$Q2S" -f vmdk --measure disk.vmdk)" = "$(stat -c %s want.qcow2)"
size=$(stat -c %s want.qcow2)
ranges_through_nbd() {
    { "$Q2S" -f vmdk --length=100000 disk.vmdk &&
        "$Q2S" -f vmdk --offset=100000 disk.vmdk; } > joined.qcow2 &&
        cmp joined.qcow2 want.qcow2
}
check "ranges through qemu-nbd" ranges_through_nbd

# Errors, each one line.
check "a file not in the format given" fails 1 "not in qcow2 format" "$Q2S" -f qcow2 disk.raw
check "an unknown format" fails 1 "Unknown driver 'nosuchformat'" "$Q2S" -f nosuchformat disk.raw
check "a missing file" fails 1 "missing.vmdk: No such file or directory" "$Q2S" -f vmdk missing.vmdk
check "-d with a non-raw format: a usage error" fails 2 "must be a raw file that the image can name" "$Q2S" -d -f vmdk disk.vmdk
no_qemu_nbd() {
    mkdir -p emptybin
    fails 1 "qemu-nbd, which is not installed (Debian package qemu-utils)" env PATH="$PWD/emptybin" "$Q2S" -f vmdk disk.vmdk
}
check "no qemu-nbd: says which package" no_qemu_nbd

# Interrupted mid-stream: the tool and its qemu-nbd go, and nothing else
# stays behind.  The reader takes the first bytes (so the tool is past its
# start-up and writing), then stops reading, so the tool blocks.  The
# socket that qemu-nbd listens on has no name left by then: its directory
# in $TMPDIR is gone before qemu-nbd starts.
mkdir tool-tmp
interrupted() {
    local tool status
    rm -f fifo.out && mkfifo fifo.out
    TMPDIR=$PWD/tool-tmp in_background "$Q2S" -f vmdk disk.vmdk > fifo.out 2> int.err &
    tool=$!
    exec 7< fifo.out
    head -c 1 <&7 > /dev/null
    # (Under valgrind, its own vgdb FIFOs live there while it runs.)
    ls -A tool-tmp | grep -v '^vgdb-' > tmp-while-running.txt
    sigint_status "$tool" 2>&1
    status=$?
    exec 7<&-
    [ "$status" = 130 ] || { echo "status $status"; cat int.err; return 1; }
}
check "SIGINT mid-stream: the tool dies of it" interrupted
sleep 0.2
check "no qemu-nbd is left behind" test "$(qemu_nbd_count)" = 0
check "nothing in \$TMPDIR while qemu-nbd serves" test ! -s tmp-while-running.txt
check "nothing in \$TMPDIR afterwards" test -z "$(ls -A tool-tmp)"
finish
