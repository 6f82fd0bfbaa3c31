#!/usr/bin/env bash
# qcow2-from-stdin against streams it must refuse: not qcow2 at all,
# truncated at every structural boundary, header fields and table entries
# flipped, compressed clusters that inflate to the wrong size, overlays
# without --apply, targets that cannot be written, signals in the middle,
# bad options.  Each refusal is exit status 1 and one line that names the
# problem, within a time bound, with nothing left in $TMPDIR and, when the
# stream can be judged before anything is written, the target as it was.
# What QEMU reads the same way (entries that share bytes known ahead, a
# compressed cluster's last sector cut short at the end of the file) must
# give what qemu-img convert gives.  Every image is made here, small and
# sparse, and edited here (python3 for compressed data).
. "$(dirname "$0")/lib.sh"

MiB=$((1024 * 1024))

# The importer's temporary files go to a directory of this test's, which
# must be empty after every run.
export TMPDIR=$scratch/tmp
mkdir "$TMPDIR"
no_temporary_files() {
    [ -z "$(ls -A "$TMPDIR")" ] ||
        { echo "left in \$TMPDIR:"; ls -la "$TMPDIR"; return 1; }
}

# Reading and editing an image's structures (offsets and values in bash
# arithmetic: 64-bit, two's complement, which keeps the bits).
OFFSET_MASK=0x00fffffffffffe00
# be FILE OFFSET BYTES: the big-endian field.
be() {
    local hex
    hex=$(od -An -tx1 -j"$2" -N"$3" "$1" | tr -d ' \n')
    echo $((16#${hex:-0}))
}
# poke FILE OFFSET BYTES VALUE: writes VALUE (an arithmetic expression)
# there, big-endian.
poke() {
    local i bytes= value=$(($4))
    for ((i = $3 - 1; i >= 0; i--)); do
        bytes+=$(printf '\\x%02x' $(((value >> (8 * i)) & 0xff)))
    done
    printf "$bytes" | write_at "$1" "$2"
}
cluster_bits() { be "$1" 20 4; }
l1_of() { be "$1" 40 8; }
# l2_of IMAGE I: the L2 table of L1 entry I.
l2_of() { echo $(($(be "$1" $(($(l1_of "$1") + 8 * $2)) 8) & OFFSET_MASK)); }
# entry_of IMAGE C: where the L2 entry of guest cluster C is.
entry_of() {
    local per=$(((1 << $(cluster_bits "$1")) / 8))
    echo $(($(l2_of "$1" $(($2 / per))) + 8 * ($2 % per)))
}
# host_of IMAGE C: the host offset of guest cluster C, compressed or not.
host_of() {
    local e bits=$((62 - ($(cluster_bits "$1") - 8)))
    e=$(be "$1" "$(entry_of "$1" "$2")" 8)
    if (((e >> 62) & 1)); then
        echo $((e & ((1 << bits) - 1)))
    else
        echo $((e & OFFSET_MASK))
    fi
}
# compressed_bytes_of IMAGE C: the bytes compressed cluster C's entry
# covers (its sectors, from its host offset on).
compressed_bytes_of() {
    local e cb
    cb=$(cluster_bits "$1")
    e=$(be "$1" "$(entry_of "$1" "$2")" 8)
    echo $(((((e >> (62 - (cb - 8))) & ((1 << (cb - 8)) - 1)) + 1) * 512 -
            ($(host_of "$1" "$2") & 511)))
}
# edited COPY IMAGE OFFSET BYTES VALUE: COPY is IMAGE with one field
# changed.
edited() {
    cp "$2" "$1" && poke "$1" "$3" "$4" "$5"
}

# z.py COMMAND IMAGE CLUSTER ARGS...: compressed clusters, on the L2 entry
# of guest cluster CLUSTER (an image of one L2 table).
#   inflated-end       where its raw deflate stream ends
#   sectors N          gives it N sectors
#   append LENGTH zlib|zstd
#                      appends, sector-aligned, LENGTH bytes compressed, and
#                      points the entry at them
cat > z.py <<'EOF'
import sys, zlib

cmd, path, c = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(path, 'rb') as f:
    b = f.read()
be = lambda off: int.from_bytes(b[off:off + 8], 'big')
cb = b[23]
shift = 62 - (cb - 8)
entry = (be(be(40) & 0x00fffffffffffe00) & 0x00fffffffffffe00) + 8 * c
e = be(entry)


def put(off, data):
    with open(path, 'r+b') as f:
        f.seek(off)
        f.write(data)


if cmd == 'inflated-end':
    start = e & ((1 << shift) - 1)
    d = zlib.decompressobj(-12)
    d.decompress(b[start:])
    assert d.eof, 'the deflate stream does not end'
    print(len(b) - len(d.unused_data))
elif cmd == 'sectors':
    mask = (1 << (cb - 8)) - 1
    e = (e & ~(mask << shift)) | ((int(sys.argv[4]) - 1) << shift)
    put(entry, e.to_bytes(8, 'big'))
elif cmd == 'append':
    length, kind = int(sys.argv[4]), sys.argv[5]
    payload = bytes((i * 7 + i // 300) & 0xff for i in range(length))
    if kind == 'zstd':
        import subprocess
        data = subprocess.run(['zstd', '-q', '-c', '-'], input=payload,
                              stdout=subprocess.PIPE, check=True).stdout
    else:
        z = zlib.compressobj(6, zlib.DEFLATED, -12)
        data = z.compress(payload) + z.flush()
    off = (len(b) + 511) & ~511
    put(off, data)
    with open(path, 'r+b') as f:
        f.truncate((off + len(data) + 511) & ~511)
    sectors = (off + len(data) - 1) // 512 - off // 512
    put(entry, (1 << 62 | sectors << shift | off).to_bytes(8, 'big'))
else:
    sys.exit('unknown command ' + cmd)
EOF
z() { python3 -S "$scratch/z.py" "$@"; }

# refuses PATTERN IMAGE [OPTION...]: IMAGE, piped in, is refused once the
# stream is read: status 1, one line matching PATTERN, nothing in $TMPDIR.
refuses() {
    local pattern=$1 image=$2; shift 2
    fails 1 "$pattern" "$Q2F" "$@" got.raw < <(cat "$image") || return 1
    no_temporary_files
}

# refuses_untouched PATTERN IMAGE [OPTION...]: the same, refused before
# anything is written: target.raw, a file of other bytes, stays as it was.
refuses_untouched() {
    local pattern=$1 image=$2; shift 2
    head -c 100000 /dev/urandom > target.raw
    cp target.raw target.orig
    fails 1 "$pattern" "$Q2F" "$@" target.raw < <(cat "$image") || return 1
    cmp -s target.raw target.orig || { echo "target.raw changed"; return 1; }
    no_temporary_files
}

# keeps STATUS PATTERN COMMAND...: fails (lib.sh), COMMAND naming
# target.raw, which keeps its bytes; nothing in $TMPDIR.
keeps() {
    head -c 100000 /dev/urandom > target.raw
    cp target.raw target.orig
    fails "$@" || return 1
    cmp -s target.raw target.orig || { echo "target.raw changed"; return 1; }
    no_temporary_files
}

# like_qemu IMAGE [OPTION...]: IMAGE, piped in, gives what qemu-img
# convert -O raw reads from it, into a file and (for a disk up to 64 MiB)
# on standard output.
like_qemu() {
    local image=$1; shift
    qemu-img convert -f qcow2 -O raw "$image" want.raw || return 1
    rm -f got.raw
    timeout 20 "$Q2F" "$@" got.raw < <(cat "$image") ||
        { echo "file: status $?"; return 1; }
    cmp want.raw got.raw || { echo "file differs from qemu-img convert"; return 1; }
    if [ "$(stat -c %s want.raw)" -le $((64 * MiB)) ]; then
        timeout 20 "$Q2F" "$@" < <(cat "$image") > got.raw ||
            { echo "stdout: status $?"; return 1; }
        cmp want.raw got.raw || { echo "stdout differs from qemu-img convert"; return 1; }
    fi
    no_temporary_files
}

# qemu_fails IMAGE: qemu-img convert cannot read IMAGE either.
qemu_fails() {
    if qemu-img convert -f qcow2 -O raw "$1" qemu.raw 2>/dev/null; then
        echo "qemu-img convert reads $1"; return 1
    fi
}

# ---- Not qcow2 ------------------------------------------------------

head -c 65536 /dev/urandom > random.bin
check "random bytes are refused" refuses_untouched "not a qcow2 image" random.bin
check "an empty stdin is refused" refuses_untouched "the stream is empty" /dev/null
qemu-img create -f qcow q1.qcow 1M >/dev/null
check "a qcow (version 1) image is refused" \
    refuses_untouched "not a qcow2 image of version 2 or 3 (version 1)" q1.qcow
make_image disk.raw $((4 * MiB))
check "a raw image is refused" refuses_untouched "not a qcow2 image" disk.raw
printf 'QFI\373' > magic.bin
check "the magic alone is refused" refuses_untouched "ends at byte 4\|truncated" magic.bin

# ---- Truncated streams ----------------------------------------------

qemu-img convert -f raw -O qcow2 disk.raw c.qcow2
"$Q2S" disk.raw > o.qcow2
check "qemu-img convert's image imports" like_qemu c.qcow2
check "qcow2-to-stdout's image imports" like_qemu o.qcow2

# truncated NAME IMAGE: the stream cut at each boundary of IMAGE's
# structures (found from its header and tables) is refused.
truncated() {
    local name=$1 image=$2 cs l1 l2 data size n
    cs=$((1 << $(cluster_bits "$image")))
    l1=$(l1_of "$image")
    l2=$(l2_of "$image" 0)
    data=$(host_of "$image" 0)    # make_image: data in cluster 0
    size=$(stat -c %s "$image")
    # Inside the header (its fields, the version 3 fields, the extensions):
    # refused before the target is touched, and the message says the
    # stream ends there.
    for n in 20 48 71 100 200; do
        check "$name cut at byte $n (inside the header) is refused as truncated" \
            refuses_untouched "ends at byte $n\|truncated" <(head -c $n "$image")
    done
    check "$name cut right after the header cluster ($cs) is refused" \
        refuses "the image ends at byte $cs, before the L1 table at byte $l1" \
        <(head -c "$cs" "$image")
    n=$((l1 + 4))
    check "$name cut inside the L1 table ($n) is refused" \
        refuses "the image ends at byte $n, inside the L1 table at byte $l1" \
        <(head -c $n "$image")
    n=$((l2 + 100))
    check "$name cut inside an L2 table ($n) is refused" \
        refuses "the image ends at byte $n, inside the L2 table at byte $l2" \
        <(head -c $n "$image")
    n=$((data + 100))
    check "$name cut inside a data cluster ($n) is refused" \
        refuses "the image ends at byte $n, inside the data at byte $data (guest offset 0)" \
        <(head -c $n "$image")
    n=$((size - 1))
    check "$name cut one byte before its end ($n) is refused" \
        refuses "the image ends at byte $n, inside the data at byte" \
        <(head -c $n "$image")
}
truncated "qemu-img convert's image" c.qcow2
truncated "qcow2-to-stdout's image" o.qcow2

# Compressed clusters: one cluster of text (compressible, not trivially:
# about 50 KiB of deflate), the last in guest and host order.
truncate -s 1M comp.raw
for c in 3 15; do
    head -c 50000 /dev/urandom | base64 -w0 | head -c 65536 |
        write_at comp.raw $((c * 65536))
done
qemu-img convert -f raw -O qcow2 -c comp.raw z.qcow2
qemu-img convert -O raw -f raw comp.raw comp-want.raw
zstart=$(host_of z.qcow2 15)
zend=$(z inflated-end z.qcow2 15)
zsize=$(stat -c %s z.qcow2)
check "qemu-img convert -c's image imports" like_qemu z.qcow2
# Cut in the last sector, past the end of the deflate stream: QEMU reads
# zeros past the end of the file, and so does the importer.
cut_after_data() {
    head -c "$zend" z.qcow2 > zcut.qcow2
    [ $((zend % 512)) != 0 ] || { echo "the stream ends on a sector"; return 1; }
    like_qemu zcut.qcow2 && cmp want.raw comp-want.raw
}
check "compressed image cut in its last sector, after the compressed data, imports as QEMU reads it" \
    cut_after_data
head -c $((zsize - 1)) z.qcow2 > zcut1.qcow2
check "compressed image cut one byte before its end (padding) imports as QEMU reads it" \
    like_qemu zcut1.qcow2
# (A cut at the deflate stream's last byte may leave every byte of the
# cluster inflated: then the disk is whole, as QEMU reads it too.)
for n in $((zstart + 100)) $((zstart + 20000)) $((zend - 1000)); do
    check "compressed image cut inside the compressed data of its last cluster ($n) is refused" \
        refuses "ends at byte $n" <(head -c $n z.qcow2)
done
if have zstd; then
    qemu-img convert -f raw -O qcow2 -c -o compression_type=zstd comp.raw zs.qcow2
    check "qemu-img convert -c (zstd)'s image imports" like_qemu zs.qcow2
    n=$(($(host_of zs.qcow2 15) + $(compressed_bytes_of zs.qcow2 15) / 2))
    check "zstd image cut inside the compressed data of its last cluster ($n) is refused" \
        refuses "ends at byte $n" <(head -c $n zs.qcow2)
else
    skip "zstd compressed cluster cut short" "no zstd"
fi
"$Q2S" --compress disk.raw > oz.qcow2
n=$(($(host_of oz.qcow2 1) + $(compressed_bytes_of oz.qcow2 1) / 2))
check "qcow2-to-stdout --compress's image cut inside a compressed cluster is refused" \
    refuses "ends at byte $n" <(head -c $n oz.qcow2)

# ---- Header fields --------------------------------------------------

header_refused() {
    local name=$1 pattern=$2; shift 2
    edited h.qcow2 c.qcow2 "$@"
    check "$name: refused, target untouched" refuses_untouched "$pattern" h.qcow2
}
header_refused "version 1" "version 1" 4 4 1
header_refused "version 4" "version 4" 4 4 4
header_refused "cluster_bits 8" "cluster_bits 8" 20 4 8
header_refused "cluster_bits 22" "cluster_bits 22" 20 4 22
header_refused "crypt_method 1 (AES)" "encrypted" 32 4 1
header_refused "crypt_method 2 (LUKS)" "encrypted" 32 4 2
header_refused "crypt_method 3 (unknown)" "encryption method 3" 32 4 3
header_refused "the external data file bit" "external data file" 72 8 4
header_refused "unknown incompatible bit 5" "unknown incompatible features 0x20" 72 8 32
header_refused "an unaligned L1 table offset" "L1 table offset .* invalid" \
    40 8 "$(($(l1_of c.qcow2) + 8))"
header_refused "an L1 table offset past 2^63" "L1 table .* ends past" \
    40 8 "(1 << 63) - 65536"
header_refused "an L1 size too small for the virtual size" \
    "L1 table (0 entries) is too small" 36 4 0
edited h2.qcow2 c.qcow2 24 8 "(1 << 40)"
check "a virtual size of 2^40 with one L1 entry: refused" \
    refuses_untouched "too small for the virtual size" h2.qcow2
header_refused "a virtual size of 2^62 with a small L1" "more than QEMU opens" \
    24 8 "(1 << 62)"
header_refused "a header_length past the cluster" "header_length" 100 4 131072
header_refused "a backing file name past the first cluster" \
    "backing file name offset" 8 8 70000
"$Q2S" -d disk.raw > data-file.qcow2 2>/dev/null
check "qcow2-to-stdout -d's image (external data file): refused" \
    refuses_untouched "external data file" data-file.qcow2
edited h3.qcow2 c.qcow2 40 8 "(1 << 30)"
check "an L1 table past the end of the stream: refused" \
    refuses "before the L1 table at byte 1073741824: a truncated stream, or a reference past its end" h3.qcow2

# ---- Table entries --------------------------------------------------

l1=$(l1_of c.qcow2)
l2=$(l2_of c.qcow2 0)
e1=$(entry_of c.qcow2 1)
e2=$(entry_of c.qcow2 2)
edited t.qcow2 c.qcow2 "$l1" 8 "(1 << 63) | ($l2 + 512)"
check "an unaligned L1 entry is refused" refuses "L1 entry .* not cluster-aligned" t.qcow2
edited t.qcow2 c.qcow2 "$e1" 8 "(1 << 63) | ($(host_of c.qcow2 1) + 512)"
check "an unaligned L2 entry is refused" refuses "L2 entry .* not cluster-aligned" t.qcow2
edited t.qcow2 c.qcow2 "$e1" 8 "(1 << 63) | (1 << 30)"
check "an L2 entry past the end of the stream is refused" \
    refuses "truncated stream, or a reference past its end" t.qcow2
edited t.qcow2 c.qcow2 "$l1" 8 "(1 << 63) | (1 << 30)"
check "an L1 entry past the end of the stream is refused" \
    refuses "the L2 table at byte 1073741824.*truncated stream, or a reference past its end" t.qcow2
edited t.qcow2 c.qcow2 "$e1" 8 "(1 << 63) | $l1"
check "an L2 entry pointing back into the L1 table is refused" \
    refuses "uses the same bytes twice" t.qcow2
edited t.qcow2 c.qcow2 "$e1" 8 "(1 << 63) | $l2"
check "an L2 entry pointing at its own L2 table is refused" \
    refuses "uses the same bytes twice" t.qcow2
edited t.qcow2 c.qcow2 "$e2" 8 "(1 << 63) | $(host_of c.qcow2 1)"
check "two L2 entries on the same data cluster, known before it comes: as qemu-img reads it" \
    like_qemu t.qcow2
edited t.qcow2 c.qcow2 "$e1" 8 "(1 << 63) | $(be c.qcow2 48 8)"
check "an L2 entry on the refcount table, whose bytes the stream passed unused: as qemu-img reads it" \
    like_qemu t.qcow2

# 512-byte clusters: an L2 table per 32 KiB, each before the data it maps.
truncate -s 256K small.raw
for off in 0 32768 65536 131072; do
    head -c 3000 /dev/urandom | write_at small.raw $off
done
qemu-img convert -f raw -O qcow2 -o cluster_size=512 small.raw s.qcow2
s_l1=$(l1_of s.qcow2)
s_l2a=$(l2_of s.qcow2 0)
s_l2b=$(l2_of s.qcow2 1)
edited t.qcow2 s.qcow2 "$(entry_of s.qcow2 64)" 8 "(1 << 63) | $s_l2a"
check "an L2 entry pointing back into another L2 table already read is refused" \
    refuses "uses the same bytes twice" t.qcow2
edited t.qcow2 s.qcow2 "$(entry_of s.qcow2 1)" 8 "(1 << 63) | $s_l2b"
check "an L2 entry on an L2 table still to come (both known before it): as qemu-img reads it" \
    like_qemu t.qcow2
edited t.qcow2 s.qcow2 "$((s_l1 + 8))" 8 "(1 << 63) | $s_l2a"
check "two L1 entries on the same L2 table: as qemu-img reads it" like_qemu t.qcow2
edited t.qcow2 s.qcow2 "$((s_l1 + 8))" 8 "(1 << 63) | $s_l1"
check "an L1 entry pointing back at the L1 table is refused" \
    refuses "uses the same bytes twice" t.qcow2

# Tables after the data (a resize moves the L1 table past it, to the end
# of the file): every cluster waits in the spool, a file past 64 KiB.
qemu-img create -f qcow2 -o cluster_size=4096 grown.qcow2 $((4 * MiB)) >/dev/null
qemu-io -f qcow2 -c 'write -P 7 0 3M' -c 'write -P 8 3584k 512k' grown.qcow2 >/dev/null
qemu-img resize grown.qcow2 $((64 * MiB)) >/dev/null
l1_at_end() {
    [ $(($(stat -c %s grown.qcow2) - $(l1_of grown.qcow2))) -le 4096 ] ||
        { echo "L1 table at $(l1_of grown.qcow2)"; return 1; }
}
check "the grown image's L1 table is in its last cluster" l1_at_end
check "the grown image imports through a spool file" like_qemu grown.qcow2 --spool-memory=64K
edited t.qcow2 grown.qcow2 "$(entry_of grown.qcow2 5)" 8 "(1 << 63) | $(host_of grown.qcow2 2)"
check "two L2 entries on the same spooled data cluster: as qemu-img reads it" \
    like_qemu t.qcow2 --spool-memory=64K
# The data clusters mapped in reverse order: standard output holds what
# comes ahead of the next byte to write, in a temporary file past 64 KiB.
cp c.qcow2 reversed.qcow2
for c in 0 1 2 3 4 5; do
    poke reversed.qcow2 "$(entry_of c.qcow2 $c)" 8 "$(be c.qcow2 "$(entry_of c.qcow2 $((5 - c)))" 8)"
done
check "data clusters in reverse order, to standard output held in a temporary file: as qemu-img reads it" \
    like_qemu reversed.qcow2 --spool-memory=64K
no_temporary_directory() {
    fails 1 "cannot make a temporary file in $scratch/no-such-dir" \
        env TMPDIR="$scratch/no-such-dir" "$Q2F" --spool-memory=64K got.raw < grown.qcow2
}
if [ -n "${Q2S_VALGRIND_IMPORTER:-}" ]; then
    # valgrind keeps its own files in $TMPDIR, and cannot start without it.
    skip "a \$TMPDIR that does not exist, when the spool needs a file: one line" \
        "valgrind needs \$TMPDIR itself"
else
    check "a \$TMPDIR that does not exist, when the spool needs a file: one line" \
        no_temporary_directory
fi

# ---- Compressed clusters of the wrong size --------------------------

compressed_refused() {
    local name=$1 pattern=$2 image=$3
    check "$name: qemu-img convert fails too" qemu_fails "$image"
    check "$name: refused" refuses "$pattern" "$image"
}
cp z.qcow2 t-short.qcow2
z sectors t-short.qcow2 15 40
compressed_refused "a compressed cluster whose sector count cuts its data short" \
    "the compressed cluster at byte $zstart (guest offset 983040): a zlib compressed cluster is corrupt" \
    t-short.qcow2
cp z.qcow2 t-half.qcow2
z append t-half.qcow2 3 32768 zlib
compressed_refused "a zlib cluster that inflates to half a cluster" \
    "guest offset 196608): a zlib compressed cluster is corrupt (it ends after 32768 of 65536 bytes)" \
    t-half.qcow2
# QEMU takes the first cluster of a zlib stream that goes on: so must we.
cp z.qcow2 t-double.qcow2
z append t-double.qcow2 3 131072 zlib
check "a zlib cluster that inflates to two clusters: as qemu-img reads it (the first)" \
    like_qemu t-double.qcow2
if have zstd; then
    cp zs.qcow2 t-zhalf.qcow2
    z append t-zhalf.qcow2 3 32768 zstd
    compressed_refused "a zstd cluster that inflates to half a cluster" \
        "guest offset 196608): a zstd compressed cluster" t-zhalf.qcow2
    cp zs.qcow2 t-zdouble.qcow2
    z append t-zdouble.qcow2 3 131072 zstd
    compressed_refused "a zstd cluster that inflates to two clusters" \
        "inflates to more than a cluster" t-zdouble.qcow2
else
    skip "zstd clusters of the wrong size" "no zstd"
fi
edited t.qcow2 z.qcow2 "$(entry_of z.qcow2 3)" 8 "$(be z.qcow2 "$(entry_of z.qcow2 15)" 8)"
check "two entries on the same compressed cluster: as qemu-img reads it" like_qemu t.qcow2
edited t.qcow2 z.qcow2 "$(entry_of z.qcow2 15)" 8 "(1 << 62) | (1 << 54) | $(l1_of z.qcow2)"
check "a compressed cluster in the L1 table is refused" \
    refuses "the compressed cluster at byte .* uses the same bytes twice" t.qcow2
edited t.qcow2 z.qcow2 "$(entry_of z.qcow2 15)" 8 "(1 << 62) | (1 << 54) | (1 << 30)"
check "a compressed cluster past the end of the stream is refused" \
    refuses "truncated stream, or a reference past its end" t.qcow2

# ---- Overlays -------------------------------------------------------

qemu-img create -f qcow2 base.qcow2 1M >/dev/null
qemu-io -f qcow2 -c 'write -P 1 0 1M' base.qcow2 >/dev/null
qemu-img create -f qcow2 -b base.qcow2 -F qcow2 ov.qcow2 >/dev/null
qemu-io -f qcow2 -c 'write -P 2 64k 64k' -c 'write -z 256k 64k' ov.qcow2 >/dev/null
check "an overlay without --apply: refused, naming its backing file" \
    refuses_untouched 'the image is an overlay of "base.qcow2".*--apply' ov.qcow2
no_new_file() {
    rm -f new.raw
    fails 1 'overlay of "base.qcow2"' "$Q2F" new.raw < <(cat ov.qcow2) || return 1
    [ ! -e new.raw ] || { echo "new.raw was made ($(stat -c %s new.raw) bytes)"; return 1; }
}
check "an overlay without --apply makes no target file" no_new_file
qemu-img create -f qcow2 -u -b $'evil\nname\033[2J' -F qcow2 evil.qcow2 1M >/dev/null
check "an overlay whose backing name holds control characters: one line" \
    refuses_untouched 'overlay of "evil\\nname\\x1b\[2J"' evil.qcow2
check "--apply onto a target of another size: refused, target untouched" \
    refuses_untouched "holds 100000 bytes, the image 1048576: --apply needs a target of the image's size" \
    ov.qcow2 --apply
check "--apply to standard output is a usage error" \
    fails 2 "--apply writes onto a disk" "$Q2F" --apply - < ov.qcow2
check "--apply with no target is a usage error" \
    fails 2 "--apply writes onto a disk" "$Q2F" --apply < ov.qcow2
apply_missing() {
    rm -f missing.raw
    fails 1 "missing.raw: No such file" "$Q2F" --apply missing.raw < ov.qcow2 || return 1
    [ ! -e missing.raw ] || { echo "missing.raw was made"; return 1; }
}
check "--apply onto a missing file: refused, no file made" apply_missing
apply_ok() {
    qemu-img convert -f qcow2 -O raw base.qcow2 applied.raw &&
        qemu-img convert -f qcow2 -O raw ov.qcow2 want.raw &&
        "$Q2F" --apply applied.raw < <(cat ov.qcow2) &&
        cmp applied.raw want.raw
}
check "--apply onto its base gives what qemu-img reads from the overlay" apply_ok

# ---- Targets that cannot be written ----------------------------------

mkdir a-directory
check "a directory as TARGET" fails 1 "a-directory: Is a directory" "$Q2F" a-directory < c.qcow2
check "a path in a missing directory as TARGET" \
    fails 1 "no-such-dir/x.raw: No such file or directory" "$Q2F" no-such-dir/x.raw < c.qcow2
check "/dev/full as TARGET (a stream): one line" \
    fails 1 "write error on /dev/full: No space left on device" "$Q2F" /dev/full < c.qcow2
check "standard output closed" \
    fails 1 "standard output is closed" sh -c 'exec "$0" < c.qcow2 >&-' "$Q2F"
check "standard output read-only" \
    fails 1 "descriptor 1 is open for reading only" sh -c 'exec "$0" < c.qcow2 1< c.qcow2' "$Q2F"
check "standard output on /dev/full" \
    fails 1 "write error on descriptor 1: No space left on device" \
    sh -c 'exec "$0" < c.qcow2 > /dev/full' "$Q2F"
# A write that fails while compressed clusters are inflated on threads (a
# file size limit, with SIGXFSZ ignored, makes writes past 8 MiB fail):
# the write's own message, once, and how many bytes were written, which
# cannot be more than the 8 MiB below the limit (clusters finish in any
# order, so some of those may not be written yet) and are the target's
# bytes that changed.
decompressed_write_fails() {
    local written
    head -c $((16 * MiB)) /dev/urandom | base64 -w 0 | head -c $((16 * MiB)) > fsize.raw
    qemu-img convert -f raw -c -O qcow2 -o compression_type=zstd fsize.raw fsize.qcow2 &&
        truncate -s $((16 * MiB)) fsize-target.raw || return 1
    (trap '' XFSZ; ulimit -f 8192
     fails 1 "cannot write to fsize-target.raw: File too large (fsize-target.raw is not the disk: [0-9]* bytes of it were written or zeroed)$" \
         "$Q2F" -j 2 --apply fsize-target.raw < fsize.qcow2) || return 1
    ! grep -q "compressed cluster" err.txt || { cat err.txt; return 1; }
    written=$(sed -n 's/.*disk: \([0-9]*\) bytes.*/\1/p' err.txt)
    [ "$written" -gt 0 ] && [ "$written" -le $((8 * MiB)) ] || { cat err.txt; return 1; }
    # The target was zeros and the disk has no zero byte: exactly the
    # bytes written are not zero.
    [ "$(tr -d '\0' < fsize-target.raw | wc -c)" = "$written" ]
}
check "a write that fails while clusters are inflated on threads: one line, the bytes written" \
    decompressed_write_fails
reader_goes_away() {
    local status
    "$Q2F" < c.qcow2 2> err.txt | head -c 1000 > /dev/null
    status=${PIPESTATUS[0]}
    [ "$status" = 1 ] || { echo "status $status"; cat err.txt; return 1; }
    [ "$(wc -l < err.txt)" = 1 ] && grep -q "^qcow2-from-stdin: write error on descriptor 1: Broken pipe" err.txt ||
        { cat err.txt; return 1; }
}
check "standard output a pipe whose reader goes away: one line" reader_goes_away

# nbd_refuses PATTERN NBDKIT-ARGUMENTS...: the 4 MiB image imported into
# an export nbdkit serves with those arguments fails: status 1, one line.
nbd_refuses() {
    local pattern=$1 status
    shift
    Q2F=$Q2F TMPDIR=$scratch timeout 20 nbdkit -U - "$@" \
        --run '"$Q2F" "$uri" < c.qcow2 > out.bin 2> err.txt' 2>/dev/null
    status=$?
    [ "$status" = 1 ] || { echo "status $status"; cat err.txt; return 1; }
    [ "$(wc -l < err.txt)" = 1 ] &&
        grep -q "^qcow2-from-stdin: .*$pattern" err.txt ||
        { echo "stderr does not match '$pattern':"; cat err.txt; return 1; }
    no_temporary_files
}
check "an NBD URI nobody serves" \
    fails 1 "nbd://127.0.0.1:1/: .*Connection refused" "$Q2F" nbd://127.0.0.1:1/ < c.qcow2
if have nbdkit; then
    check "a read-only NBD export" nbd_refuses "the export is read-only" -r memory 4M
    check "an NBD export smaller than the disk" \
        nbd_refuses "holds 1048576 bytes, fewer than the image's 4194304" memory 1M
    if nbdkit --dump-plugin memory >/dev/null 2>&1 &&
            nbdkit --filter=error memory 1M --dump-plugin >/dev/null 2>&1; then
        check "an NBD export whose writes fail" \
            nbd_refuses "refused a request: Input/output error" \
            --filter=error memory 4M error-pwrite=EIO error-pwrite-rate=100%
        check "an NBD export whose zero requests fail" \
            nbd_refuses "Input/output error" \
            --filter=error memory 4M error-zero=EIO error-zero-rate=100%
    else
        skip "NBD exports whose writes fail" "no nbdkit error filter"
    fi
else
    skip "NBD exports that cannot be written" "no nbdkit"
fi

# ---- Signals --------------------------------------------------------

# feed.py IMAGE DELAY: IMAGE in 16 KiB writes, DELAY seconds apart.
cat > feed.py <<'EOF'
import os, sys, time
out = sys.stdout.buffer
with open(sys.argv[1], 'rb') as f:
    try:
        while True:
            b = f.read(16384)
            if not b:
                break
            out.write(b)
            out.flush()
            time.sleep(float(sys.argv[2]))
    except BrokenPipeError:
        os._exit(0)
EOF
# quiet: a program stopped by a signal says nothing (a shell reports it).
quiet() {
    [ ! -s err.txt ] || { echo "stderr:"; cat err.txt; return 1; }
}
# signal_at_random SIGNAL: the grown image, fed slowly (about 0.8 s in
# all), spooled to a file past 64 KiB, gets SIGNAL at a random moment of
# its first half: it dies of it within a second, leaving no file.
signal_at_random() {
    local sig=$1 i pid
    for i in 1 2 3 4; do
        python3 feed.py grown.qcow2 0.003 2>/dev/null |
            in_background "$Q2F" --spool-memory=64K got.raw 2> err.txt &
        pid=$!
        sleep "$(printf '0.%03d' $((RANDOM % 400 + 10)))"
        dies_of "$sig" "$pid" err.txt || return 1
        quiet || return 1
        no_temporary_files || return 1
    done
}
RANDOM=$$
check "SIGTERM at random moments: dies of it, no temporary file" signal_at_random TERM
check "SIGINT at random moments: dies of it, no temporary file" signal_at_random INT
# With the spool file open: the signal comes once it is.
signal_with_spool_file() {
    local sig=$1 pid i found=
    python3 feed.py grown.qcow2 0.01 2>/dev/null |
        in_background "$Q2F" --spool-memory=64K got.raw 2> err.txt &
    pid=$!
    for ((i = 0; i < 150; i++)); do
        if readlink /proc/"$pid"/fd/* 2>/dev/null | grep -q "^$TMPDIR/"; then
            found=1; break
        fi
        sleep 0.02
    done
    [ -n "$found" ] || { kill -KILL "$pid"; wait "$pid"; echo "no spool file in \$TMPDIR"; return 1; }
    dies_of "$sig" "$pid" err.txt || return 1
    quiet && no_temporary_files
}
check "SIGTERM with the spool file open: dies of it, no temporary file" signal_with_spool_file TERM
check "SIGINT with the spool file open: dies of it, no temporary file" signal_with_spool_file INT
# Blocked writing the disk to a pipe nobody reads.
signal_blocked_writing() {
    local sig=$1 pid status
    rm -f out.fifo
    mkfifo out.fifo || return 1
    exec 7<>out.fifo
    in_background "$Q2F" --spool-memory=64K < grown.qcow2 > out.fifo 2> err.txt &
    pid=$!
    sleep 0.3
    kill -0 "$pid" 2>/dev/null || { exec 7>&-; wait "$pid"; echo "ended: $?"; cat err.txt; return 1; }
    dies_of "$sig" "$pid" err.txt
    status=$?
    exec 7>&-
    [ "$status" = 0 ] && quiet && no_temporary_files
}
check "SIGTERM while blocked writing to a full pipe" signal_blocked_writing TERM
check "SIGINT while blocked writing to a full pipe" signal_blocked_writing INT

# ---- Options --------------------------------------------------------

exec 9>&-
check "--progress-fd on a closed descriptor: refused, target untouched" \
    keeps 1 "--progress-fd=9: descriptor 9 is not open" "$Q2F" --progress-fd=9 target.raw < c.qcow2
check "--progress-fd on a read-only descriptor: refused, target untouched" \
    keeps 1 "--progress-fd=9: descriptor 9 is not open for writing" \
    "$Q2F" --progress-fd=9 target.raw < c.qcow2 9< c.qcow2
check "--progress-fd=2 is a usage error" \
    keeps 2 "--progress-fd=2" "$Q2F" --progress-fd=2 target.raw < c.qcow2
check "--threads=0 is a usage error" \
    keeps 2 "invalid thread count '0'" "$Q2F" --threads=0 target.raw < c.qcow2
check "--spool-memory=abc is a usage error" \
    keeps 2 "invalid spool memory size 'abc'" "$Q2F" --spool-memory=abc target.raw < c.qcow2
check "--apply with --target-is-zero is a usage error" \
    keeps 2 "--target-is-zero has no use with --apply" \
    "$Q2F" --apply --target-is-zero target.raw < ov.qcow2

check "nothing left in \$TMPDIR" no_temporary_files
finish
