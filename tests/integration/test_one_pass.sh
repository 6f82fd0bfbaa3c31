# --one-pass (issue 21): the clusters the input reports as data are the
# image's, nothing is read before the stream is written, and each byte is
# read once.  Checked with qemu-img check and compare, for files, a block
# device, -f images and NBD servers (nbdkit, qemu-nbd); --measure and byte
# ranges agree with the stream; faults give one line and status 1; what a
# server reports is followed, and what no export can hold is refused.
. "$(dirname "$0")/lib.sh"

if ! have qemu-img; then
    skip "--one-pass" "qemu-img is not installed (Debian package qemu-utils)"
    finish
    exit 0
fi
MiB=$((1024 * 1024))

# one_pass_ok INPUT RAW OPTION...: --one-pass of INPUT is a valid image
# that reads as RAW, --measure says its size, and a byte range of it is
# the same bytes as the range written alone.  Leaves one.qcow2.
one_pass_ok() {
    local input=$1 raw=$2; shift 2
    local size half
    timeout 60 "$Q2S" --one-pass "$@" "$input" > one.qcow2 ||
        { echo "the conversion failed"; return 1; }
    valid_image one.qcow2 "$raw" || return 1
    size=$("$Q2S" --one-pass --measure "$@" "$input") || return 1
    [ "$size" = "$(stat -c %s one.qcow2)" ] ||
        { echo "--measure says $size, the stream has $(stat -c %s one.qcow2)"; return 1; }
    half=$((size / 2 + 12345))
    "$Q2S" --one-pass --offset="$half" --length=300000 "$@" "$input" > part.bin || return 1
    tail -c +$((half + 1)) one.qcow2 | head -c 300000 | cmp - part.bin
}

# data_at IMAGE OFFSET LENGTH WANT: qemu-img map says guest bytes [OFFSET,
# OFFSET + LENGTH) are stored as data (WANT true) or not (false).
data_at() {
    qemu-img map --output=json -f qcow2 "$1" | python3 -c '
import json, sys
offset, length, want = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "true"
for e in json.load(sys.stdin):
    if e["start"] < offset + length and e["start"] + e["length"] > offset:
        if e["data"] != want:
            sys.exit("%s at %d, not %s" % (e, offset, want))' "$2" "$3" "$4"
}

# --- 1. Files: SEEK_DATA says where the data is ----------------------------
make_image disk.raw $((6 * MiB))
for c in 512 4096 65536 2M; do
    check "a file, -c $c: valid, reads as the file; --measure and a range agree" \
        one_pass_ok disk.raw disk.raw -c "$c"
done
check "a file, -r 1: valid, the same" one_pass_ok disk.raw disk.raw -r 1
# make_image writes 256 KiB of zeros at 819200: allocated in the file, so
# data in the image (clusters 13 and 14 hold nothing else); the default
# leaves them out.  From 3000000 on the file is a hole.
if one_pass_ok disk.raw disk.raw > /dev/null 2>&1; then
    check "zeros the file allocates are stored as data" data_at one.qcow2 851968 131072 true
    "$Q2S" disk.raw > two.qcow2
    check "... which the default leaves out" data_at two.qcow2 851968 131072 false
    check "a hole of the file is not stored" data_at one.qcow2 $((3 * MiB)) $((2 * MiB)) false
else
    not_ok "--one-pass of a file"
fi
truncate -s 1G hole.raw
check "a file that is one hole: valid, no data" one_pass_ok hole.raw hole.raw
check "... and the size of the default's image" \
    test "$("$Q2S" --one-pass --measure hole.raw)" = "$("$Q2S" --measure hole.raw)"
# The last cluster reaches past an odd-sized input.
make_image odd.raw 3000001
check "a size that is not a multiple of 512: valid, the same" one_pass_ok odd.raw odd.raw
check "-d: the file is the data file" \
    bash -c '"$0" --one-pass -d disk.raw > d.qcow2 && qemu-img check -q d.qcow2 &&
             qemu-img compare -f raw -F qcow2 disk.raw d.qcow2' "$Q2S"
printf '[{"start": 0, "length": 1048576, "depth": 0, "present": true, "zero": false, "data": true, "offset": 0}]' > map.json
head -c $MiB disk.raw > first.raw && truncate -s $((6 * MiB)) first.raw
check "--map: the map's extents are the data" one_pass_ok disk.raw first.raw --map=map.json

# --- 2. What one pass cannot do ---------------------------------------------
check "standard input: a usage error that says why" \
    fails 2 "--one-pass needs an input that says where its data lies" "$Q2S" --one-pass - < disk.raw
check "--compress: a usage error that says why" \
    fails 2 "--one-pass cannot compress" "$Q2S" --one-pass --compress disk.raw
check "--diff: a usage error" \
    fails 2 "--one-pass cannot write a delta" "$Q2S" --one-pass --diff=disk.raw disk.raw

# --- 3. A block device -------------------------------------------------------
if [ "$(id -u)" != 0 ] || ! have losetup; then
    skip "a block device" "needs root and losetup"
elif ! device=$(losetup --find --show --read-only disk.raw 2> /dev/null); then
    skip "a block device" "no loop device here"
else
    cleanup_hooks+=("losetup -d '$device'")
    check "a loop device: valid, reads as the file" one_pass_ok "$device" disk.raw
fi

# --- 4. -f images: qemu-nbd's block status -----------------------------------
qemu-img create -q -f qcow2 img.qcow2 8M
qemu-io -f qcow2 -c 'write -P 0x41 0 1M' -c 'write -z 1M 1M' -c 'write -P 0 3M 64k' \
    -c 'write -P 0x42 7M 100k' img.qcow2 > /dev/null
qemu-img convert -f qcow2 -O raw img.qcow2 img.raw
check "-f qcow2: valid, reads as the image" one_pass_ok img.qcow2 img.raw -f qcow2
if [ -s one.qcow2 ]; then
    check "-f qcow2: its zero clusters are not stored" data_at one.qcow2 $MiB $MiB false
    check "-f qcow2: zeros written as data are stored as data" data_at one.qcow2 $((3 * MiB)) 65536 true
fi
qemu-img convert -f raw -O vmdk disk.raw disk.vmdk
check "-f vmdk: valid, reads as the file" one_pass_ok disk.vmdk disk.raw -f vmdk

# --- 5. NBD servers ------------------------------------------------------------
if ! have nbdkit; then
    skip "NBD servers" "nbdkit is not installed (Debian package nbdkit)"
    finish
    exit 0
fi
. "$top/tests/integration/nbdkit.sh"

# no_reads LOG: the log filter saw a connection and no read.
no_reads() {
    if grep ' Read id=' "$1"; then return 1; fi
    grep -q ' Connect ' "$1" || { echo "no connection in the log"; return 1; }
}

# reads_once LOG: nbdkit's log filter saw reads, and no byte was read twice.
reads_once() {
    grep ' Read id=' "$1" | sed 's/.* offset=\([0-9a-fx]*\) count=\([0-9a-fx]*\).*/\1 \2/' |
        python3 -c '
import sys
reads = sorted((int(o, 0), int(c, 0)) for o, c in (l.split() for l in sys.stdin))
if not reads:
    sys.exit("no read at all")
for (o1, c1), (o2, c2) in zip(reads, reads[1:]):
    if o1 + c1 > o2:
        sys.exit("bytes read twice: %d+%d and %d+%d" % (o1, c1, o2, c2))'
}

# The file plugin, its reads logged.
if serve file -r --filter=log file "$scratch/disk.raw" logfile="$scratch/file.log"; then
    check "nbdkit file: valid, reads as the file; --measure and a range agree" \
        one_pass_ok "$uri" disk.raw
    # The log of one run: what the log filter wrote after line $1.
    log_since() { tail -n +$(($1 + 1)) file.log > run.log; }
    lines=$(wc -l < file.log)
    timeout 60 "$Q2S" --one-pass "$uri" > one.qcow2
    log_since "$lines"
    check "nbdkit file: each byte read once" reads_once run.log
    check "nbdkit file: the same bytes as from the file itself" \
        bash -c '"$0" --one-pass disk.raw | cmp - one.qcow2' "$Q2S"
    lines=$(wc -l < file.log)
    timeout 60 "$Q2S" --one-pass --measure "$uri" > /dev/null
    log_since "$lines"
    check "nbdkit file: --measure reads nothing" no_reads run.log
    stop_server
else
    not_ok "nbdkit file plugin starts"
fi

# The memory plugin, written through NBD, and sparse-random.
if serve mem memory size=16M; then
    qemu-io -f raw -c "write -P 0x17 5M 2M" -c "write -P 0x18 100k 300k" \
        -c "write -P 0x19 $((16 * MiB - 4096)) 4096" "$uri" > /dev/null
    qemu-img convert -f raw -O raw "$uri" mem.raw
    check "nbdkit memory: valid, reads as the export" one_pass_ok "$uri" mem.raw
    stop_server
else
    not_ok "nbdkit memory plugin starts"
fi
if have_plugin sparse-random &&
    serve sparse sparse-random size=64M seed=42 percent=10; then
    qemu-img convert -f raw -O raw "$uri" sparse.raw
    check "nbdkit sparse-random: valid, reads as the export" one_pass_ok "$uri" sparse.raw
    check "... and smaller than the export" \
        test "$(stat -c %s one.qcow2)" -lt $((16 * MiB))
    stop_server
else
    skip "nbdkit sparse-random" "no sparse-random plugin"
fi

# qemu-nbd of a qcow2 with zero clusters.
if have qemu-nbd; then
    rm -f qn.sock
    qemu-nbd --fork --persistent --pid-file="$scratch/qn.pid" -r -f qcow2 \
        -k "$scratch/qn.sock" img.qcow2
    cleanup_hooks+=('kill "$(cat "$scratch/qn.pid")" 2> /dev/null')
    uri="nbd+unix:///?socket=$scratch/qn.sock"
    check "qemu-nbd of a qcow2: valid, reads as the image" one_pass_ok "$uri" img.raw
    check "... its zero clusters are not stored" data_at one.qcow2 $MiB $MiB false
    kill "$(cat qn.pid)"
else
    skip "qemu-nbd of a qcow2" "no qemu-nbd"
fi

# --- 6. Faults ------------------------------------------------------------------
if serve eio -r --filter=error file "$scratch/disk.raw" error=EIO error-pread-rate=100%; then
    check "every read fails: one line with the offset, status 1" \
        fails 1 "read error at offset [0-9]*: .*Input/output error" "$Q2S" --one-pass "$uri"
    check "... and the stream stops before its data" \
        test "$(stat -c %s out.bin)" -lt "$("$Q2S" --one-pass --measure "$uri")"
    stop_server
fi
if serve eext -r --filter=error file "$scratch/disk.raw" error-extents-rate=100%; then
    check "block status fails: one line, status 1" \
        fails 1 "block status" "$Q2S" --one-pass "$uri"
    check "... nothing written" test ! -s out.bin
    stop_server
fi
# The server is killed while the tool is blocked on a full pipe.  (bash
# reports the killed job, and nbdkit 1.32 may abort when a client drops
# requests in flight, on stderr: hidden while these run.)
exec 3>&2 2> /dev/null
# 64 MiB of data: far more than the pipe holds, so the kill comes while
# the tool still reads.
if have_plugin pattern && serve killed pattern size=64M; then
    check "the server is killed mid-stream: status 1, one line, a short stream" \
        killed_mid_stream --one-pass
    stop_server
fi
if have_plugin pattern && serve slow --filter=delay pattern size=4M delay-read=5; then
    stalled() {
        local start=$SECONDS
        fails 1 "did not answer for 1 s while reading at offset 0" "$Q2S" --one-pass --timeout=1 "$uri" || return 1
        [ $((SECONDS - start)) -le "$(limit 4)" ] || { echo "took $((SECONDS - start)) s"; return 1; }
    }
    check "a server that stalls, --timeout=1: one line, status 1, within 4 s" stalled
    stop_server
fi
exec 2>&3 3>&-

# --- 7. Servers whose block status lies -------------------------------------------
# Holes that hold data: the image follows the report (documented), so the
# data is not in it; so does the default, which never reads a hole.
if have_plugin sh; then
    cat > holes.sh <<'SH'
#!/bin/bash
case "$1" in
    get_size) stat -c %s "$DISK" ;;
    can_extents) exit 0 ;;
    extents) echo "0 $3 hole,zero" ;;
    pread) dd if="$DISK" skip="$4" count="$3" iflag=skip_bytes,count_bytes status=none ;;
    thread_model) echo parallel ;;
    *) exit 2 ;;
esac
SH
    chmod +x holes.sh
    if DISK="$scratch/disk.raw" serve holes sh "$scratch/holes.sh"; then
        truncate -s $((6 * MiB)) zeros.raw
        check "block status says all is zeros: the image follows it (all zeros)" \
            one_pass_ok "$uri" zeros.raw
        check "... as does the default" \
            bash -c '"$0" "$1" > two.qcow2 && qemu-img compare -q -f raw -F qcow2 zeros.raw two.qcow2' "$Q2S" "$uri"
        stop_server
    fi
else
    skip "a server whose block status lies" "no nbdkit sh plugin"
fi

# Data reported past the export's end, which nbdkit cannot send: refused.
# lying_server NAME EXTENT_BYTES: nbd_lying_server.py on NAME.sock, a 1 MiB
# export whose every extent is EXTENT_BYTES of data; sets uri.
lying_server() {
    rm -f "$1.sock" "$1.ready"
    python3 "$top/tests/integration/nbd_lying_server.py" "$scratch/$1.sock" \
        "$scratch/$1.ready" $MiB "$2" &
    cleanup_hooks+=("kill $! 2> /dev/null")
    uri="nbd+unix:///?socket=$scratch/$1.sock"
    local i
    for ((i = 0; i < 100; i++)); do [ -e "$1.ready" ] && return 0; sleep 0.05; done
    echo "# nbd_lying_server.py did not start"; return 1
}
printf '\x5a%.0s' $(seq 1024) > 5a.bin
for i in $(seq 1024); do cat 5a.bin; done > 5a.raw
if ! have python3; then
    skip "a server that reports data past the end" "no python3"
elif lying_server honest $MiB; then
    check "the lying server's honest mode: valid, reads as its data" one_pass_ok "$uri" 5a.raw --connections=1
    lying_server past $((2 * MiB))
    check "block status says there is data past the end: one line, status 1" \
        fails 1 "data past the end of the export" "$Q2S" --one-pass "$uri"
    lying_server past2 $((2 * MiB))
    check "... the default refuses it too" \
        fails 1 "data past the end of the export" "$Q2S" "$uri"
fi

finish
