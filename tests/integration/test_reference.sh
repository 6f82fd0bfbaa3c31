# Byte identity with QEMU's reference script, where it and python3 exist.
. "$(dirname "$0")/lib.sh"

if [ ! -f "$REFERENCE" ] || ! have python3; then
    skip "byte identity with the reference script" \
        "no reference script at $REFERENCE or no python3"
    finish; exit 0
fi

# same_as_reference FILE OPTIONS...: both write the same bytes.
same_as_reference() {
    local file=$1; shift
    "$Q2S" "$@" "$file" > ours.qcow2 || return 1
    python3 "$REFERENCE" "$@" "$file" > theirs.qcow2 || return 1
    cmp ours.qcow2 theirs.qcow2
}

make_image disk.raw $((5 * 1024 * 1024 + 1234))
for cluster_size in 512 1024 2048 4096 8192 16384 32768 65536 131072 262144 524288 1048576 2097152; do
    check "-c $cluster_size: same bytes" same_as_reference disk.raw -c "$cluster_size"
done
for bits in 1 2 4 8 32 64; do
    for cluster_size in 512 65536; do
        check "-c $cluster_size -r $bits: same bytes" same_as_reference disk.raw -c "$cluster_size" -r "$bits"
    done
done
for cluster_size in 1024 4096 65536 2097152; do
    check "-d -c $cluster_size: same bytes" same_as_reference disk.raw -d -c "$cluster_size"
    check "-R -c $cluster_size: same bytes" same_as_reference disk.raw -R -c "$cluster_size"
done
check "-d -r 1: same bytes" same_as_reference disk.raw -d -r 1

# Many small runs: every other 512-byte sector holds data.
rm -f striped.raw; truncate -s 1M striped.raw
for i in $(seq 0 2 200); do printf 'x' | write_at striped.raw $((i * 512 + 100)); done
check "alternating sectors at -c 512: same bytes" same_as_reference striped.raw -c 512
check "alternating sectors at -c 1024 -r 2: same bytes" same_as_reference striped.raw -c 1024 -r 2

for size in 0 1 511 513 65537; do
    rm -f edge.raw; truncate -s "$size" edge.raw
    [ "$size" -gt 0 ] && printf '\x01' | write_at edge.raw $((size - 1))
    check "size $size: same bytes" same_as_reference edge.raw
    check "size $size with -d: same bytes" same_as_reference edge.raw -d
done

# A data file name as given, relative with directories.
mkdir -p sub/dir && cp disk.raw sub/dir/disk.raw
check "-d with a relative path: same bytes" same_as_reference sub/dir/disk.raw -d
# Enough data for several L2 tables and refcount blocks at -c 512.
head -c 3000000 /dev/urandom > full.raw
check "3 MB of data at -c 512 -r 1: same bytes" same_as_reference full.raw -c 512 -r 1
finish
