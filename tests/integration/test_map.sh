# --map: the input is read only inside the allocation map (qemu-img map or
# rbd diff JSON, from a file or an inherited descriptor); outside it reads
# as zeros.  Every image is checked by qemu-img.
. "$(dirname "$0")/lib.sh"

if ! have qemu-img || ! have python3; then
    skip "allocation maps" "qemu-img or python3 is not installed (Debian packages qemu-utils, python3)"
    finish; exit 0
fi

size=$((4 * 1024 * 1024))
make_image disk.raw "$size"
qemu-img map --output=json -f raw disk.raw > qemu.map
check "without a map: a valid image" \
    bash -c '"$0" disk.raw > plain.qcow2 && qemu-img check -q plain.qcow2' "$Q2S"

# rbd_map QEMU_MAP: the same extents as `rbd diff --format=json` writes
# them (Ceph's rbd.cc: "offset", "length", "exists" as a string).
rbd_map() {
    python3 -c '
import json, sys
out = [{"offset": e["start"], "length": e["length"],
        "exists": "true" if e["data"] else "false"} for e in json.load(open(sys.argv[1]))]
print(json.dumps(out))' "$1"
}
rbd_map qemu.map > rbd.map

# same_as_plain MAP-OPTION...: the stream is plain.qcow2's, byte for byte.
same_as_plain() {
    "$Q2S" "$@" disk.raw > mapped.qcow2 && cmp plain.qcow2 mapped.qcow2
}
check "qemu-img map JSON: the same bytes as without a map" same_as_plain --map=qemu.map
check "rbd diff JSON: the same bytes as without a map" same_as_plain --map=rbd.map
check "--map=fd:3 from a pipe: the same bytes" \
    bash -c '"$0" --map=fd:3 disk.raw 3< <(sleep 0.2; cat rbd.map) > piped.qcow2 &&
        cmp plain.qcow2 piped.qcow2' "$Q2S"
check "--map with --compress and -c 512: a valid image" \
    bash -c '"$0" --map=qemu.map --compress -c 512 disk.raw > small.qcow2' "$Q2S"
check "  ... of the same content" valid_image small.qcow2 disk.raw

# A map that leaves out [1 MiB, 2 MiB), where there is data: that range
# reads as zeros.  Served by nbdkit's log filter, which shows that nothing
# there was read.
cat > partial.map <<'JSON'
[{"offset":0,"length":1048576,"exists":"true"},
 {"offset":1048576,"length":1048576,"exists":"false"},
 {"offset":2097152,"length":2097152,"exists":"true"}]
JSON
cp disk.raw expected.raw
head -c 1048576 /dev/zero | write_at expected.raw 1048576
"$Q2S" --map=partial.map disk.raw > partial.qcow2
check "a region left out of the map reads as zeros" valid_image partial.qcow2 expected.raw
check "  ... and the image differs from the input there" \
    bash -c '! qemu-img compare -q -f raw -F qcow2 disk.raw partial.qcow2'
# reads_outside LOG START END: no read in nbdkit's log meets [START, END),
# and there was at least one.
reads_outside() {
    local line offset count reads=0
    while IFS= read -r line; do
        offset=${line##* offset=}; offset=$((${offset%% *}))
        count=${line##* count=}; count=$((${count%% *}))
        reads=$((reads + 1))
        if [ $((offset + count)) -gt "$2" ] && [ "$offset" -lt "$3" ]; then
            echo "read of $count bytes at $offset"; return 1
        fi
    done < <(grep ' Read ' "$1" | grep -v ' return=')
    [ "$reads" -gt 0 ] || { echo "no reads logged"; return 1; }
}
if have nbdkit; then
    rm -f reads.log
    Q2S=$Q2S nbdkit -U - --filter=log file disk.raw logfile="$scratch/reads.log" \
        --run '"$Q2S" --map=partial.map "$uri" > nbd.qcow2' 2> nbdkit.err
    check "through NBD: the same image" cmp partial.qcow2 nbd.qcow2
    check "  ... and nothing in the left-out region was read" \
        reads_outside reads.log 1048576 2097152
else
    skip "reads left out, through NBD" "nbdkit is not installed (Debian package nbdkit)"
fi

# Unsorted and overlapping extents that together cover the data.
cat > unsorted.map <<'JSON'
[{"start":2000000,"length":2194304,"data":true},
 {"start":0,"length":500000,"data":true},
 {"start":60000,"length":1000000,"data":true},
 {"start":1000500,"length":1200000,"data":true},
 {"start":3000000,"length":10,"data":true}]
JSON
"$Q2S" --map=unsorted.map disk.raw > unsorted.qcow2
check "unsorted, overlapping extents: a valid image of the input" \
    valid_image unsorted.qcow2 disk.raw
echo '[]' > empty.map
"$Q2S" --map=empty.map disk.raw > empty.qcow2
truncate -s "$size" zeros.raw
check "an empty map: an image of zeros" valid_image empty.qcow2 zeros.raw

# Failures: one line, exit status 1 (2 for a usage error).
echo '[{"offset":0,"length":4194305,"exists":"true"}]' > past.map
check "an extent past the end of the input" \
    fails 1 "the map's extent at offset 0 (4194305 bytes) reaches past the end of the input" \
    "$Q2S" --map=past.map disk.raw
printf '[{"start":0,"length":1,"data":true},{"start":5}]' > bad.map
check "bad JSON names the element and the key" \
    fails 1 'bad.map: map JSON: element 1: missing key "length"' "$Q2S" --map=bad.map disk.raw
printf 'not json' > garbage.map
check "text that is not JSON" fails 1 "garbage.map: map JSON: " "$Q2S" --map=garbage.map disk.raw
python3 -c 'print("[" * 10000 + "]" * 10000)' > deep.map
check "deep nesting" fails 1 "deep.map: map JSON: .*nesting too deep" "$Q2S" --map=deep.map disk.raw
check "a missing file" fails 1 "missing.map: No such file or directory" \
    "$Q2S" --map=missing.map disk.raw
check "a closed descriptor" fails 1 "fd:9: Bad file descriptor" "$Q2S" --map=fd:9 disk.raw
check "fd: without a number is a usage error" fails 2 "invalid --map 'fd:x'" \
    "$Q2S" --map=fd:x disk.raw
check "--map with -R is a usage error" fails 2 "--map has no use with -R" \
    "$Q2S" -R --map=qemu.map disk.raw

# A map of 100 MB (800,000 qemu-img map entries) of a sparse 800 GiB input:
# parsed an entry at a time, so memory stays far below what json-c takes
# for the whole tree (1.3 GB).
if [ -n "${Q2S_VALGRIND_PROGRAM:-}" ]; then
    skip "a 100 MB map in bounded memory" "the program runs under valgrind"
elif [ ! -x /usr/bin/time ]; then
    skip "a 100 MB map in bounded memory" "/usr/bin/time is not installed"
else
    entries=800000
    truncate -s $((entries * 1024 * 1024)) huge.raw
    python3 - "$entries" <<'PY'
import sys
n = int(sys.argv[1])
with open("huge.map", "w") as f:
    f.write("[")
    for i in range(n):
        start = i << 20
        f.write('%s{ "start": %d, "length": 65536, "depth": 0, "present": true, '
                '"zero": false, "data": true, "compressed": false, "offset": %d}\n'
                % ("," if i else "", start, start))
    f.write("]\n")
PY
    # A sanitizer's shadow memory says nothing about the tool's own.
    rss_limit=$((300 * 1024))
    if ldd "$Q2S" 2> /dev/null | grep -q 'libasan'; then
        rss_limit=""
    fi
    huge_map_within() {
        /usr/bin/time -f %M -o rss.txt "$Q2S" --measure --map=huge.map huge.raw > huge.size ||
            return 1
        echo "max RSS $(tail -n 1 rss.txt) KiB for a map of $(stat -c %s huge.map) bytes"
        [ -z "$rss_limit" ] || [ "$(tail -n 1 rss.txt)" -lt "$rss_limit" ] ||
            { echo "above $rss_limit KiB"; return 1; }
    }
    check "a 100 MB map${rss_limit:+: max RSS below 300 MiB}" huge_map_within
    rm -f huge.map huge.raw
fi

# A block device, which has no SEEK_DATA: with the map of its file, the
# same image as from the file.
reason=""
if [ "$(id -u)" != 0 ]; then
    reason="not running as root, so no loop device can be set up"
elif ! have losetup; then
    reason="no losetup (Debian package mount)"
elif ! device=$(losetup --find --show --read-only disk.raw 2> loop.err); then
    reason="cannot set up a loop device: $(head -n 1 loop.err)"
fi
if [ -n "$reason" ]; then
    skip "a block device with a map" "$reason"
else
    cleanup_hooks+=("losetup -d '$device'")
    check "a block device with the map of its file: the file's image" \
        bash -c '"$0" --map=qemu.map "$1" > device.qcow2 && cmp plain.qcow2 device.qcow2' \
        "$Q2S" "$device"
    "$Q2S" --map=partial.map "$device" > device-partial.qcow2
    check "  ... and with a partial map, zeros where it leaves out" \
        valid_image device-partial.qcow2 expected.raw
fi
finish
