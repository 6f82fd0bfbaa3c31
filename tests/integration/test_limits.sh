# QEMU's limits on the images it opens (qcow2_do_open in QEMU's
# block/qcow2.c): the largest image under a limit opens in QEMU, the next
# size is refused with one line that names the limit, before anything is
# written, and by --measure too.
. "$(dirname "$0")/lib.sh"

GiB=$((1024 * 1024 * 1024))

# sparse FILE SIZE: a sparse file of SIZE bytes whose last byte is data.
sparse() {
    rm -f "$1"
    truncate -s "$2" "$1"
    printf 'x' | write_at "$1" $(($2 - 1))
}

# refused PATTERN ARGS...: the conversion and --measure both exit 1 with
# one line matching PATTERN, and write nothing to stdout.  usage_refused:
# the same with status 2, for a limit of the options alone.
usage_refused() { local status=2; refused "$@"; }
refused() {
    local pattern=$1 want=${status:-1}; shift
    fails "$want" "$pattern" "$Q2S" "$@" || return 1
    [ ! -s out.bin ] || { echo "$(stat -c %s out.bin) bytes on stdout"; return 1; }
    fails "$want" "$pattern" "$Q2S" --measure "$@" || return 1
    [ ! -s out.bin ] || { echo "--measure printed: $(head -c 100 out.bin)"; return 1; }
}

# --- The L1 table: QCOW_MAX_L1_SIZE, 32 MiB, 4 Mi entries ---------------
# At 512-byte clusters an L2 table maps 64 clusters: 128 GiB at most.  The
# largest image is a complete 34 MB stream.
sparse l1.raw $((128 * GiB))
check "L1 limit: 128 GiB at 512-byte clusters converts" \
    bash -c "'$Q2S' -c 512 l1.raw > l1.qcow2"
check "L1 limit: qemu-img check and compare accept it" valid_image l1.qcow2 l1.raw
l1_info() { qemu-img info --output=json l1.qcow2 > info.json && grep -q '"virtual-size": 137438953472' info.json; }
check "L1 limit: qemu-img info opens it" l1_info
rm -f l1.qcow2
sparse l1.raw $((128 * GiB + 512))
check "L1 limit: 128 GiB + 512 bytes is refused, by --measure too" \
    refused "the L1 table would take 4194305 entries, more than QEMU's limit of 32 MiB (4194304 entries of 8 bytes): use a larger cluster size$" \
    -c 512 l1.raw
rm -f l1.raw

# --- The header cluster: header and extensions in the first cluster -----
# (qcow2_read_extensions: "Header extension too large".)  At 1024-byte
# clusters: 112 header bytes, 8 + 512 for the data file name, 8 + 384 for
# the feature name table fill it exactly.
name=$(printf 'd/%.0s' $(seq 1 252))
mkdir -p "$name"
head -c 4096 /dev/urandom > "${name}data.raw"   # 512 bytes of name
cp "${name}data.raw" "${name}xdata.raw"         # 513
check "header limit: a 512-byte data file name fills a 1 KiB header cluster" \
    bash -c "'$Q2S' -d -c 1024 '${name}data.raw' > named.qcow2 && qemu-img check -f qcow2 named.qcow2 > /dev/null && qemu-img compare -f raw -F qcow2 '${name}data.raw' named.qcow2"
check "header limit: a 513-byte name is a usage error, with --measure too" \
    usage_refused "the data file name is too long" -d -c 1024 "${name}xdata.raw"

# --- The refcount table: QCOW_MAX_REFTABLE_SIZE, 8 MiB -------------------
# 2^20 refcount blocks: at 512-byte clusters and 64-bit refcounts, 2^26
# clusters, 32 GiB.  Only data fills it (a sparse file at the L1 limit has
# a 17-cluster table), so the input is nbdkit's pattern plugin, in which
# every cluster holds data: 31 GiB to read per run, about 20 seconds each.
# 65012214 data clusters (33286253568 bytes) make exactly 16384 table
# clusters.
refcount_max=33286253568
if [ "${Q2S_SLOW_TESTS:-0}" != 1 ]; then
    for name in "refcount limit: the largest table opens in qemu-img" \
        "refcount limit: one more cluster is refused, by --measure too"; do
        skip "$name" "reads 2 x 31 GiB from nbdkit; set Q2S_SLOW_TESTS=1"
    done
elif ! have nbdkit; then
    for name in "refcount limit: the largest table opens in qemu-img" \
        "refcount limit: one more cluster is refused, by --measure too"; do
        skip "$name" "nbdkit is not installed (Debian package nbdkit)"
    done
else
    # serve_pattern SIZE: nbdkit's pattern plugin on a socket in the
    # scratch directory, a child of this shell, stopped at the end.
    nbdkit_pid=""
    stop_nbdkit() {
        [ -n "$nbdkit_pid" ] || return 0
        kill "$nbdkit_pid" 2>/dev/null
        wait "$nbdkit_pid" 2>/dev/null
        nbdkit_pid=""
    }
    cleanup_hooks+=(stop_nbdkit)
    serve_pattern() {
        local i
        stop_nbdkit
        rm -f "$scratch/nbdkit.pid" "$scratch/pattern.sock"
        nbdkit -f --exit-with-parent -P "$scratch/nbdkit.pid" \
            -U "$scratch/pattern.sock" pattern size="$1" \
            < /dev/null > /dev/null 2>> "$scratch/nbdkit.log" &
        nbdkit_pid=$!
        for ((i = 0; i < 200; i++)); do
            [ -s "$scratch/nbdkit.pid" ] && return 0
            sleep 0.05
        done
        return 1
    }
    uri="nbd+unix:///?socket=$scratch/pattern.sock"

    # The header and the whole refcount table (1 + 16384 clusters) are
    # enough for qemu-img info, which reads the header, the refcount table
    # and the L1 table (past the end of the file, it reads zeros).
    largest_reftable() {
        serve_pattern "$refcount_max" || return 1
        "$Q2S" -c 512 -r 64 --length=$((512 * (1 + 16384))) "$uri" > reftable.qcow2 ||
            return 1
        [ "$(od -An -tx1 -j 56 -N 4 reftable.qcow2 | tr -d ' ')" = 00004000 ] ||
            { echo "refcount_table_clusters is not 16384"; return 1; }
        qemu-img info -f qcow2 reftable.qcow2 > /dev/null
    }
    check "refcount limit: the largest table opens in qemu-img" largest_reftable
    rm -f reftable.qcow2
    serve_pattern $((refcount_max + 512))
    check "refcount limit: one more cluster is refused, by --measure too" \
        refused "the refcount table would take 16385 clusters, more than QEMU's limit of 8 MiB (16384 clusters of 512 bytes): use a larger cluster size or a narrower refcount width$" \
        -c 512 -r 64 "$uri"
    stop_nbdkit
fi
finish
