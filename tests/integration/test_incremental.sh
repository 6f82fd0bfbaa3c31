# Incremental backups as qcow2 overlays (-B/-F, --diff with -B, --bitmap):
# a full backup, then increments that each name the previous one as their
# backing file.  Every level is checked by QEMU's own tools: qemu-img
# check, compare against a raw copy of the disk at that time, info
# --backing-chain, convert of the top; which clusters each overlay holds
# itself, and whether as data or as zero clusters, comes from qemu-img map
# and is compared with what the inputs say it must be.
. "$(dirname "$0")/lib.sh"

for tool in qemu-img qemu-io qemu-nbd python3; do
    if ! have "$tool"; then
        skip "incremental backups" "$tool is not installed (Debian packages qemu-utils, python3)"
        finish; exit 0
    fi
done
help_text=$("$Q2S" --help 2>&1)
# has_option OPTION: the tool's --help names it.
has_option() { grep -qE -- "$1([^-a-z]|\$)" <<<"$help_text"; }
if ! has_option --backing-file; then
    not_ok "the tool has -B/--backing-file and -F/--backing-format (issue 11)"
    finish; exit 0
fi

M=$((1024 * 1024))

# --- Helpers -------------------------------------------------------------

# inc.py: what each overlay holds itself, and what it must hold.
#   own IMAGE CS: "INDEX KIND" per cluster the overlay holds itself (depth 0
#     in qemu-img map): data, zero (the zero flag, no data cluster: no
#     offset) or zero-allocated (zero flag with a data cluster).
#   diff BASE INPUT CS: the same, as it must be for INPUT against BASE (a
#     raw file; zeros past its end): the clusters that differ, zero where
#     INPUT's cluster is all zeros.
#   dirty DIRTYMAP INPUT CS: the same, as it must be with a dirty bitmap:
#     every cluster a dirty extent meets (DIRTYMAP is qemu-img map of the
#     export with x-dirty-bitmap: "data": false where dirty), data or zero
#     by INPUT's content (raw).
#   reads TRACE DIRTYMAP CS: every NBD read qemu-nbd traced lies in the
#     dirty clusters, none was asked for twice (pass 2 writes what pass 1
#     kept), and there was at least one.
cat > inc.py <<'PY'
import json, subprocess, sys

def qemu_map(args):
    out = subprocess.run(["qemu-img", "map", "--output=json"] + args,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)

def clusters(start, length, cs):
    return range(start // cs, (start + length + cs - 1) // cs)

def content_kind(f, index, cs):
    f.seek(index * cs)
    data = f.read(cs)
    return "zero" if data.count(0) == len(data) else "data"

def dirty_clusters(dirtymap, cs):
    out = set()
    for e in json.load(open(dirtymap)):
        if not e["data"]:
            out.update(clusters(e["start"], e["length"], cs))
    return out

cmd, args = sys.argv[1], sys.argv[2:]
kinds = {}
if cmd == "own":
    cs = int(args[1])
    for e in qemu_map(["-f", "qcow2", args[0]]):
        if e["depth"] != 0 or not e["present"]:
            continue
        if e["data"]:
            kind = "data"
        elif e["zero"] and "offset" not in e:
            kind = "zero"
        else:
            kind = "zero-allocated"
        for i in clusters(e["start"], e["length"], cs):
            kinds[i] = kind
elif cmd == "diff":
    cs = int(args[2])
    with open(args[0], "rb") as b, open(args[1], "rb") as f:
        i = 0
        while True:
            x = f.read(cs)
            if not x:
                break
            y = b.read(cs)
            y = y[:len(x)] + bytes(max(0, len(x) - len(y)))
            if x != y:
                kinds[i] = "zero" if x.count(0) == len(x) else "data"
            i += 1
elif cmd == "dirty":
    cs = int(args[2])
    with open(args[1], "rb") as f:
        for i in dirty_clusters(args[0], cs):
            kinds[i] = content_kind(f, i, cs)
elif cmd == "reads":
    cs = int(args[2])
    dirty = dirty_clusters(args[1], cs)
    reads = 0
    seen = set()
    for line in open(args[0]):
        if not line.startswith("nbd_co_send_structured_read"):
            continue
        fields = dict(f.split(" = ") for f in line.split(": ", 1)[1].strip().split(", "))
        start, length = int(fields["offset"]), int(fields["len"])
        reads += 1
        outside = [i for i in clusters(start, length, cs) if i not in dirty]
        if outside:
            sys.exit("read of %d bytes at %d: clean cluster %d" % (length, start, outside[0]))
        # Pass 2 writes what pass 1 read: no byte is asked for twice.
        for b in range(start // 512, (start + length) // 512):
            if b in seen:
                sys.exit("sector %d read twice" % b)
            seen.add(b)
    if not reads:
        sys.exit("no read traced")
    sys.exit(0)
for i in sorted(kinds):
    print(i, kinds[i])
PY

# kinds_are IMAGE CS EXPECTED: the overlay holds exactly the clusters listed
# in EXPECTED (inc.py's output), each as data or zero as listed.
kinds_are() {
    python3 inc.py own "$1" "$2" > own.txt || return 1
    if ! diff own.txt "$3" > kinds.diff; then
        echo "clusters the overlay holds (<) against those it must hold (>), cluster size $2:"
        head -n 20 kinds.diff; return 1
    fi
}

# kind_of IMAGE CS START LENGTH KIND: every cluster of [START, START+LENGTH)
# is of KIND in the overlay (data, zero, or backing: not held by it).
kind_of() {
    python3 inc.py own "$1" "$2" > own.txt || return 1
    local i first=$(($3 / $2)) last=$((($3 + $4 - 1) / $2)) got
    for ((i = first; i <= last; i++)); do
        got=$(awk -v i="$i" '$1 == i { print $2 }' own.txt)
        [ "$got" = "${5/backing/}" ] ||
            { echo "cluster $i (at $((i * $2))) is ${got:-backing}, not $5"; return 1; }
    done
}

# level_ok IMAGE RAW: qemu-img check finds nothing, the virtual size is
# RAW's, and the chain reads as RAW.
level_ok() {
    local size
    qemu-img check -q "$1" || { qemu-img check "$1"; return 1; }
    size=$(qemu-img info --output=json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
    [ "$size" = "$(stat -c %s "$2")" ] || { echo "virtual size $size, not $(stat -c %s "$2")"; return 1; }
    qemu-img compare -f raw -F qcow2 "$2" "$1"
}

# chain_is FORMAT TOP IMAGE...: qemu-img info --backing-chain on TOP lists
# TOP and then each IMAGE, each naming the next with format FORMAT.
chain_is() {
    qemu-img info --backing-chain --output=json "$2" > chain.json || return 1
    python3 - "$@" <<'PY'
import json, os, sys
chain = json.load(open("chain.json"))
want = sys.argv[2:]
got = [os.path.basename(i["filename"]) for i in chain]
if got != want:
    sys.exit("chain %s, not %s" % (got, want))
for image, below in zip(chain, want[1:]):
    if os.path.basename(image.get("backing-filename", "")) != below or \
       image.get("backing-filename-format") != sys.argv[1]:
        sys.exit("%s names %r, format %r" % (image["filename"], image.get("backing-filename"),
                                            image.get("backing-filename-format")))
if "backing-filename" in chain[-1]:
    sys.exit("the bottom of the chain has a backing file")
PY
}

# flattens TOP RAW: qemu-img convert of the top of a chain to raw gives RAW.
flattens() {
    qemu-img convert -O raw "$1" flat.raw && cmp flat.raw "$2"
    local status=$?
    rm -f flat.raw
    return $status
}

# backing_name IMAGE: the backing file name in IMAGE's header, as qemu-img
# info reads it.
backing_name() {
    qemu-img info --output=json "$1" |
        python3 -c 'import json,sys; print(json.load(sys.stdin).get("backing-filename", ""))'
}

# small_enough IMAGE CS: the image's size is its own data clusters plus at
# most 1% and 8 clusters of metadata (header, L1, L2, refcount structures).
small_enough() {
    local size data
    size=$(stat -c %s "$1")
    python3 inc.py own "$1" "$2" > own.txt || return 1
    data=$(grep -c ' data$' own.txt)
    echo "$size bytes, $data data clusters of $2 bytes"
    [ "$size" -le $((data * $2 + data * $2 / 100 + 8 * $2)) ]
}

# qio IMAGE COMMAND...: qemu-io commands on a qcow2 image.
qio() {
    local image=$1 c args=(); shift
    for c in "$@"; do args+=(-c "$c"); done
    qemu-io -f qcow2 "${args[@]}" "$image" > qio.log || { cat qio.log; return 1; }
}

# refused STATUS PATTERN COMMAND...: lib.sh's fails, and nothing on stdout.
refused() {
    fails "$@" || return 1
    [ ! -s out.bin ] || { echo "$(stat -c %s out.bin) bytes on stdout"; return 1; }
}
# refused_usage PATTERN COMMAND...: a usage error (status 2, the message and
# a usage line), as the README says of options that do not go together and
# as -d's name too long for the header is; nothing on stdout.
refused_usage() { refused 2 "$@"; }

# measure_ok TOOL-ARGS...: --measure prints the byte count of the stream.
measure_ok() {
    local said got
    said=$("$Q2S" --measure "$@") || return 1
    got=$("$Q2S" "$@" | wc -c)
    [ "$said" = "$got" ] || { echo "--measure says $said, the stream has $got bytes"; return 1; }
}

# pieces_ok TOOL-ARGS...: three --offset/--length pieces make the stream.
pieces_ok() {
    local size half
    "$Q2S" "$@" > whole.qcow2 || return 1
    size=$(stat -c %s whole.qcow2) half=$((size / 2))
    { "$Q2S" --offset=0 --length=1000 "$@" &&
      "$Q2S" --offset=1000 --length=$((half - 1000)) "$@" &&
      "$Q2S" --offset="$half" "$@"; } > pieces.qcow2 || return 1
    cmp whole.qcow2 pieces.qcow2
}

# --- qemu-nbd servers ----------------------------------------------------
# Each is started with --fork, which returns once it accepts connections,
# on NAME.sock in the scratch directory with its pid in NAME.nbdpid, and
# runs until stop_nbd (or the end of the test); its NBD reads are traced
# in NAME.trace.  The pid files, not a variable, list them: servers are
# started inside check's subshells too.
stop_nbd() {
    local file pid
    for file in "$scratch"/*.nbdpid; do
        pid=$(cat "$file" 2>/dev/null) || continue
        if grep -q qemu-nbd "/proc/$pid/cmdline" 2>/dev/null; then
            kill "$pid"
            gone_within "$pid" 5 > /dev/null
        fi
        rm -f "$file"
    done
}
cleanup_hooks+=(stop_nbd)

# serve_nbd NAME QEMU-NBD-ARGS...: sets uri.
serve_nbd() {
    local name=$1; shift
    rm -f "$scratch/$name.sock" "$scratch/$name.trace"
    uri="nbd+unix:///?socket=$scratch/$name.sock"
    qemu-nbd --fork --persistent --pid-file="$scratch/$name.nbdpid" -k "$scratch/$name.sock" \
        --trace "enable=nbd_co_send_structured_read*,file=$scratch/$name.trace" \
        "$@" < /dev/null > "$scratch/$name.log" 2>&1 && return 0
    cat "$scratch/$name.log"; return 1
}

# serve_dirty NAME BITMAP IMAGE: qemu-nbd -B BITMAP serving the qcow2 IMAGE
# on NAME.sock, and qemu-img map of the bitmap in NAME-dirty.json ("data":
# false where dirty).
serve_dirty() {
    serve_nbd "$1" -r -B "$2" -f qcow2 "$3" || return 1
    qemu-img map --output=json --image-opts \
        "driver=nbd,server.type=unix,server.path=$scratch/$1.sock,x-dirty-bitmap=qemu:dirty-bitmap:$2" \
        > "$1-dirty.json"
}

# never_opened STRACE NAME: no open() of a file named NAME in the log.
never_opened() {
    local hits
    [ -s "$1" ] || { echo "empty strace log"; return 1; }
    hits=$(grep -E "open(at2?)?\(.*\"([^\"]*/)?$2\"" "$1")
    [ -z "$hits" ] || { echo "$hits" | head -n 5; return 1; }
}

# =========================================================================
# The README workflow: a qcow2 disk with a persistent bitmap, a full backup,
# then increments exported with the bitmap, each over the previous one.
# =========================================================================
qemu-img create -q -f qcow2 disk.qcow2 64M
qio disk.qcow2 'write -P 0x01 0 4M' 'write -P 0x02 10M 3M' \
    'write -P 0x03 40M 1M' 'write -P 0x04 63M 1M'
qemu-img bitmap --add disk.qcow2 b0
"$Q2S" -f qcow2 disk.qcow2 > full.qcow2
qemu-img convert -f qcow2 -O raw disk.qcow2 t0.raw
check "full backup: a valid image of the disk" level_ok full.qcow2 t0.raw

if ! has_option --bitmap; then
    not_ok "the tool has --bitmap (issue 11, step 3)"
else
    # Round 1: new data (in place, in a hole, a few bytes in cluster 0), a
    # region wiped with write -z, one with plain zeros.  Round 2: data
    # inside the wiped region, cluster 0 wiped, the last MiB zeroed.
    # Round 3: a bigger rewrite; exported through the README's one-shot
    # qemu-nbd.  Round 4: nothing written.
    rounds=(
        "write -P 0x11 1M 64k|write -z 10M 1M|write -P 0 40M 512k|write -P 0x12 20M 100k|write -P 0x13 30000 1000"
        "write -P 0x21 10M 64k|write -z 0 64k|write -P 0 63M 1M|write -P 0x22 5M 4k"
        "write -P 0x31 48M 2M|write -z 20M 64k|write -P 0x32 3M 1M"
        ""
    )
    prev=full.qcow2 chain=(full.qcow2) trace_opens=()
    # LeakSanitizer cannot run under ptrace: an ASan build is traced
    # without it (check-asan runs the rest of the test with it).
    ! have strace || trace_opens=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
                                  strace -f -o LOG -e "trace=open,openat,openat2")
    # One pass, round n: the dirty clusters qemu-nbd reports as data are
    # data, the other dirty ones zero clusters.
    one_pass_increment() {
        timeout 60 "$Q2S" --one-pass -f qcow2 --bitmap=b0 -B "$prev" -F qcow2 \
            disk.qcow2 > "one$n.qcow2" && level_ok "one$n.qcow2" "t$n.raw"
    }
    for n in 1 2 3 4; do
        IFS='|' read -r -a writes <<<"${rounds[n - 1]}"
        [ ${#writes[@]} = 0 ] || qio disk.qcow2 "${writes[@]}"
        qemu-img convert -f qcow2 -O raw disk.qcow2 "t$n.raw"
        inc=inc$n.qcow2
        chain=("$inc" "${chain[@]}")
        # The tool starts qemu-nbd -B b0 itself; traced for the opens.
        check "round $n: -f qcow2 --bitmap=b0 -B $prev -F qcow2 succeeds" \
            "${trace_opens[@]/LOG/strace$n.log}" bash -c '"$0" -f qcow2 --bitmap=b0 -B "$1" -F qcow2 disk.qcow2 > "$2"' "$Q2S" "$prev" "$inc"
        if [ ${#trace_opens[@]} != 0 ]; then
            check "  ... nothing of the backing file $prev is opened" never_opened "strace$n.log" "$prev"
        else
            skip "  ... nothing of the backing file $prev is opened" "strace is not installed (Debian package strace)"
        fi
        check "  ... a valid overlay: reads as the disk now" level_ok "$inc" "t$n.raw"
        check "  ... --one-pass: a valid overlay that reads as the disk now" one_pass_increment
        check "  ... names $prev, format qcow2, exactly as given" \
            test "$(backing_name "$inc")" = "$prev"
        check "  ... qemu-img info --backing-chain shows the chain" chain_is qcow2 "${chain[@]}"
        check "  ... qemu-img convert of the top flattens it" flattens "$inc" "t$n.raw"
        check "  ... --measure says its size" \
            test "$("$Q2S" --measure -f qcow2 --bitmap=b0 -B "$prev" -F qcow2 disk.qcow2)" = "$(stat -c %s "$inc")"
        if [ "$n" = 3 ]; then
            # The README's way: qemu-nbd --fork, one client, then it exits.
            rm -f once.sock
            qemu-nbd --fork --pid-file="$scratch/once.nbdpid" -r -B b0 \
                -k "$scratch/once.sock" -f qcow2 disk.qcow2
            once_pid=$(cat once.nbdpid)
            check "  ... through a one-shot qemu-nbd -B b0 URI: the same bytes" \
                bash -c '"$0" --bitmap=b0 -B "$1" -F qcow2 "nbd+unix:///?socket=$PWD/once.sock" > "$2" &&
                    cmp "$3" "$2"' "$Q2S" "$prev" "u$inc" "$inc"
            check "  ... and that qemu-nbd has exited" gone_within "$once_pid" 5
        fi
        # Through an NBD URI of our own server, its reads traced.
        check "  ... qemu-nbd -B b0 serves the disk and its dirty bitmap" serve_dirty bm b0 disk.qcow2
        mv bm-dirty.json "dirty$n.json"
        uri="nbd+unix:///?socket=$scratch/bm.sock"
        check "  ... through a qemu-nbd -B b0 URI: the same bytes" \
            bash -c '"$0" --bitmap=b0 -B "$1" -F qcow2 "$2" > "$3" && cmp "$4" "$3"' \
            "$Q2S" "$prev" "$uri" "u$inc" "$inc"
        stop_nbd
        python3 inc.py dirty "dirty$n.json" "t$n.raw" 65536 > "expected$n.txt"
        check "  ... holds the dirty clusters, as data or zero clusters, and nothing else" \
            kinds_are "$inc" 65536 "expected$n.txt"
        if [ -s "expected$n.txt" ]; then
            check "  ... qemu-nbd was asked only for dirty clusters, each once" \
                python3 inc.py reads bm.trace "dirty$n.json" 65536
        else
            check "  ... nothing changed: qemu-nbd was asked for nothing" \
                bash -c '! grep -q "^nbd_co_send_structured_read" bm.trace'
        fi
        check "  ... its size: the changed data and a few clusters of metadata" \
            small_enough "$inc" 65536
        case $n in
            1)
                check "  ... write -z: zero clusters, no data" kind_of "$inc" 65536 $((10 * M)) "$M" zero
                check "  ... plain zeros over data: zero clusters, no data" \
                    kind_of "$inc" 65536 $((40 * M)) $((M / 2)) zero
                check "  ... the rest of the old data is left to the backing" \
                    kind_of "$inc" 65536 $((40 * M + M / 2)) $((M / 2)) backing
                check "  ... new data: data clusters" kind_of "$inc" 65536 $((20 * M)) 100000 data ;;
            2)
                check "  ... data written inside a wiped region: data" \
                    kind_of "$inc" 65536 $((10 * M)) 65536 data
                check "  ... cluster 0 wiped: a zero cluster" kind_of "$inc" 65536 0 65536 zero
                check "  ... the last MiB zeroed: zero clusters" kind_of "$inc" 65536 $((63 * M)) "$M" zero ;;
            4)
                check "  ... nothing written: an overlay with no cluster of its own" \
                    kind_of "$inc" 65536 0 $((64 * M)) backing ;;
        esac
        qemu-img bitmap --clear disk.qcow2 b0
        prev=$inc
    done
    # Round 5: the disk grew; data written past the old end.  With other
    # options, the same increment's pieces.
    qemu-img resize -q disk.qcow2 80M
    qio disk.qcow2 'write -P 0x51 70M 1M' 'write -P 0x52 2M 64k'
    qemu-img convert -f qcow2 -O raw disk.qcow2 t5.raw
    check "round 5, the disk grew to 80 MiB: an increment over the 64 MiB inc4" \
        bash -c '"$0" -f qcow2 --bitmap=b0 -B inc4.qcow2 -F qcow2 disk.qcow2 > inc5.qcow2' "$Q2S"
    check "  ... a valid overlay: reads as the disk now" level_ok inc5.qcow2 t5.raw
    check "  ... the new data past the old end: data clusters" kind_of inc5.qcow2 65536 $((70 * M)) "$M" data
    check "  ... the rest past the old end is left to the backing (zeros)" \
        kind_of inc5.qcow2 65536 $((64 * M)) $((6 * M)) backing
    check "  ... with -c 512 -r 1 --compress=zstd: valid too" bash -c \
        '"$0" -c 512 -r 1 --compress=zstd -f qcow2 --bitmap=b0 -B inc4.qcow2 -F qcow2 disk.qcow2 > inc5z.qcow2 &&
         qemu-img check -q inc5z.qcow2 && qemu-img compare -q -f raw t5.raw inc5z.qcow2' "$Q2S"
    check "  ... --offset/--length: three pieces are the whole increment" \
        pieces_ok -f qcow2 --bitmap=b0 -B inc4.qcow2 -F qcow2 disk.qcow2
    check "  ... --measure of it with -c 512 --compress=zstd" \
        measure_ok -c 512 --compress=zstd -f qcow2 --bitmap=b0 -B inc4.qcow2 -F qcow2 disk.qcow2
    check "  ... -p: progress on stderr, the same bytes" bash -c \
        '"$0" -p -f qcow2 --bitmap=b0 -B inc4.qcow2 -F qcow2 disk.qcow2 > p5.qcow2 2> p5.err &&
         cmp p5.qcow2 inc5.qcow2 && test -s p5.err' "$Q2S"
    check "after five increments, every level still reads as the disk at its time" bash -c '
        for n in 1 2 3 4 5; do
            qemu-img compare -q -f raw -F qcow2 "t$n.raw" "inc$n.qcow2" || { echo "level $n"; exit 1; }
        done
        qemu-img compare -q -f raw -F qcow2 t0.raw full.qcow2 || { echo full; exit 1; }'
fi

# =========================================================================
# Bitmap granularities against cluster sizes: 4 KiB and 2 MiB granules
# larger than some clusters, 4 KiB and 64 KiB smaller than others.
# =========================================================================
# granularity_case GRANULARITY CLUSTER_SIZE
granularity_case() {
    local g=$1 cs=$2 p=g$1c$2
    qemu-img create -q -f qcow2 "$p.qcow2" 32M
    qio "$p.qcow2" 'write -P 0x51 0 3M' 'write -P 0x52 17M 1M'
    qemu-img bitmap --add -g "$g" "$p.qcow2" gb
    "$Q2S" -c "$cs" -f qcow2 "$p.qcow2" > "$p-full.qcow2"
    qio "$p.qcow2" 'write -P 0x61 5243000 10' 'write -P 0x62 1052672 4096' \
        'write -z 17M 256k' 'write -P 0 2097664 512' 'write -P 0x63 31M 1M'
    qemu-img convert -f qcow2 -O raw "$p.qcow2" "$p.raw"
    check "granularity $g, -c $cs: an increment with --bitmap" \
        bash -c '"$0" -c "$1" -f qcow2 --bitmap=gb -B "$2-full.qcow2" -F qcow2 "$2.qcow2" > "$2-inc.qcow2"' \
        "$Q2S" "$cs" "$p"
    check "  ... a valid overlay of the disk" level_ok "$p-inc.qcow2" "$p.raw"
    check "  ... of cluster size $cs" bash -c \
        "qemu-img info '$p-inc.qcow2' | grep -qx 'cluster_size: $cs'"
    check "  ... qemu-nbd -B gb serves the dirty bitmap" serve_dirty "$p" gb "$p.qcow2"
    stop_nbd
    python3 inc.py dirty "$p-dirty.json" "$p.raw" "$cs" > "$p-expected.txt"
    check "  ... every cluster a dirty granule meets, and no other" kinds_are "$p-inc.qcow2" "$cs" "$p-expected.txt"
    rm -f "$p".* "$p"-*
}
if has_option --bitmap; then
    granularity_case 4096 512
    granularity_case 4096 65536
    granularity_case 65536 512
    granularity_case 65536 2097152
    granularity_case 2097152 512
    granularity_case 2097152 65536
fi

# =========================================================================
# -B alone (the backing file is the base) and --diff=BASE with -B, on raw
# images whose differences are known: data changed, data wiped, new data
# in holes, a disk that grew and one that shrank.
# =========================================================================
python3 - <<'PY'
import random
MiB = 1 << 20
rnd = random.Random(11)
def put(f, offset, data):
    f.seek(offset); f.write(data)
with open("base.raw", "wb") as f:
    f.truncate(8 * MiB)
    for offset, length in [(0, MiB), (2 * MiB, MiB), (5 * MiB + 100, 70000), (8 * MiB - 65536, 65536)]:
        put(f, offset, rnd.randbytes(length))
base = open("base.raw", "rb").read()
with open("in.raw", "wb") as f:
    f.write(base)
    put(f, 4096, rnd.randbytes(4096))             # data changed in place
    put(f, 2 * MiB, bytes(256 * 1024))            # data wiped
    put(f, 4 * MiB, rnd.randbytes(3000))          # new data in a hole
    put(f, 5 * MiB, bytes(MiB))                   # zeros over data and holes
    put(f, 8 * MiB - 100, b"last bytes")
inp = open("in.raw", "rb").read()
with open("grown.raw", "wb") as f:                # the disk grew to 12 MiB
    f.write(inp)
    f.truncate(12 * MiB)
    put(f, 10 * MiB + 512, rnd.randbytes(100000))
with open("small.raw", "wb") as f:                # and shrank to 6 MiB - 1.5 KiB
    f.write(inp[:6 * MiB - 1536])
PY
qemu-img convert -f raw -O qcow2 base.raw base.qcow2
cp base.qcow2 backing.qcow2
for cs in 512 65536 2097152; do
    python3 inc.py diff base.raw in.raw "$cs" > "diff$cs.txt"
done

# overlay_ok NAME INPUT CS EXPECTED TOOL-ARGS...: the tool's output, NAME,
# is a valid overlay reading as INPUT that holds exactly EXPECTED.
overlay_ok() {
    local name=$1 input=$2 cs=$3 expected=$4; shift 4
    "$Q2S" "$@" > "$name" || return 1
    level_ok "$name" "$input" || return 1
    kinds_are "$name" "$cs" "$expected"
}

check "-B base.raw -F raw: the differing clusters only, wiped ones as zero clusters" \
    overlay_ok raw-b.qcow2 in.raw 65536 diff65536.txt -B base.raw -F raw in.raw
check "  ... names base.raw, format raw" chain_is raw raw-b.qcow2 base.raw
check "  ... the wiped data: zero clusters" kind_of raw-b.qcow2 65536 $((2 * M)) 262144 zero
check "  ... zeros over data and holes: zero clusters where the base had data" \
    kind_of raw-b.qcow2 65536 $((5 * M)) 131072 zero
check "  ... and left to the backing where both are zeros" \
    kind_of raw-b.qcow2 65536 $((5 * M + 131072)) $((M - 131072)) backing
check "-B backing.qcow2 -F qcow2 (the base read through qemu-nbd): the same clusters" \
    overlay_ok qcow2-b.qcow2 in.raw 65536 diff65536.txt -B backing.qcow2 -F qcow2 in.raw
check "  ... names backing.qcow2, format qcow2" chain_is qcow2 qcow2-b.qcow2 backing.qcow2
# named_as NAME TOOL-ARGS...: the tool's output names NAME as its backing
# file, byte for byte, and reads as in.raw.
named_as() {
    local name=$1 got; shift
    "$Q2S" "$@" > named.qcow2 || return 1
    got=$(backing_name named.qcow2)
    [ "$got" = "$name" ] || { echo "names '$got'"; return 1; }
    qemu-img compare -q -f raw in.raw named.qcow2
}
check "-B ./backing.qcow2: the name written as given" \
    named_as ./backing.qcow2 -B ./backing.qcow2 -F qcow2 in.raw
check "-B the input itself: an overlay with no cluster of its own" bash -c \
    '"$0" -B in.raw -F raw in.raw > same.qcow2 && qemu-img compare -q -f raw in.raw same.qcow2 &&
     test -z "$(python3 inc.py own same.qcow2 65536)"' "$Q2S"

# A relative backing name is QEMU's relative to the overlay's directory; the
# tool compares with it relative to the current one.
mkdir -p sub
cp base.raw sub/base.raw
check "an overlay written into another directory, -B relative to both" bash -c \
    'cd sub && "$0" -B base.raw -F raw ../in.raw > ../sub-b.qcow2 && cd .. && mv sub-b.qcow2 sub/ &&
     qemu-img compare -q -f raw in.raw sub/sub-b.qcow2' "$Q2S"

if has_option --diff-format; then
    check "--diff=base.raw -B backing.qcow2 -F qcow2: the same clusters" \
        overlay_ok diff-raw.qcow2 in.raw 65536 diff65536.txt --diff=base.raw -B backing.qcow2 -F qcow2 in.raw
    check "  ... names backing.qcow2" chain_is qcow2 diff-raw.qcow2 backing.qcow2
    check "--diff=base.qcow2 --diff-format=qcow2 (through qemu-nbd): the same clusters" \
        overlay_ok diff-qcow2.qcow2 in.raw 65536 diff65536.txt \
        --diff=base.qcow2 --diff-format=qcow2 -B backing.qcow2 -F qcow2 in.raw
    serve_nbd basesrv -r -f raw base.raw || not_ok "qemu-nbd serves the base"
    check "--diff=NBD URI (qemu-nbd serving the base): the same clusters" \
        overlay_ok diff-nbd.qcow2 in.raw 65536 diff65536.txt --diff="$uri" -B backing.qcow2 -F qcow2 in.raw
    stop_nbd
    reason=""
    if [ "$(id -u)" != 0 ]; then
        reason="not running as root, so no loop device can be set up"
    elif ! have losetup; then
        reason="no losetup (Debian package mount)"
    elif ! base_dev=$(losetup --find --show --read-only base.raw 2> loop.err); then
        reason="cannot set up a loop device: $(head -n 1 loop.err)"
    fi
    if [ -n "$reason" ]; then
        skip "--diff=a block device" "$reason"
    else
        cleanup_hooks+=("losetup -d '$base_dev'")
        check "--diff=$base_dev (a loop device on the base): the same clusters" \
            overlay_ok diff-dev.qcow2 in.raw 65536 diff65536.txt --diff="$base_dev" -B backing.qcow2 -F qcow2 in.raw
    fi
else
    not_ok "the tool has --diff-format, and --diff with -B (issue 11, step 2)"
fi

python3 inc.py diff base.raw grown.raw 65536 > grown.txt
check "a disk that grew: clusters past the base's end as in a full image" \
    overlay_ok grown.qcow2 grown.raw 65536 grown.txt -B base.raw -F raw grown.raw
check "  ... its data past the end: data clusters" kind_of grown.qcow2 65536 $((10 * M)) 100512 data
check "  ... the base larger than the input, without --shrink: refused" \
    refused 1 "" "$Q2S" -B base.raw -F raw small.raw
if has_option --shrink; then
    python3 inc.py diff base.raw small.raw 65536 > small.txt
    check "  ... with --shrink: an overlay of the smaller size" \
        overlay_ok small.qcow2 small.raw 65536 small.txt --shrink -B base.raw -F raw small.raw
else
    not_ok "the tool has --shrink (issue 11)"
fi

# =========================================================================
# -B with the other options.
# =========================================================================
for cs in 512 2097152; do
    check "-c $cs: the differing clusters of $cs bytes" \
        overlay_ok "c$cs.qcow2" in.raw "$cs" "diff$cs.txt" -c "$cs" -B base.raw -F raw in.raw
done
for bits in 1 64; do
    check "-r $bits: the same clusters" \
        overlay_ok "r$bits.qcow2" in.raw 65536 diff65536.txt -r "$bits" -B base.raw -F raw in.raw
    check "  ... refcount bits $bits" bash -c "qemu-img info r$bits.qcow2 | grep -q 'refcount bits: $bits\$'"
done
for type in zlib zstd; do
    check "--compress=$type: the same clusters, data compressed" \
        overlay_ok "$type.qcow2" in.raw 65536 diff65536.txt --compress="$type" -B base.raw -F raw in.raw
    check "  ... compression type $type, compressed clusters" bash -c \
        "qemu-img info $type.qcow2 | grep -q 'compression type: $type' &&
         qemu-img check $type.qcow2 | grep -q '[1-9][0-9.]*% compressed clusters'"
done
check "--measure: -B base.raw" measure_ok -B base.raw -F raw in.raw
check "--measure: -B with -c 512 -r 1" measure_ok -c 512 -r 1 -B base.raw -F raw in.raw
check "--measure: -B with --compress=zstd" measure_ok --compress=zstd -B base.raw -F raw in.raw
check "--measure: -B backing.qcow2 -F qcow2, a disk that grew" measure_ok -B backing.qcow2 -F qcow2 grown.raw
check "--offset/--length: three pieces are the whole overlay" pieces_ok -B base.raw -F raw in.raw
check "--offset/--length with -c 512 --compress: the same" pieces_ok -c 512 --compress -B base.raw -F raw in.raw
check "-p: progress on stderr, the same bytes" bash -c \
    '"$0" -p -B base.raw -F raw in.raw > p.qcow2 2> p.err && cmp p.qcow2 raw-b.qcow2 && test -s p.err' "$Q2S"

# =========================================================================
# Errors: status 1, one line, nothing on stdout; options that do not go
# together and names too long are usage errors (status 2).
# =========================================================================
if has_option --bitmap; then
    check "a bitmap the disk does not have" \
        refused 1 "" "$Q2S" -f qcow2 --bitmap=nosuch -B full.qcow2 -F qcow2 disk.qcow2
    serve_nbd nobm -r -f qcow2 disk.qcow2 || not_ok "qemu-nbd serves the disk without its bitmap"
    check "an NBD server that does not export the bitmap" \
        refused 1 "" "$Q2S" --bitmap=b0 -B full.qcow2 -F qcow2 "$uri"
    stop_nbd
    check "--bitmap with a regular file input" \
        refused 1 "" "$Q2S" --bitmap=b0 -B full.qcow2 -F qcow2 t0.raw
    check "--bitmap without -B" refused_usage "--bitmap" "$Q2S" -f qcow2 --bitmap=b0 disk.qcow2
fi
check "a backing file that does not exist" refused 1 "nosuch.qcow2" "$Q2S" -B nosuch.qcow2 -F qcow2 in.raw
check "a raw backing file that does not exist" refused 1 "nosuch.raw" "$Q2S" -B nosuch.raw -F raw in.raw
if has_option --diff-format; then
    check "a --diff base that does not exist" \
        refused 1 "nosuch.raw" "$Q2S" --diff=nosuch.raw -B base.raw -F raw in.raw
    check "a --diff base larger than the input" \
        refused 1 "" "$Q2S" --diff=base.raw -B base.raw -F raw small.raw
    check "--diff-format without --diff" refused_usage "--diff-format" "$Q2S" --diff-format=qcow2 -B base.raw -F raw in.raw
fi
check "-B without -F" refused_usage "(-F)" "$Q2S" -B base.raw in.raw
if has_option --shrink; then
    check "--shrink without -B" refused_usage "--shrink" "$Q2S" --shrink in.raw
fi
# Names of 1023 and 1024 bytes that all lead to base.raw.
name1023=$(printf './%.0s' $(seq 507))/base.raw
name1024=$(printf './%.0s' $(seq 507))//base.raw
check "a backing name of 1023 bytes: written as given" \
    named_as "$name1023" -B "$name1023" -F raw in.raw
check "a backing name of 1024 bytes" refused_usage "too long" "$Q2S" -B "$name1024" -F raw in.raw
name600=$(printf './%.0s' $(seq 296))/base.raw
check "a backing name of 600 bytes with -c 512 (larger than the header cluster)" \
    refused_usage "too long" "$Q2S" -c 512 -B "$name600" -F raw in.raw
finish
