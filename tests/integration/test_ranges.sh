# --offset/--length: ranges of the stream, and --measure.
. "$(dirname "$0")/lib.sh"

make_image disk.raw $((3 * 1024 * 1024 + 1000))
"$Q2S" -c 4096 disk.raw > full.qcow2
size=$(stat -c %s full.qcow2)

check "--measure gives the stream's size" test "$("$Q2S" -c 4096 --measure disk.raw)" = "$size"
json=$("$Q2S" -c 4096 --measure --json disk.raw)
if have python3; then
    check "--measure --json is JSON with the size" python3 -c '
import json, sys
m = json.loads(sys.argv[1])
assert m["size"] == int(sys.argv[2]), m
assert m["virtual-size"] == 3 * 1024 * 1024 + 1024, m
assert m["cluster-size"] == 4096, m
assert m["data-clusters"] > 0, m
assert m["total-clusters"] * 4096 == m["size"], m
' "$json" "$size"
else
    check "--measure --json names the size" grep -q "\"size\": $size" <<<"$json"
fi
for options in "-c 512 -r 1" "-c 65536" "-d" "-R -c 2M"; do
    "$Q2S" $options disk.raw > m.qcow2
    check "--measure $options gives the stream's size" \
        test "$("$Q2S" $options --measure disk.raw)" = "$(stat -c %s m.qcow2)"
done

# ranges OFFSET...: the ranges between consecutive offsets, concatenated,
# give the full stream.
ranges() {
    local previous=0 offset
    : > joined.qcow2
    for offset in "$@" "$size"; do
        "$Q2S" -c 4096 --offset="$previous" --length=$((offset - previous)) disk.raw >> joined.qcow2 || return 1
        previous=$offset
    done
    cmp full.qcow2 joined.qcow2
}
# Inside the header, across metadata kinds, inside and across data
# clusters, at the last byte.
check "ranges at cluster boundaries" ranges 4096 8192 12288 16384
check "ranges at odd offsets" ranges 1 113 4097 9000 20000 100001 $((size - 1))
# Under valgrind, which starts each run in half a second, only the bytes
# next to the cluster boundary (16384) and at both ends: the others take
# the same path, and the plain and sanitizer runs check every one.
one_byte_offsets=$(seq 16000 16400)
if [ -n "${Q2S_VALGRIND_PROGRAM:-}" ]; then
    one_byte_offsets="16000 16001 $(seq 16376 16392) 16399 16400"
fi
check "ranges of one byte around the data start" \
    ranges $one_byte_offsets
check "many ranges of 65537 bytes" ranges $(seq 65537 65537 $((size - 1)))
# Range output into a regular file and into a pipe agree.
"$Q2S" -c 4096 --offset=5000 --length=300000 disk.raw | cat > piped.part
"$Q2S" -c 4096 --offset=5000 --length=300000 disk.raw > file.part
check "range through a pipe and into a file agree" cmp piped.part file.part
check "range is the right slice" cmp file.part <(tail -c +5001 full.qcow2 | head -c 300000)

"$Q2S" -c 4096 --offset=$((size - 100)) --length=1000 disk.raw > tail.part
check "a length past the end stops at the end" test "$(stat -c %s tail.part)" = 100
"$Q2S" -c 4096 --offset="$size" disk.raw > empty.part
check "offset at the end writes nothing" test ! -s empty.part
"$Q2S" -c 4096 --offset=4K --length=0 disk.raw > empty.part
check "length 0 writes nothing" test ! -s empty.part
"$Q2S" -c 4096 --offset=$((size + 1)) disk.raw > beyond.part 2> beyond.err
status=$?
check "offset past the end fails with status 1" test "$status" = 1
check "offset past the end says so" grep -q "beyond the end" beyond.err
check "offset past the end writes nothing" test ! -s beyond.part
"$Q2S" -c 4096 --offset=8K disk.raw > suffix.part
check "size suffixes: --offset=8K" cmp suffix.part <(tail -c +8193 full.qcow2)
finish
