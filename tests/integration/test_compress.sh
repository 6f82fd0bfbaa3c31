# --compress: qcow2 compressed clusters, checked by qemu-img at every
# cluster size and refcount width, with data that does not compress, data
# that compresses well, and compressed sizes that cross sector and host
# cluster boundaries; the same bytes on any number of threads; ranges.
. "$(dirname "$0")/lib.sh"

# compressible_image FILE CLUSTER_SIZE CLUSTERS: CLUSTERS clusters (the last
# one 100 bytes short): in turn random, text-like, a random head of varying
# length then zeros (so compressed sizes vary over the whole range), and
# zeros.
compressible_image() {
    python3 - "$@" <<'PY'
import random, sys
name, cluster_size, clusters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(cluster_size)
words = [b"qcow2", b"stream", b"cluster", b"refcount", b"zlib", b"zstd\n"]
with open(name, "wb") as f:
    for i in range(clusters):
        kind = i % 4
        if kind == 0:
            data = rng.randbytes(cluster_size)
        elif kind == 1:
            data = b" ".join(rng.choice(words) for _ in range(cluster_size))
        elif kind == 2:
            head = (i * 7919 + 613) % cluster_size
            data = rng.randbytes(head)
        else:
            data = b""
        f.write(data[:cluster_size].ljust(cluster_size, b"\0"))
    f.truncate(clusters * cluster_size - 100)
PY
}

# How many compressed clusters an image has, by qemu-img's count.
compressed_percent() {
    qemu-img check -f qcow2 "$1" | sed -n 's/.* \([0-9.]*\)% compressed clusters$/\1/p'
}

# Every cluster size, zlib and zstd, at the default refcount width.  The
# images stay near 8 MiB of data or less.
for bits in 9 10 11 12 13 14 15 16 17 18 19 20 21; do
    cs=$((1 << bits))
    clusters=$(( (8 << 20) / cs ))
    [ "$clusters" -gt 40 ] && clusters=40
    [ "$clusters" -lt 4 ] && clusters=4
    compressible_image data-$cs.raw $cs $clusters
    for type in zlib zstd; do
        "$Q2S" -c $cs --compress=$type data-$cs.raw > out.qcow2
        check "$type, $cs-byte clusters: valid and the same data" valid_image out.qcow2 data-$cs.raw
        check "$type, $cs-byte clusters: some clusters are compressed" \
            test "$(compressed_percent out.qcow2)" != "0.00"
    done
done

# Every refcount width, at two cluster sizes.  1-bit refcounts cannot let
# compressed clusters share a host cluster, so nothing is compressed then.
for cs in 512 65536; do
    for width in 1 2 4 8 16 32 64; do
        for type in zlib zstd; do
            "$Q2S" -c $cs -r $width --compress=$type data-$cs.raw > out.qcow2
            check "$type, $cs-byte clusters, $width-bit refcounts: valid" valid_image out.qcow2 data-$cs.raw
        done
        if [ $width = 1 ]; then
            check "$cs-byte clusters, 1-bit refcounts: nothing compressed" \
                test "$(compressed_percent out.qcow2)" = "0.00"
        else
            check "$cs-byte clusters, $width-bit refcounts: compressed" \
                test "$(compressed_percent out.qcow2)" != "0.00"
        fi
    done
done

# QEMU rewrites every cluster of the image: each host cluster's refcount
# falls to zero as the compressed clusters touching it go, so a count too
# high shows as a leak and one too low as an error.
overwritten() {
    "$Q2S" -c "$1" -r "$2" --compress=zstd "data-$1.raw" > rw.qcow2 &&
        qemu-io -f qcow2 -c "write -P 0x55 0 $(stat -c %s "data-$1.raw")" rw.qcow2 > /dev/null &&
        qemu-img check -f qcow2 rw.qcow2
}
for cs in 512 65536; do
    for width in 2 4 16 64; do
        check "$cs-byte clusters, $width-bit refcounts: no leak or error once QEMU rewrites all" \
            overwritten $cs $width
    done
done

# The header says zstd, with the incompatible bit; zlib leaves both alone.
"$Q2S" --compress=zstd data-65536.raw > zstd.qcow2
"$Q2S" --compress data-65536.raw > zlib.qcow2
check "zstd: the header says so" bash -c "qemu-img info zstd.qcow2 | grep -q 'compression type: zstd'"
check "zlib is the default type" bash -c "qemu-img info zlib.qcow2 | grep -q 'compression type: zlib'"
check "zstd: incompatible feature bit 3" test "$(od -An -j 79 -N 1 -tu1 zstd.qcow2 | tr -d ' ')" = 8
check "zlib: no incompatible feature" test "$(od -An -j 72 -N 8 -tx1 zlib.qcow2 | tr -d ' ')" = 0000000000000000

# Smaller than without compression, and qemu-io reads a compressed
# cluster back.
"$Q2S" data-65536.raw > plain.qcow2
check "compression makes the image smaller" test "$(stat -c %s zlib.qcow2)" -lt "$(stat -c %s plain.qcow2)"
check "qemu-io reads a compressed cluster" \
    bash -c "qemu-io -f qcow2 -r -c 'read -P 0 $((3 * 65536)) 65536' zlib.qcow2 | grep -q 'read 65536/65536'"

# Levels.
"$Q2S" --compress=zstd --compress-level=19 data-65536.raw > z19.qcow2
check "zstd level 19: valid" valid_image z19.qcow2 data-65536.raw
"$Q2S" --compress=zstd --compress-level=-5 data-65536.raw > zneg.qcow2
check "zstd negative level: valid" valid_image zneg.qcow2 data-65536.raw
"$Q2S" --compress=zlib --compress-level=1 data-65536.raw > z1.qcow2
check "zlib level 1: valid" valid_image z1.qcow2 data-65536.raw
check "zlib level 9 is no larger than level 1" bash -c \
    "'$Q2S' --compress --compress-level=9 data-65536.raw > z9.qcow2 && [ \$(stat -c %s z9.qcow2) -le \$(stat -c %s z1.qcow2) ]"

# The same bytes on any number of threads, and with or without the cache:
# an image of several batches.
compressible_image many.raw 4096 1500
for type in zlib zstd; do
    "$Q2S" -c 4096 --compress=$type -j 1 many.raw > one.qcow2
    check "$type, many clusters: valid" valid_image one.qcow2 many.raw
    for options in "-j 2" "-j 3" "-j 8" "-j 2 --compress-cache=0" "-j 3 --compress-cache=100K"; do
        "$Q2S" -c 4096 --compress=$type $options many.raw > other.qcow2
        check "$type: $options gives the same bytes as -j 1" cmp one.qcow2 other.qcow2
    done
done

# The data exercises what it should: compressed clusters that start inside
# a sector, spill into further sectors, and cross into the next host
# cluster; none with the COPIED flag.
check "compressed clusters cross sector and host cluster boundaries" python3 - one.qcow2 <<'PY'
import sys
f = open(sys.argv[1], "rb")
def be64(offset):
    f.seek(offset)
    return int.from_bytes(f.read(8), "big")
cluster_bits = int.from_bytes((f.seek(20), f.read(4))[1], "big")
cluster_size = 1 << cluster_bits
l1_size = int.from_bytes((f.seek(36), f.read(4))[1], "big")
l1 = be64(40)
x = 62 - (cluster_bits - 8)
mid_sector = more_sectors = crossing = 0
for i in range(l1_size):
    l2 = be64(l1 + 8 * i) & ((1 << 56) - 1)
    for j in range(cluster_size // 8 if l2 else 0):
        entry = be64(l2 + 8 * j)
        if not entry >> 62 & 1:
            continue
        assert not entry >> 63, "COPIED on a compressed cluster"
        offset = entry & ((1 << x) - 1)
        sectors = (entry >> x) & ((1 << (62 - x)) - 1)
        end = (offset // 512 + sectors + 1) * 512
        mid_sector += offset % 512 != 0
        more_sectors += sectors > 0
        crossing += (end - 1) // cluster_size != offset // cluster_size
print(mid_sector, more_sectors, crossing)
assert mid_sector and more_sectors and crossing
PY

# --measure, ranges, stdin.
size=$(stat -c %s one.qcow2)
check "--measure gives the size of the compressed stream" \
    test "$("$Q2S" -c 4096 --compress=zstd --measure many.raw)" = "$size"
json=$("$Q2S" -c 4096 --compress=zstd --measure --json many.raw)
check "--measure --json counts compressed clusters" python3 -c '
import json, sys
m = json.loads(sys.argv[1])
assert m["size"] == int(sys.argv[2]), m
assert 0 < m["compressed-clusters"] < m["data-clusters"], m
assert m["compressed-bytes"] < m["compressed-clusters"] * 4096, m
' "$json" "$size"
# ranges CACHE OFFSET...: the ranges between consecutive offsets,
# concatenated, give the whole stream (one.qcow2, zstd).
ranges() {
    local cache=$1 previous=0 offset; shift
    : > joined.qcow2
    for offset in "$@" "$size"; do
        "$Q2S" -c 4096 --compress=zstd --compress-cache="$cache" \
            --offset="$previous" --length=$((offset - previous)) many.raw >> joined.qcow2 || return 1
        previous=$offset
    done
    cmp one.qcow2 joined.qcow2
}
for cache in 0 1G; do
    check "ranges with a $cache cache join into the stream" \
        ranges $cache 1 4096 $((size / 3)) $((size / 3 + 1)) $((size / 2 + 777)) $((size - 513)) $((size - 1))
done
check "a range in the compressed region, compressed again" \
    ranges 0 $((size - 200000)) $((size - 123457))
"$Q2S" -c 4096 --compress=zstd - < many.raw > stdin-file.qcow2
check "stdin from a file: the same bytes" cmp one.qcow2 stdin-file.qcow2
cat many.raw | "$Q2S" -c 4096 --compress=zstd - > stdin-pipe.qcow2
check "stdin from a pipe: the same bytes" cmp one.qcow2 stdin-pipe.qcow2

# Other formats go through qemu-nbd and compress the same.
qemu-img convert -f raw -O qcow2 data-65536.raw in.qcow2
"$Q2S" -f qcow2 --compress=zstd in.qcow2 > from-qcow2.qcow2
check "-f qcow2 input: the same bytes as from raw" cmp zstd.qcow2 from-qcow2.qcow2

# An NBD export compresses too (nbdkit's pattern plugin: every byte set).
if have nbdkit; then
    check "an NBD export: valid" nbdkit -U - pattern size=6M --run \
        "'$Q2S' --compress=zstd \"\$uri\" > nbd.qcow2 && qemu-img check -f qcow2 nbd.qcow2 >/dev/null && qemu-img compare -F qcow2 \"\$uri\" nbd.qcow2"
else
    skip "an NBD export: valid" "nbdkit is not installed"
fi

# A sparse image: holes stay unallocated.
truncate -s 1G sparse.raw
compressible_image piece.raw 65536 8
dd if=piece.raw of=sparse.raw bs=64K seek=5000 conv=notrunc status=none
"$Q2S" --compress=zstd sparse.raw > sparse.qcow2
check "a sparse image: valid" valid_image sparse.qcow2 sparse.raw
check "a sparse image: small" test "$(stat -c %s sparse.qcow2)" -lt $((1024 * 1024))

# Interrupted while compressing, in either pass: the tool dies of SIGINT
# at once, its threads with it.
compressible_image big.raw 65536 640
interrupted() {
    local tool status
    rm -f fifo.out && mkfifo fifo.out
    if [ "$1" = pass1 ]; then
        in_background "$Q2S" --compress --compress-level=9 -j 1 big.raw > fifo.out 2> int.err &
        tool=$!
        exec 7< fifo.out
        sleep 0.5  # about a third of pass 1
    else
        in_background "$Q2S" --compress --compress-cache=0 -j 2 big.raw > fifo.out 2> int.err &
        tool=$!
        exec 7< fifo.out
        head -c 1 <&7 > /dev/null  # pass 2 has begun; then stop reading
    fi
    sigint_status "$tool" 2>&1
    status=$?
    exec 7<&-
    [ "$status" = 130 ] || { echo "status $status"; cat int.err; return 1; }
}
check "SIGINT while compressing in pass 1: the tool dies of it" interrupted pass1
check "SIGINT while compressing again in pass 2: the tool dies of it" interrupted pass2

# Refusals.
check "--compress zstd, without '='" fails 2 "write --compress=zstd" "$Q2S" --compress zstd many.raw
check "an unknown type" fails 2 "invalid compression type 'lz4'" "$Q2S" --compress=lz4 many.raw
check "a zlib level out of range: a usage error" fails 2 "invalid zlib compression level 10" "$Q2S" --compress --compress-level=10 many.raw
check "a zstd level out of range: a usage error" fails 2 "invalid zstd compression level 23" "$Q2S" --compress=zstd --compress-level=23 many.raw
check "a level that is not a number" fails 2 "invalid compression level 'high'" "$Q2S" --compress --compress-level=high many.raw
check "--compress-level without --compress" fails 2 "go with --compress" "$Q2S" --compress-level=3 many.raw
check "--compress-cache without --compress" fails 2 "go with --compress" "$Q2S" --compress-cache=1M many.raw
check "no threads" fails 2 "invalid thread count 0: must be from 1 to 1024" "$Q2S" --compress -j 0 many.raw
check "-d with --compress" fails 2 "compression cannot be combined with an external data file" "$Q2S" --compress -d many.raw
check "-R with --compress" fails 2 "compression cannot be combined with an external data file" "$Q2S" --compress=zstd -R many.raw

finish
