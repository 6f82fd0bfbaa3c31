# XAPI's fork of the script (qcow2-to-stdout-xapi.py): its options and its
# bytes where it is right; right where it is wrong.
. "$(dirname "$0")/lib.sh"

FORK=${Q2S_XAPI_REFERENCE:-$top/../shared/reference/qcow2-to-stdout-xapi.py}
if ! have qemu-img || ! have python3; then
    skip "the XAPI fork's options" "needs qemu-img (qemu-utils) and python3"
    finish; exit 0
fi
fork_reason=""
[ -f "$FORK" ] || fork_reason="no XAPI fork at $FORK"

M=/dev/null I=/dev/null DM=/dev/null DI=/dev/null
# ours ARGS...: our program with the maps $M $I $DM $DI on fds 3 to 6.
ours() { "$Q2S" "$@" 3<"$M" 4<"$I" 5<"$DM" 6<"$DI"; }
fork() { python3 "$FORK" "$@" 3<"$M" 4<"$I" 5<"$DM" 6<"$DI"; }
# fails_ours STATUS PATTERN ARGS...: lib.sh's fails, on ours with the maps.
fails_ours() {
    fails "$1" "$2" "$Q2S" "${@:3}" 3<"$M" 4<"$I" 5<"$DM" 6<"$DI"
}
MAPS=(--json-header-map 3 --json-header-info 4)
DIFF_MAPS=(--json-header-diff-map 5 --json-header-diff-info 6)

# same_as_fork ARGS...: both write the same bytes (ours in ours.qcow2).
same_as_fork() {
    ours "$@" > ours.qcow2 || return 1
    fork "$@" > fork.qcow2 || return 1
    cmp ours.qcow2 fork.qcow2
}

# delta_reads_as DELTA BASE INPUT: the delta, given a copy of BASE as its
# raw backing file (qemu-img rebase -u), reads as INPUT.
delta_reads_as() {
    cp "$2" backing.raw
    qemu-img check -q "$1" || return 1
    qemu-img rebase -u -b "$scratch/backing.raw" -F raw "$1" || return 1
    qemu-img compare -f raw -F qcow2 "$3" "$1"
}

# maps_of NAME: NAME.map and NAME.info from NAME.qcow2, as XAPI makes them.
maps_of() {
    qemu-img map --output=json "$1.qcow2" > "$1.map"
    qemu-img info --output=json "$1.qcow2" > "$1.info"
}

# Disks whose size is not a multiple of the cluster size, with data up to
# their last bytes; a base that shares some of the input's data; a base
# that is smaller and one that is larger.
python3 - <<'PY'
import random
MiB = 1 << 20
def make(name, size, writes):
    with open(name, "wb") as f:
        f.truncate(size)
        for offset, length, seed in writes:
            f.seek(offset)
            f.write(random.Random(seed).randbytes(length))
shared = [(0, 100000, 1), (5 * MiB, 3 * MiB, 2), (20 * MiB + 7, 70000, 3)]
make("base.raw", 40 * MiB + 1536, shared + [(39 * MiB, MiB, 4)])
make("in.raw", 40 * MiB + 1536,
     shared + [(6 * MiB, 4096, 9), (30 * MiB, 200000, 5), (40 * MiB, 1536, 6)])
make("in_nolast.raw", 40 * MiB + 1536, shared + [(30 * MiB, 200000, 5)])
make("small_base.raw", 24 * MiB, shared)
make("big_base.raw", 48 * MiB, shared + [(45 * MiB, MiB, 7)])
PY
for name in base in in_nolast small_base big_base; do
    qemu-img convert -O qcow2 "$name.raw" "$name.qcow2" && maps_of "$name"
done

# Without maps.
check "plain: valid" bash -c "'$Q2S' in.raw > plain.qcow2 && qemu-img check -q plain.qcow2 && qemu-img compare -q -f raw in.raw plain.qcow2"
ours --diff base.raw in.raw > delta.qcow2
check "--diff: the delta reads as the input over the base" delta_reads_as delta.qcow2 base.raw in.raw
ours --diff small_base.raw in.raw > delta.qcow2
check "--diff, smaller base: reads as the input" delta_reads_as delta.qcow2 small_base.raw in.raw
ours --diff big_base.raw in.raw > delta.qcow2
check "--diff, larger base: reads as the input" delta_reads_as delta.qcow2 big_base.raw in.raw

# With maps.
M=in.map I=in.info
check "maps: valid, and the last partial cluster's data is kept" \
    bash -c "'$Q2S' ${MAPS[*]} in.raw 3<in.map 4<in.info > maps.qcow2 && qemu-img check -q maps.qcow2 && qemu-img compare -q -f raw in.raw maps.qcow2"
M=in.map I=in.info DM=base.map DI=base.info
ours --diff base.raw "${MAPS[@]}" "${DIFF_MAPS[@]}" in.raw > delta.qcow2
check "--diff with maps: reads as the input" delta_reads_as delta.qcow2 base.raw in.raw
M=in.map I=in.info DM=big_base.map DI=big_base.info
ours --diff big_base.raw "${MAPS[@]}" "${DIFF_MAPS[@]}" in.raw > delta.qcow2
check "--diff with maps, larger base: reads as the input" delta_reads_as delta.qcow2 big_base.raw in.raw
M=big_base.map I=big_base.info DM=in.map DI=in.info
ours --diff in.raw "${MAPS[@]}" "${DIFF_MAPS[@]}" big_base.raw > delta.qcow2
check "--diff with maps, larger input: reads as the input" delta_reads_as delta.qcow2 in.raw big_base.raw

# The JSON arrives on pipes that the parent fills in its own order: here
# the base's large map first, while we might be reading the input's.
python3 - <<'PY'
import json
entries = [{"start": i * 131072, "length": 65536, "depth": 0, "present": True,
            "zero": False, "data": True, "offset": 1 << 20} for i in range(320)]
json.dump(entries, open("striped.map", "w"), indent=4)
PY
cp in.info striped.info
check "four pipes filled in any order: no deadlock" bash -c "
    timeout 60 '$Q2S' --diff base.raw ${MAPS[*]} ${DIFF_MAPS[*]} in.raw \
        3< <(sleep 0.3; cat striped.map) 4< <(sleep 0.6; cat striped.info) \
        5< <(cat striped.map striped.map >/dev/null; cat in.map) 6< <(cat in.info) > piped.qcow2 &&
    qemu-img check -q piped.qcow2"

# Errors: one line, status 1; a bad descriptor number is a usage error.
M=in.map I=in.info DM=base.map DI=base.info
check "a closed descriptor" fails_ours 1 "json-header-map 9: Bad file descriptor" --json-header-map 9 --json-header-info 4 in.raw
printf 'not json' > bad.json
check "a map that is not JSON" fails 1 "json-header-map 3" "$Q2S" "${MAPS[@]}" in.raw 3<bad.json 4<in.info
printf '[{"start": 0, "length": 65536}]' > nodata.map
check "a map entry without data" fails 1 "data" "$Q2S" "${MAPS[@]}" in.raw 3<nodata.map 4<in.info
printf '{"virtual-size": 41944576}' > nocluster.info
check "an info without cluster-size" fails 1 "cluster-size" "$Q2S" "${MAPS[@]}" in.raw 3<in.map 4<nocluster.info
check "a cluster size other than -c" fails_ours 1 "cluster size is 65536" -c 4096 "${MAPS[@]}" in.raw
check "a base that does not exist" fails_ours 1 "no-such-base" --diff no-such-base.raw in.raw
check "a map without its info" fails_ours 1 "needs --json-header-info" --json-header-map 3 in.raw
check "an info without its map" fails_ours 1 "needs --json-header-diff-map" --diff base.raw --json-header-diff-info 6 in.raw
check "--diff with the input's maps but not the base's" fails_ours 1 "base's map" --diff base.raw "${MAPS[@]}" in.raw
check "standard output as a JSON descriptor" fails_ours 2 "invalid descriptor" --json-header-map 1 --json-header-info 4 in.raw
check "a map past the virtual size" fails 1 "past the virtual size" "$Q2S" "${MAPS[@]}" in.raw 3<big_base.map 4<in.info
check "an input smaller than its info says" fails 1 "fewer than the virtual size" "$Q2S" "${MAPS[@]}" small_base.raw 3<in.map 4<in.info
printf '[{"start": 0, "length": 131072, "data": true}, {"start": 65536, "length": 65536, "data": true}]' > overlap.map
check "a base map whose extents overlap" fails 1 "overlapping" "$Q2S" --diff base.raw "${MAPS[@]}" "${DIFF_MAPS[@]}" in.raw 3<in.map 4<in.info 5<overlap.map 6<base.info
check "compression with the fork's maps" fails_ours 1 "compression" --compress "${MAPS[@]}" in.raw
check "--map with --json-header-map" fails_ours 2 "give one of them" --map=in.map "${MAPS[@]}" in.raw

if [ -n "$fork_reason" ]; then
    skip "byte identity with the XAPI fork" "$fork_reason"
    finish; exit 0
fi

# Byte identity with the fork, where it is right.
M=/dev/null I=/dev/null DM=/dev/null DI=/dev/null
check "plain: same bytes as the fork" same_as_fork in.raw
check "--diff: same bytes" same_as_fork --diff base.raw in.raw
check "--diff, smaller base: same bytes" same_as_fork --diff small_base.raw in.raw
check "--diff, same base and input: same bytes" same_as_fork --diff in.raw in.raw
M=in_nolast.map I=in_nolast.info
check "maps: same bytes" same_as_fork "${MAPS[@]}" in_nolast.raw
M=in_nolast.map I=in_nolast.info DM=base.map DI=base.info
check "--diff with maps: same bytes" same_as_fork --diff base.raw "${MAPS[@]}" "${DIFF_MAPS[@]}" in_nolast.raw
M=in_nolast.map I=in_nolast.info DM=small_base.map DI=small_base.info
check "--diff with maps, smaller base: same bytes" same_as_fork --diff small_base.raw "${MAPS[@]}" "${DIFF_MAPS[@]}" in_nolast.raw
M=in_nolast.map I=in_nolast.info DM=base.map DI=base.info
check "the diff's maps without --diff are ignored, as by the fork" \
    same_as_fork "${MAPS[@]}" "${DIFF_MAPS[@]}" in_nolast.raw
for cluster_size in 4096 2097152; do
    for name in in_nolast base; do
        qemu-img convert -O qcow2 -o cluster_size=$cluster_size "$name.raw" "c$name.qcow2" && maps_of "c$name"
    done
    M=cin_nolast.map I=cin_nolast.info DM=cbase.map DI=cbase.info
    check "-c $cluster_size, maps: same bytes" same_as_fork -c "$cluster_size" "${MAPS[@]}" in_nolast.raw
    check "-c $cluster_size, --diff with maps: same bytes" same_as_fork -c "$cluster_size" --diff base.raw "${MAPS[@]}" "${DIFF_MAPS[@]}" in_nolast.raw
done

# Where the fork is wrong.
M=in.map I=in.info
fork "${MAPS[@]}" in.raw > fork.qcow2
check "the fork loses the data of the last partial cluster (not ours)" \
    bash -c "! qemu-img compare -q -f raw in.raw fork.qcow2"
M=/dev/null I=/dev/null
fork --diff big_base.raw in.raw > fork.qcow2 2>/dev/null
check "the fork's delta against a larger base is corrupt (not ours)" \
    bash -c "! qemu-img check -q fork.qcow2 2>/dev/null"

# Random images and maps, as qemu-img would map them.
cases=40
[ -n "${Q2S_VALGRIND_PROGRAM:-}" ] && cases=6
check "$cases random cases: ours right, and the fork's bytes where it is right" \
    python3 "$top/tests/integration/xapi_differential.py" "$Q2S" "$FORK" "$cases" 1

# XAPI's inputs are block devices.
reason=""
if [ "$(id -u)" != 0 ]; then
    reason="not running as root, so no loop device can be set up"
elif ! have losetup; then
    reason="no losetup (Debian package mount)"
elif ! in_dev=$(losetup --find --show --read-only in_nolast.raw 2>loop.err) ||
     ! base_dev=$(losetup --find --show --read-only base.raw 2>loop.err); then
    reason="cannot set up a loop device: $(head -n 1 loop.err)"
fi
if [ -n "$reason" ]; then
    [ -n "${in_dev:-}" ] && losetup -d "$in_dev"
    skip "block devices: same bytes as the fork" "$reason"
    finish; exit 0
fi
cleanup_hooks+=("losetup -d '$in_dev' '$base_dev'")
M=/dev/null I=/dev/null DM=/dev/null DI=/dev/null
check "block device: same bytes as the fork" same_as_fork "$in_dev"
check "block devices, --diff: same bytes" same_as_fork --diff "$base_dev" "$in_dev"
M=in_nolast.map I=in_nolast.info
check "block device, maps: same bytes" same_as_fork "${MAPS[@]}" "$in_dev"
DM=base.map DI=base.info
check "block devices, --diff with maps: same bytes" same_as_fork --diff "$base_dev" "${MAPS[@]}" "${DIFF_MAPS[@]}" "$in_dev"
ours --diff base.raw "${MAPS[@]}" "${DIFF_MAPS[@]}" in_nolast.raw > file.qcow2
check "block devices, --diff with maps: same bytes as with files" cmp ours.qcow2 file.qcow2
finish
