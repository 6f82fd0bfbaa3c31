# The qcow2 header as the format layer reads it (lib/format/qcow2_header.c,
# through tests/helpers/check-header), held against QEMU's own open: images
# that qemu-img makes, each header field set at and past QEMU's limits, and
# random changes of the header.  Where we refuse, QEMU must refuse too;
# for the changes that touch the header alone, QEMU must open what we
# take.  QEMU opens each without its backing file (backing: null) and
# read-only, as `qemu-img info` does.
. "$(dirname "$0")/lib.sh"

CHECK_HEADER=${Q2S_BUILD:-$top/build}/tests/helpers/check-header
for tool in qemu-img python3; do
    if ! have "$tool"; then
        skip "the header against QEMU's open" "no $tool"
        finish
        exit 0
    fi
done

# qemu_opens IMAGE: QEMU's verdict, without a backing file.
qemu_opens() {
    qemu-img info --output=json \
        "json:{\"driver\":\"qcow2\",\"backing\":null,\"file\":{\"driver\":\"file\",\"filename\":\"$1\"}}" \
        > /dev/null 2>&1
}

qemu-img create -q -f qcow2 -o cluster_size=65536 v3.qcow2 64M
qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=4096 v2.qcow2 64M
qemu-img create -q -f qcow2 -o cluster_size=16384,extended_l2=on,compression_type=zstd ext.qcow2 64M
qemu-img create -q -f qcow2 -b v3.qcow2 -F qcow2 overlay.qcow2
make_image disk.raw $((1024 * 1024 + 1000))
"$Q2S" -c 512 disk.raw > ours-512.qcow2
for image in v3 v2 ext overlay ours-512; do
    check "$image.qcow2: QEMU opens it, and so do we" \
        bash -c "qemu-img info $image.qcow2 > /dev/null && '$CHECK_HEADER' $image.qcow2"
done

# Each field at its limit and one past: "NAME OFFSET WIDTH VALUE WANT",
# WANT being what both must say (1: opened, 0: refused).
python3 - v3.qcow2 cases <<'PY'
import struct, sys
base = open(sys.argv[1], 'rb').read()
l1_size = struct.unpack('>I', base[36:40])[0]
cases = [
    # refcount_order: 6 is 64 bits, 7 more
    ('refcount_order-6', 96, 4, 6, 1),
    ('refcount_order-7', 96, 4, 7, 0),
    # unknown incompatible feature bits
    ('incompatible-bit-5', 72, 8, 1 << 5, 0),
    ('incompatible-bit-63', 72, 8, 1 << 63, 0),
    # the compression type and its feature bit
    ('compression-bit-without-type', 72, 8, 1 << 3, 0),
    ('compression-type-2', 104, 1, 2, 0),
    ('compression-zstd-without-bit', 104, 1, 1, 0),
    # tables: unaligned, past 2^63, too large
    ('l1-unaligned', 40, 8, 0x30008, 0),
    ('l1-ends-past-2-63', 40, 8, (1 << 63) - 65536, 0),
    ('l1-ends-past-qemu-reads', 40, 8, (1 << 63) - (1 << 30), 0),
    ('l1-ends-at-qemu-reads', 40, 8, (1 << 63) - (1 << 30) - 65536, 1),
    ('l1-entries-32MiB', 36, 4, 32 * 1024 * 1024 // 8, 1),
    ('l1-entries-past-32MiB', 36, 4, 32 * 1024 * 1024 // 8 + 1, 0),
    ('l1-too-small', 36, 4, l1_size - 1, 0),
    ('reftable-clusters-0', 56, 4, 0, 0),
    ('reftable-clusters-128', 56, 4, 8 * 1024 * 1024 // 65536, 1),
    ('reftable-clusters-129', 56, 4, 8 * 1024 * 1024 // 65536 + 1, 0),
    ('reftable-unaligned', 48, 8, 65536 + 512, 0),
    ('snapshots-65537', 60, 4, 65537, 0),
    ('snapshots-unaligned', 64, 8, 100, 0),
    # a virtual size the L1 table cannot map, and one QEMU cannot open
    ('size-past-l1', 24, 8, (l1_size + 1) * 65536 * 8192, 0),
    ('size-2-64', 24, 8, (1 << 64) - 1, 0),
    # the header itself
    ('version-1', 4, 4, 1, 0),
    ('version-4', 4, 4, 4, 0),
    ('cluster-bits-8', 20, 4, 8, 0),
    ('cluster-bits-22', 20, 4, 22, 0),
    ('header-length-103', 100, 4, 103, 0),
    ('header-length-past-cluster', 100, 4, 65537, 0),
    ('backing-offset-past-cluster', 8, 8, 65537, 0),
    ('backing-name-1024', 8, 8, 512, 0),
    ('crypt-method-3', 32, 4, 3, 0),
    ('magic', 0, 4, 0x514649fa, 0),
]
with open(sys.argv[2], 'w') as out:
    for name, offset, width, value, want in cases:
        data = bytearray(base)
        fmt = {1: '>B', 4: '>I', 8: '>Q'}[width]
        data[offset:offset + width] = struct.pack(fmt, value)
        if name == 'backing-name-1024':
            data[16:20] = struct.pack('>I', 1024)
        open(name + '.qcow2', 'wb').write(data)
        out.write('%s %d\n' % (name, want))
PY
while read -r name want; do
    ours=0; qemu=0
    "$CHECK_HEADER" "$name.qcow2" 2> ours.err && ours=1
    qemu_opens "$PWD/$name.qcow2" && qemu=1
    check "$name: QEMU and we both say $([ "$want" = 1 ] && echo opened || echo refused)" \
        bash -c "[ $ours = $want ] && [ $qemu = $want ] || { echo 'ours $ours, QEMU $qemu:'; cat ours.err; exit 1; }"
done < cases

# Random changes to the fields of the header and its extension area:
# whatever we refuse, QEMU refuses (we never refuse an image QEMU opens).
# Those that touch neither the backing name, the data file bit, the
# snapshot count nor the crypt method (which QEMU then reads beyond the
# header) must also be opened by QEMU when we take them.
python3 - v3.qcow2 ext.qcow2 random <<'PY'
import random, struct, sys
rng = random.Random(20261207)
bases = [open(p, 'rb').read() for p in sys.argv[1:3]]
fields = [(4, 4), (8, 8), (16, 4), (20, 4), (24, 8), (32, 4), (36, 4),
          (40, 8), (48, 8), (56, 4), (60, 4), (64, 8), (72, 8), (96, 4),
          (100, 4), (104, 1)]
risky = {(8, 8), (16, 4), (32, 4), (60, 4), (64, 8)}
with open(sys.argv[3], 'w') as out:
    for n in range(120):
        b = rng.randrange(2)
        data = bytearray(bases[b])
        strict = True
        for _ in range(rng.choice((1, 1, 2))):
            offset, width = rng.choice(fields)
            old = int.from_bytes(data[offset:offset + width], 'big')
            kind = rng.randrange(4)
            if kind == 0:
                value = old ^ (1 << rng.randrange(width * 8))
            elif kind == 1:
                value = old + rng.choice((-1, 1, 512, 65536))
            elif kind == 2:
                value = rng.choice((0, 1, 7, 8, 9, 21, 22, 103, 104, 112, 4096, 65536, 1 << 31))
            else:
                value = rng.getrandbits(width * 8)
            value %= 1 << (width * 8)
            data[offset:offset + width] = value.to_bytes(width, 'big')
            if (offset, width) in risky or (offset == 72 and value & 4):
                strict = False
        name = 'random-%03d' % n
        open(name + '.qcow2', 'wb').write(data)
        out.write('%s %d\n' % (name, strict))
PY
refused_opened="" taken_refused="" both_refused=0 both_opened=0
while read -r name strict; do
    ours=0; qemu=0
    "$CHECK_HEADER" "$name.qcow2" 2> /dev/null && ours=1
    qemu_opens "$PWD/$name.qcow2" && qemu=1
    [ "$ours$qemu" = 00 ] && both_refused=$((both_refused + 1))
    [ "$ours$qemu" = 11 ] && both_opened=$((both_opened + 1))
    [ "$ours" = 0 ] && [ "$qemu" = 1 ] && refused_opened="$refused_opened $name"
    [ "$strict" = 1 ] && [ "$ours" = 1 ] && [ "$qemu" = 0 ] && taken_refused="$taken_refused $name"
done < random
echo "# random headers: $both_refused refused and $both_opened opened by both"
check "the random headers have some of each" \
    bash -c "[ $both_refused -ge 20 ] && [ $both_opened -ge 10 ]"
check "120 random headers: none we refuse does QEMU open" \
    bash -c "[ -z '$refused_opened' ] || { echo 'refused by us, opened by QEMU:$refused_opened'; exit 1; }"
check "120 random headers: QEMU opens those of header fields alone that we take" \
    bash -c "[ -z '$taken_refused' ] || { echo 'taken by us, refused by QEMU:$taken_refused'; exit 1; }"
finish
