# Memory with many threads: what the compression threads work on fits a
# budget whatever -j says, and the bytes stay those of -j 2.
. "$(dirname "$0")/lib.sh"

if [ -n "${Q2S_VALGRIND_PROGRAM:-}" ]; then
    skip "memory with many threads" "256 MiB through valgrind would take minutes"
    finish
    exit 0
fi
if [ ! -x /usr/bin/time ]; then
    skip "memory with many threads" "/usr/bin/time is not installed"
    finish
    exit 0
fi
# A sanitizer's shadow memory and quarantine make RSS say nothing about
# the tool's own buffers: then only the bytes are checked.
measured=yes
if ldd "$Q2S" 2> /dev/null | grep -q 'libasan\|libtsan\|libmsan'; then
    measured=""
fi
# The tool's max RSS must stay below this: the batches' budget (64 MiB)
# and a compressor per thread started, with room to spare (it measured 43
# to 64 MiB).  Before the budget, -j 1024 held the whole 256 MiB input in
# its batches (288 MiB and more).
RSS_LIMIT_KIB=$((128 * 1024))

# 256 MiB, every block written (allocated, so every cluster is read): each
# 64 KiB starts with a few hundred bytes of numbered text and is zeros
# after, so that every cluster compresses, to little: the cache stays
# small, and zstd makes each conversion take a fraction of a second.
python3 - <<'PY'
with open("allocated.raw", "wb") as f:
    for i in range(4096):
        head = b" ".join(b"block %d line %d" % (i, j) for j in range(i % 40 + 1))
        f.write(head.ljust(65536, b"\0"))
PY

# converted_within CLUSTER_SIZE THREADS: the stream from -j THREADS is the
# one from -j 2, and the tool's max RSS stays below the limit.
converted_within() {
    local cs=$1 threads=$2 rss
    "$Q2S" --compress=zstd -c "$cs" -j 2 allocated.raw > two.qcow2 || return 1
    /usr/bin/time -f %M -o rss.txt "$Q2S" --compress=zstd -c "$cs" \
        -j "$threads" allocated.raw > many.qcow2 || return 1
    cmp two.qcow2 many.qcow2 || return 1
    rss=$(tail -n 1 rss.txt)
    echo "max RSS $rss KiB with -c $cs -j $threads"
    [ -z "$measured" ] || [ "$rss" -lt "$RSS_LIMIT_KIB" ] ||
        { echo "above $RSS_LIMIT_KIB KiB"; return 1; }
}
for cs in 2M 64K; do
    check "-c $cs -j 1024: same bytes as -j 2${measured:+, max RSS below 128 MiB}" \
        converted_within $cs 1024
done
check "the stream is valid" valid_image many.qcow2 allocated.raw
finish
