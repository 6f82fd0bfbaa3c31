# L1 and L2 entries as the format layer decodes them
# (lib/format/qcow2_entries.c, through tests/helpers/qcow2-map), held
# against `qemu-img map` on images qemu-img and qemu-io make: data, zero
# and compressed clusters (zlib and zstd), discards, writes in random
# order, internal snapshots, a resize, version 2, extended L2 entries
# (subclusters), an external data file, every cluster size from 512 bytes
# to 2 MiB.  Both views are read as runs of one kind (data at contiguous
# host offsets, compressed, zero, unallocated) and must be the same; and
# the bytes the format layer reads (compressed clusters inflated by
# qcow2_decompress.c) must be those of `qemu-img convert -O raw`.
. "$(dirname "$0")/lib.sh"

QCOW2_MAP=${Q2S_BUILD:-$top/build}/tests/helpers/qcow2-map
for tool in qemu-img qemu-io python3; do
    if ! have "$tool"; then
        skip "entries against qemu-img map" "no $tool"
        finish
        exit 0
    fi
done

# same_map IMAGE: our runs and qemu-img's (the image alone, no backing),
# of an image that qemu-img check finds sound.
same_map() {
    [ -z "${io_trouble:-}" ] || { echo "$io_trouble"; io_trouble=; return 1; }
    qemu-img check -q "$1" || { echo "qemu-img check fails on $1"; return 1; }
    "$QCOW2_MAP" "$1" > ours.map || return 1
    qemu-img map --output=json \
        "json:{\"driver\":\"qcow2\",\"backing\":null,\"file\":{\"driver\":\"file\",\"filename\":\"$PWD/$1\"}}" \
        > qemu.json || return 1
    python3 - ours.map qemu.json <<'PY'
import json, sys
def merge(runs):
    out = []
    for start, length, kind, host in runs:
        if out:
            s, l, k, h = out[-1]
            if k == kind and s + l == start and (kind != 'data' or h + l == host):
                out[-1] = (s, l + length, k, h)
                continue
        out.append((start, length, kind, host))
    return out
ours = []
for line in open(sys.argv[1]):
    f = line.split()
    ours.append((int(f[0]), int(f[1]), f[2], int(f[3]) if len(f) > 3 else None))
qemu = []
for e in json.load(open(sys.argv[2])):
    if e['data']:
        kind = 'data' if 'offset' in e else 'compressed'
    elif e['present']:
        kind = 'zero'
    else:
        kind = 'unallocated'
    qemu.append((e['start'], e['length'], kind, e.get('offset') if kind == 'data' else None))
ours, qemu = merge(ours), merge(qemu)
if ours != qemu:
    for a, b in zip(ours, qemu):
        if a != b:
            print('first difference: ours', a, 'qemu-img', b)
            break
    print('ours: %d runs, qemu-img: %d runs' % (len(ours), len(qemu)))
    sys.exit(1)
PY
}

# same_bytes IMAGE: the disk as we read it and as qemu-img converts it.
same_bytes() {
    "$QCOW2_MAP" --read "$1" > ours.raw || return 1
    qemu-img convert -O raw \
        "json:{\"driver\":\"qcow2\",\"backing\":null,\"file\":{\"driver\":\"file\",\"filename\":\"$PWD/$1\"}}" \
        qemu.raw || return 1
    cmp ours.raw qemu.raw
}

# used IMAGE SEED COUNT CLUSTER [COMPRESS]: COUNT qemu-io writes, zero
# writes, compressed writes and discards of random sizes in random order,
# as a VM leaves an image.  QEMU 7.2 writes a compressed cluster only
# where nothing was written (EIO otherwise): those go to clusters this
# call has not touched, and COMPRESS=0 leaves them out.
used() {
    local image=$1 seed=$2 count=$3 cluster=$4 compress=${5:-1}
    io_trouble=
    python3 - "$seed" "$count" "$cluster" "$compress" "$(qemu-img info --output=json "$image" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" > io.cmds <<'PY'
import random, sys
rng = random.Random(int(sys.argv[1]))
count, cluster, compress, size = map(int, sys.argv[2:6])
touched = set()
def touch(start, length):
    touched.update(range(start // cluster, (start + length - 1) // cluster + 1))
for i in range(count):
    op = rng.choice(['write', 'write', 'zero', 'discard'] + (['compress'] if compress else []))
    if op == 'compress':
        free = [c for c in range(size // cluster) if c not in touched]
        if free:
            c = rng.choice(free)
            touch(c * cluster, cluster)
            print('write -c -P %d %d %d' % (rng.randrange(1, 255), c * cluster, cluster))
        continue
    length = rng.choice([512, 4096, cluster, 3 * cluster, 65536])
    start = rng.randrange(0, max(1, size - length)) // 512 * 512
    touch(start, length)
    if op == 'write':
        print('write -P %d %d %d' % (rng.randrange(1, 255), start, length))
    elif op == 'zero':
        print('write -z %s %d %d' % (rng.choice(['', '-u']), start, length))
    else:
        print('discard %d %d' % (start, length))
PY
    local args=()
    while read -r cmd; do args+=(-c "$cmd"); done < io.cmds
    qemu-io "${args[@]}" "$image" > io.out 2>&1
    if grep -q "failed\|corrupt" io.out; then
        io_trouble="qemu-io failed on $image: $(grep "failed\|corrupt" io.out | head -1)"
    fi
}

for cs in 512 4096 65536 2097152; do
    qemu-img create -q -f qcow2 -o cluster_size=$cs c$cs.qcow2 8M
    used c$cs.qcow2 $cs 60 $cs
    check "-c $cs, written, zeroed, compressed and discarded at random" same_map c$cs.qcow2
    check "  ... and its bytes" same_bytes c$cs.qcow2
done
for cs in 512 65536 2097152; do
    qemu-img create -q -f qcow2 -o cluster_size=$cs,compression_type=zstd z$cs.qcow2 8M
    used z$cs.qcow2 $((cs + 7)) 60 $cs
    check "zstd, -c $cs: entries" same_map z$cs.qcow2
    check "  ... and its bytes" same_bytes z$cs.qcow2
done

qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=4096 v2.qcow2 4M
used v2.qcow2 2 40 4096
check "version 2 (no zero clusters)" same_map v2.qcow2
check "  ... and its bytes" same_bytes v2.qcow2

for cs in 16384 65536 2097152; do
    qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=$cs ext$cs.qcow2 8M
    used ext$cs.qcow2 $((cs + 1)) 60 $cs
    check "extended L2 entries, -c $cs: subclusters" same_map ext$cs.qcow2
    check "  ... and its bytes" same_bytes ext$cs.qcow2
done

qemu-img create -q -f qcow2 -o cluster_size=4096 snap.qcow2 4M
used snap.qcow2 7 20 4096
qemu-img snapshot -c first snap.qcow2
used snap.qcow2 8 20 4096 0
qemu-img snapshot -c second snap.qcow2
used snap.qcow2 9 20 4096 0
check "internal snapshots, then more writes (copy on write)" same_map snap.qcow2
check "  ... and its bytes" same_bytes snap.qcow2

# (QEMU 7.2 marks an image of 512-byte clusters corrupt after compressed
# writes: "Preventing invalid write on metadata (overlaps with active L2
# table)".  None here.)
l1_offset() { python3 -c "import struct, sys; print(struct.unpack('>Q', open(sys.argv[1], 'rb').read(48)[40:48])[0])" "$1"; }
qemu-img create -q -f qcow2 -o cluster_size=512 resized.qcow2 1M
used resized.qcow2 10 20 512 0
before=$(l1_offset resized.qcow2)
qemu-img resize -q resized.qcow2 8M
used resized.qcow2 11 20 512 0
check "a resize that moved the L1 table after the data, then more writes" \
    test "$(l1_offset resized.qcow2)" -gt "$before"
check "  ... and its entries" same_map resized.qcow2
check "  ... and its bytes" same_bytes resized.qcow2

qemu-img create -q -f qcow2 -o data_file=data.raw,cluster_size=4096 external.qcow2 4M
used external.qcow2 12 30 4096 0
check "an external data file (offset 0 is a cluster there)" same_map external.qcow2

io_trouble=
make_image disk.raw $((3 * 1024 * 1024 + 1000))
"$Q2S" -c 4096 disk.raw > ours.qcow2
check "this tool's image" same_map ours.qcow2
check "  ... and its bytes" same_bytes ours.qcow2
"$Q2S" -c 65536 --compress=zstd disk.raw > ours-zstd.qcow2
check "this tool's image, compressed" same_map ours-zstd.qcow2
check "  ... and its bytes" same_bytes ours-zstd.qcow2
finish
