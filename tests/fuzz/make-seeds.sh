#!/usr/bin/env bash
# Writes the seed corpus of each fuzz target into tests/fuzz/corpus/NAME/:
# real outputs of qemu-img (and of this tool), cut to what the parser
# reads, and hand-made edge cases.  Run from the top of the tree, with
# qemu-img, qemu-io and a built ./qcow2-to-stdout; it overwrites the seeds
# of the same names and leaves every other corpus file (the fuzzers'
# finds and findings) as it is.  vmdk images carry a random CID, so their
# seeds change from run to run: revert those if nothing else changed.
set -euo pipefail
top=$(pwd)
corpus=$top/tests/fuzz/corpus
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
cd "$work"
mkdir -p "$corpus"/{image_refs,map_json,image_info_json,qemu_img_map,size,qcow2_entries,import}

# seed TARGET NAME: standard input becomes the seed.
seed() { cat > "$corpus/$1/$2"; }
# head_of FILE BYTES: the first BYTES of FILE, where the header, its
# extensions and the names lie.
head_of() { head -c "$2" "$1"; }

# Images of every inspected format and shape, made by qemu-img.
qemu-img create -q -f raw base.raw 1M
qemu-img create -q -f qcow2 -o cluster_size=4096 base.qcow2 1M
qemu-io -c "write -P 1 0 8k" -c "write -z 64k 64k" base.qcow2 > /dev/null
qemu-img create -q -f qcow2 -o cluster_size=4096 compressed.qcow2 1M
qemu-io -c "write -c 128k 4k" compressed.qcow2 > /dev/null
qemu-img create -q -f qcow2 -o compat=0.10 v2.qcow2 1M
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 overlay.qcow2
qemu-img create -q -f qcow2 -o compat=0.10 -b base.raw -F raw overlay-v2.qcow2
qemu-img create -q -f qcow2 -o data_file=data.raw,data_file_raw=on data.qcow2 1M
qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=16k,compression_type=zstd ext.qcow2 1M
qemu-img create -q -f qcow -b base.raw -F raw old.qcow 1M
qemu-img create -q -f qed -b base.raw -F raw overlay.qed 1M
qemu-img create -q -f vmdk sparse.vmdk 1M
qemu-img create -q -f vmdk -o subformat=monolithicFlat flat.vmdk 1M
qemu-img create -q -f vmdk -o subformat=streamOptimized stream.vmdk 1M
qemu-img create -q -f vmdk -b sparse.vmdk -F vmdk child.vmdk 1M
for image in base.qcow2 compressed.qcow2 v2.qcow2 overlay.qcow2 overlay-v2.qcow2 data.qcow2 \
        ext.qcow2 old.qcow overlay.qed; do
    head_of "$image" 4096 | seed image_refs "${image/./-}"
done
head_of sparse.vmdk 8192 | seed image_refs sparse-vmdk
head_of stream.vmdk 8192 | seed image_refs stream-vmdk
head_of child.vmdk 8192 | seed image_refs child-vmdk
seed image_refs flat-vmdk-descriptor < flat.vmdk
"$top/qcow2-to-stdout" -c 512 base.raw | head -c 4096 | seed image_refs ours-c512
"$top/qcow2-to-stdout" -d base.raw | head -c 4096 | seed image_refs ours-data-file
"$top/qcow2-to-stdout" -B base.qcow2 -F qcow2 base.raw | head -c 4096 |
    seed image_refs ours-overlay
# Hand-made: a backing name at the very end of a 512-byte cluster, a
# backing format of 16 bytes, an extension that overflows its area.
python3 - "$corpus/image_refs" <<'PY'
import struct, sys, os
d = sys.argv[1]
def header(version=3, backing_offset=0, backing_size=0, bits=9, length=104, incompat=0):
    h = struct.pack('>IIQII', 0x514649fb, version, backing_offset, backing_size, bits)
    h += struct.pack('>QIIQQIIQ', 1 << 20, 0, 2, 0, 0, 1, 0, 0)
    if version == 3:
        h += struct.pack('>QQQII', incompat, 0, 0, 4, length)
    return h
def ext(kind, data):
    return struct.pack('>II', kind, len(data)) + data + b'\0' * (-len(data) % 8)
def write(name, data):
    open(os.path.join(d, name), 'wb').write(data)
name = b'b' * 8
write('hand-backing-at-cluster-end', header(backing_offset=504, backing_size=8).ljust(504, b'\0') + name)
write('hand-backing-past-cluster', header(backing_offset=504, backing_size=9).ljust(504, b'\0') + name)
write('hand-backing-format-16', header() + ext(0xe2792aca, b'q' * 16) + ext(0, b''))
write('hand-extension-overflows', header() + struct.pack('>II', 0x12345678, 1 << 31))
write('hand-data-file-escapes', header(incompat=4) + ext(0x44415441, b'\n\x1b[31m"x') + ext(0, b''))
write('hand-v2-header-104', header(version=2))
write('hand-header-length-past-cluster', header(length=1024))
PY

# qemu-img map: the human output (the parser wants the image's own file
# named as /images/disk.qcow2; it refuses compressed clusters) and the
# JSON one.
qemu-img map --output=json compressed.qcow2 | seed map_json compressed-qcow2
for image in base.qcow2 overlay.qcow2 ext.qcow2 sparse.vmdk; do
    qemu-img map "$image" | sed "s|$image\$|/images/disk.qcow2|" |
        seed qemu_img_map "${image/./-}"
    qemu-img map --output=json "$image" | seed map_json "${image/./-}"
    qemu-img info --output=json "$image" | seed image_info_json "${image/./-}"
done
qemu-img info --output=json --backing-chain overlay.qcow2 |
    seed image_info_json overlay-chain
printf 'Offset          Length          Mapped to       File\n0x0 0x10 0x0 /images/disk.qcow2\n0x8 0x10 0x20 /images/disk.qcow2\n' |
    seed qemu_img_map hand-overlap
printf 'Offset          Length          Mapped to       File\n0xfffffffffffffff0 0x20 0x0 /images/disk.qcow2\n' |
    seed qemu_img_map hand-wraps
printf 'Offset          Length          Mapped to       File\n0 0x1000 0xfffffffffffff000 /images/disk.qcow2\n' |
    seed qemu_img_map hand-file-offset-wraps
printf 'Offset          Length          Mapped to       File\n0 0x1000 0 /images/other.raw\n0x1000 0x1000 0x5000 /images/disk.qcow2\n' |
    seed qemu_img_map hand-other-file

# Maps by hand: rbd diff, the edges of the numbers, shapes mixed.
printf '[{"offset":0,"length":4096,"exists":"true"},{"offset":8192,"length":512,"exists":"false"}]' |
    seed map_json rbd-diff
printf '[]' | seed map_json empty
printf '[{"start":9223372036854771712,"length":4096,"data":true}]' |
    seed map_json ends-at-2-63
printf '[{"start":9223372036854771712,"length":4097,"data":true}]' |
    seed map_json ends-past-2-63
printf '[{"start":0,"length":18446744073709551615,"data":true}]' |
    seed map_json length-2-64
printf '[{"start":-1,"length":1,"data":true}]' | seed map_json negative
printf '[{"start":1e3,"length":1,"data":true}]' | seed map_json exponent
printf '[{"start":0,"length":10,"data":true},{"start":5,"length":10,"data":true},{"start":15,"length":1,"data":true}]' |
    seed map_json overlapping-touching
printf '[{"start":0,"length":1,"data":true},{"offset":1,"length":1,"exists":true}]' |
    seed map_json shapes-mixed
printf '[{"start":0,"length":1,"data":true,"x":[[[[[[[[[[1]]]]]]]]]]}]' |
    seed map_json deep
printf '{"virtual-size":1048576,"cluster-size":65536}' | seed image_info_json minimal
printf '{"virtual-size":9223372036854775808,"cluster-size":512}' |
    seed image_info_json size-2-63
printf '{"virtual-size":1,"cluster-size":4294967296}' |
    seed image_info_json cluster-2-32
printf '{"virtual-size":"1","cluster-size":512}' | seed image_info_json size-string

# Entries: the first byte picks the image (cluster bits 9 + b % 13; 0x80
# extended L2 entries, 0x40 an external data file, 0x20 zstd), then L2
# entries and a compressed cluster's data, from images qemu-io wrote.
qemu-img create -q -f qcow2 -o cluster_size=65536 zlib.qcow2 4M
qemu-img create -q -f qcow2 -o cluster_size=65536,compression_type=zstd zstd.qcow2 4M
qemu-img create -q -f qcow2 -o cluster_size=65536,extended_l2=on sub.qcow2 4M
for image in zlib zstd sub; do
    qemu-io -c "write -c -P 7 0 64k" -c "write -P 1 64k 4k" -c "write -z 128k 64k" \
        -c "write -P 2 200k 2k" "$image.qcow2" > /dev/null
done
python3 - "$corpus/qcow2_entries" zlib.qcow2 zstd.qcow2 sub.qcow2 <<'PY'
import os, struct, sys
out = sys.argv[1]
for path, flags in zip(sys.argv[2:], (0x00, 0x20, 0x80)):
    data = open(path, 'rb').read()
    l1_offset = struct.unpack('>Q', data[40:48])[0]
    l2_offset = struct.unpack('>Q', data[l1_offset:l1_offset + 8])[0] & 0x00fffffffffffe00
    entry_bytes = 16 if flags & 0x80 else 8
    entries = data[l2_offset:l2_offset + 8 * entry_bytes]
    first = (16 - 9) | flags
    name = os.path.basename(path).replace('.', '-')
    open(os.path.join(out, name + '-l2'), 'wb').write(bytes([first]) + entries)
    entry = struct.unpack('>Q', entries[:8])[0]
    if entry & (1 << 62):
        shift = 62 - (16 - 8)
        host = entry & ((1 << shift) - 1)
        sectors = ((entry >> shift) & ((1 << 8) - 1)) + 1
        nbytes = sectors * 512 - (host & 511)
        open(os.path.join(out, name + '-compressed'), 'wb').write(
            bytes([first]) + entries[:entry_bytes] + data[host:host + nbytes])
PY
printf '\x07\x40\x00\x00\x00\x00\x00\x00\x00' | seed qcow2_entries hand-compressed-data-file
printf '\x87\x80\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01' |
    seed qcow2_entries hand-subcluster-both

# Sizes and numbers as options take them.
i=0
for text in 0 1 512 4096 64K 2m 1G 3t 1P 15E 16E 18446744073709551615 \
        18446744073709551616 007 -1 +5 ' 5' '5 ' '0 ' 1.5M 0x10 '' K 1KB 1k \
        2147483647 -2147483647 -2147483648 2147483648 99999999999999999999; do
    i=$((i + 1))
    printf '%s' "$text" | seed size "$(printf 'seed-%02d' "$i")"
done

# Whole small images for the stream reader, in every layout: qemu-img's
# conversions and used images (random writes, zeros, discards, compressed
# writes, subclusters, a resize that moved the L1 table after the data,
# a snapshot), this tool's, and cut-short or bent copies of them.
truncate -s 256k small.raw
printf 'hello' | dd of=small.raw bs=1 seek=70000 conv=notrunc status=none
head -c 3000 /dev/urandom | dd of=small.raw bs=1 seek=200000 conv=notrunc status=none
imp() { qemu-img create -q -f qcow2 "$@"; }
qemu-img convert -O qcow2 -o cluster_size=4096 small.raw i-convert.qcow2
qemu-img convert -O qcow2 -o cluster_size=512 small.raw i-convert512.qcow2
qemu-img convert -O qcow2 -c -o cluster_size=4096 small.raw i-zlib.qcow2
qemu-img convert -O qcow2 -c -o cluster_size=4096,compression_type=zstd small.raw i-zstd.qcow2
qemu-img convert -O qcow2 -o cluster_size=4096,compat=0.10 small.raw i-v2.qcow2
imp -o extended_l2=on,cluster_size=16k i-ext.qcow2 256k
qemu-io -c 'write -P 1 1k 2k' -c 'write -z 20k 3k' -c 'write -P 2 40k 17k' i-ext.qcow2 > /dev/null
imp -o cluster_size=4096 i-used.qcow2 256k
qemu-io -c 'write -P 3 100k 9k' -c 'write -P 4 4k 4k' -c 'write -z 104k 4k' \
    -c 'discard 4k 4k' -c 'write -c -P 5 200k 4k' i-used.qcow2 > /dev/null
imp -o cluster_size=4096 i-grown.qcow2 64k
qemu-io -c 'write -P 6 0 12k' i-grown.qcow2 > /dev/null
qemu-img resize -q i-grown.qcow2 16M
qemu-io -c 'write -P 7 9M 4k' i-grown.qcow2 > /dev/null
imp -o cluster_size=4096 i-snap.qcow2 64k
qemu-io -c 'write -P 8 0 8k' i-snap.qcow2 > /dev/null
qemu-img snapshot -c s i-snap.qcow2
qemu-io -c 'write -P 9 4k 8k' i-snap.qcow2 > /dev/null
imp -o cluster_size=4096 -b i-convert.qcow2 -F qcow2 i-overlay.qcow2
"$top/qcow2-to-stdout" -c 4096 small.raw > i-ours.qcow2
"$top/qcow2-to-stdout" -c 4096 --compress=zstd small.raw > i-ours-zstd.qcow2
for image in i-*.qcow2; do
    seed import "${image%.qcow2}"
done
python3 - "$corpus/import" i-convert.qcow2 i-zlib.qcow2 <<'PY'
import os, struct, sys
out = sys.argv[1]
for path in sys.argv[2:]:
    data = open(path, 'rb').read()
    name = os.path.basename(path)[:-len('.qcow2')]
    l1 = struct.unpack('>Q', data[40:48])[0]
    # Cut short: in the header, after the first cluster, in the L1 table,
    # one byte before the end.
    for cut in (50, 4096, l1 + 4, len(data) - 1):
        open(os.path.join(out, '%s-cut-%d' % (name, cut)), 'wb').write(data[:cut])
    # The first L2 entry pointing back at the L1 table.
    l2 = struct.unpack('>Q', data[l1:l1 + 8])[0] & 0x00fffffffffffe00
    bent = bytearray(data)
    bent[l2:l2 + 8] = struct.pack('>Q', (1 << 63) | l1)
    open(os.path.join(out, name + '-back-to-l1'), 'wb').write(bent)
PY

