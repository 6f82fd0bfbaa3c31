# Overlays (-B/-F, --diff with -B, --bitmap) in a hostile user's hands:
# signals and a reader that goes away while the tool runs its own
# qemu-nbd, closed descriptors, backing names at the limits of the header
# cluster and made of odd bytes, bitmaps that are empty, disabled, full,
# of odd names, inputs and bases of odd sizes, bases that fail or vanish,
# a base that is the output itself, and overlays made only of zero
# clusters that QEMU then writes into.  Each result is either a valid
# overlay (QEMU's tools say so) or one clear error line with status 1.
# test_incremental.sh has the workflow; nothing here repeats it.
. "$(dirname "$0")/lib.sh"

for tool in qemu-img qemu-io qemu-nbd python3; do
    if ! have "$tool"; then
        skip "overlays, misused" "$tool is not installed (Debian packages qemu-utils, python3)"
        finish; exit 0
    fi
done

M=$((1024 * 1024))
# The tool's temporary files go here, to be counted.
mkdir tmp
export TMPDIR=$scratch/tmp

# --- Helpers -------------------------------------------------------------

# overlay_reads_as OVERLAY RAW: qemu-img check is clean, and the overlay
# over its backing reads as RAW (zeros past RAW's end).
overlay_reads_as() {
    qemu-img check -q -f qcow2 "$1" || { qemu-img check -f qcow2 "$1"; return 1; }
    qemu-img compare -q -f raw -F qcow2 "$2" "$1" || { echo "content differs"; return 1; }
}

# made OUTPUT TOOL-ARGS...: the tool succeeds, writing OUTPUT.
made() { local out=$1; shift; "$Q2S" "$@" > "$out"; }

# backing_bytes IMAGE NAME: the header's backing file name is NAME, byte
# for byte (read from the header, not through qemu-img's JSON, which
# cannot hold bytes that are not UTF-8), and qemu-img info knows it.
backing_bytes() {
    python3 - "$1" "$2" <<'PY' || return 1
import os, struct, sys
with open(sys.argv[1], "rb") as f:
    head = f.read(65536)
offset, length = struct.unpack(">QI", head[8:20])
got = head[offset:offset + length]
want = os.fsencode(sys.argv[2])
if got != want:
    sys.exit("the header names %r, not %r" % (got, want))
PY
    qemu-img info -f qcow2 "$1" | grep -q '^backing file: ' ||
        { echo "qemu-img info shows no backing file"; return 1; }
}

# own_zero_clusters IMAGE: how many bytes the overlay holds itself as zero
# clusters (qemu-img map, depth 0, zero and no offset); any of its own data
# is an error.
own_zero_bytes() {
    qemu-img map -f qcow2 --output=json "$1" | python3 -c '
import json, sys
n = 0
for e in json.load(sys.stdin):
    if e["depth"] != 0:
        continue
    if e["data"] or "offset" in e:
        sys.exit("data at %d" % e["start"])
    n += e["length"]
print(n)'
}

# my_qemu_nbd: qemu-nbd processes working in the scratch directory (those
# the tool starts run where it runs), one pid a line.
my_qemu_nbd() {
    local pid
    for pid in $(pgrep -x qemu-nbd); do
        [ "$(readlink "/proc/$pid/cwd")" = "$scratch" ] && echo "$pid"
    done
}
stop_my_qemu_nbd() {
    local pid
    for pid in $(my_qemu_nbd); do kill "$pid"; done
}
cleanup_hooks+=(stop_my_qemu_nbd)

# nothing_left: no qemu-nbd of the tool runs (it gets 2 s to go), no
# temporary file is left in $TMPDIR.
nothing_left() {
    local pid left
    for pid in $(my_qemu_nbd); do gone_within "$pid" 2 > /dev/null; done
    left=$(my_qemu_nbd)
    [ -z "$left" ] || { echo "qemu-nbd still runs: $left"; kill $left; return 1; }
    left=$(ls -A "$TMPDIR")
    [ -z "$left" ] || { echo "left in \$TMPDIR: $left"; rm -rf "${TMPDIR:?}"/*; return 1; }
}

# =========================================================================
# Images: a qcow2 disk with a persistent bitmap, its full backup; raw
# images of known content.
# =========================================================================
qemu-img create -q -f qcow2 disk.qcow2 64M
qemu-io -f qcow2 -c 'write -P 1 0 8M' -c 'write -P 2 20M 4M' disk.qcow2 > /dev/null
"$Q2S" -f qcow2 disk.qcow2 > full.qcow2
for b in empty all dis late; do qemu-img bitmap --add disk.qcow2 "$b"; done
qemu-img bitmap --add disk.qcow2 $'new\nline'
qemu-io -f qcow2 -c 'write -P 3 1M 64k' disk.qcow2 > /dev/null
qemu-img bitmap --disable disk.qcow2 dis
qemu-img bitmap --clear disk.qcow2 empty
qemu-io -f qcow2 -c 'write -P 4 30M 3M' disk.qcow2 > /dev/null
qemu-img bitmap --clear disk.qcow2 late
qemu-io -f qcow2 -c 'write -P 5 40M 64k' -c 'write -z 0 64M' -c 'write -P 6 50M 1M' disk.qcow2 > /dev/null
qemu-img bitmap --clear disk.qcow2 empty
qemu-img convert -f qcow2 -O raw disk.qcow2 disk.raw
# What "all" saw: everything wiped then 1 MiB written; "dis" saw the write
# at 1M only, then was disabled: an increment of it is stale on purpose.

python3 - <<'PY'
import random
rnd = random.Random(3)
MiB = 1 << 20
with open("base.raw", "wb") as f:
    f.write(rnd.randbytes(4 * MiB))
with open("zeros.raw", "wb") as f:
    f.truncate(4 * MiB)
b = bytearray(open("base.raw", "rb").read())
b[70000:70100] = rnd.randbytes(100)
b[3 * 65536:8 * 65536] = bytes(5 * 65536)
open("in.raw", "wb").write(b)
for n in (1000, 65537):
    open("b%d.raw" % n, "wb").write(rnd.randbytes(n))
    open("i%d.raw" % n, "wb").write(rnd.randbytes(n))
    open("z%d.raw" % n, "wb").write(bytes(n))
PY
qemu-img convert -f raw -O qcow2 base.raw base.qcow2

# =========================================================================
# Bitmaps: empty, disabled, everything dirty, odd names.
# =========================================================================
check "an empty bitmap: a valid overlay with no cluster of its own" bash -c '
    "$0" -f qcow2 --bitmap=empty -B full.qcow2 -F qcow2 disk.qcow2 > e.qcow2 &&
    qemu-img check -q e.qcow2 &&
    test "$(qemu-img map -f qcow2 --output=json e.qcow2 | grep -c "\"depth\": 0")" = 0' "$Q2S"
check "  ... and its --measure --json counts no cluster" bash -c '
    "$0" --measure --json -f qcow2 --bitmap=empty -B full.qcow2 -F qcow2 disk.qcow2 |
    python3 -c "import json,sys; j=json.load(sys.stdin); sys.exit(j[\"data-clusters\"] + j[\"zero-clusters\"])"' "$Q2S"
check "a disabled bitmap: only what it saw before (one 64 KiB cluster)" bash -c '
    "$0" -f qcow2 --bitmap=dis -B full.qcow2 -F qcow2 disk.qcow2 > dis.qcow2 &&
    qemu-img check -q dis.qcow2 &&
    qemu-img map -f qcow2 --output=json dis.qcow2 | grep "\"depth\": 0" |
    grep -q "\"start\": 1048576, \"length\": 65536"' "$Q2S"
check "a bitmap that saw everything wiped: zero clusters, one MiB of data" bash -c '
    "$0" -f qcow2 --bitmap=all -B full.qcow2 -F qcow2 disk.qcow2 > all.qcow2' "$Q2S"
check "  ... reads as the disk" overlay_reads_as all.qcow2 disk.raw
check "  ... --measure --json: zero-clusters is what qemu-img map shows" bash -c '
    said=$("$0" --measure --json -f qcow2 --bitmap=all -B full.qcow2 -F qcow2 disk.qcow2 |
           python3 -c "import json,sys; print(json.load(sys.stdin)[\"zero-clusters\"])")
    got=$(qemu-img map -f qcow2 --output=json all.qcow2 | python3 -c "
import json, sys
print(sum(e[\"length\"] // 65536 for e in json.load(sys.stdin)
          if e[\"depth\"] == 0 and e[\"zero\"] and \"offset\" not in e))")
    echo "said $said, map $got"; test "$said" = "$got" && test "$got" = 1008' "$Q2S"
check "a bitmap named with a newline: an increment" bash -c '
    "$0" -f qcow2 --bitmap="$1" -B full.qcow2 -F qcow2 disk.qcow2 > nl.qcow2 &&
    qemu-img check -q nl.qcow2' "$Q2S" $'new\nline'
check "a missing bitmap named with a newline: one line that names it whole" \
    fails 1 "'missing\\\\nname'" "$Q2S" -f qcow2 --bitmap=$'missing\nname' -B full.qcow2 -F qcow2 disk.qcow2
check "a missing bitmap named '-x,y': one line" \
    fails 1 "'-x,y'" "$Q2S" -f qcow2 --bitmap=-x,y -B full.qcow2 -F qcow2 disk.qcow2
long_bitmap=$(printf 'b%.0s' $(seq 1024))
check "a bitmap name of 1024 bytes: a usage error" \
    fails 2 "dirty bitmap name" "$Q2S" -f qcow2 --bitmap="$long_bitmap" -B full.qcow2 -F qcow2 disk.qcow2
check "no qemu-nbd left, nothing in \$TMPDIR" nothing_left

# A qcow2 disk whose size is a multiple of 512 but not of the cluster size
# nor of the bitmap's granularity: the last cluster is partial.
odd_size=$((3 * M + 1536))
qemu-img create -q -f qcow2 odd.qcow2 "$odd_size"
qemu-io -f qcow2 -c 'write -P 1 0 3M' -c "write -P 2 3M 1536" odd.qcow2 > /dev/null
for g in 512 2097152; do
    for cs in 512 2097152; do
        cp odd.qcow2 "odd$g-$cs.qcow2"
        "$Q2S" -c "$cs" -f qcow2 "odd$g-$cs.qcow2" > "odd$g-$cs-full.qcow2"
        qemu-img bitmap --add -g "$g" "odd$g-$cs.qcow2" ob
        qemu-io -f qcow2 -c 'write -P 3 3145728 512' -c 'write -z 3146240 1024' \
            -c 'write -P 4 0 10' "odd$g-$cs.qcow2" > /dev/null
        qemu-img convert -O raw "odd$g-$cs.qcow2" "odd$g-$cs.raw"
        check "a disk of $odd_size bytes, granularity $g, -c $cs: a valid increment" bash -c '
            "$0" -c "$1" -f qcow2 --bitmap=ob -B "$2-full.qcow2" -F qcow2 "$2.qcow2" > "$2-inc.qcow2" &&
            qemu-img check -q "$2-inc.qcow2" && qemu-img compare -q -f raw "$2.raw" "$2-inc.qcow2" &&
            test "$("$0" --measure -c "$1" -f qcow2 --bitmap=ob -B "$2-full.qcow2" -F qcow2 "$2.qcow2")" = \
                 "$(stat -c %s "$2-inc.qcow2")"' "$Q2S" "$cs" "odd$g-$cs"
        rm -f "odd$g-$cs"*
    done
done

# =========================================================================
# Signals at random moments, and a reader that goes away, while the tool
# runs its own qemu-nbd (--bitmap, --diff-format=qcow2, -F qcow2 alone).
# =========================================================================
qemu-img create -q -f qcow2 big.qcow2 256M
qemu-img bitmap --add big.qcow2 bb
qemu-io -f qcow2 -c 'write -P 7 0 16M' -c 'write -z 100M 50M' big.qcow2 > /dev/null
truncate -s 256M bigbase.raw
printf 'x' | write_at bigbase.raw $((200 * M))
qemu-img convert -f raw -O qcow2 bigbase.raw bigbase.qcow2
mkfifo out.fifo
# interrupted SIGNAL DELAY TOOL-ARGS...: the tool writes into a FIFO read
# slowly; SIGNAL comes after DELAY seconds (or, for PIPE, the reader takes
# DELAY bytes and goes): the tool dies of the signal (or ends with status
# 1 and one line, or has finished first), and leaves nothing behind.
interrupted() {
    local sig=$1 delay=$2 pid reader status; shift 2
    if [ "$sig" = PIPE ]; then
        python3 -c "import sys; open('out.fifo', 'rb').read($delay)" &
    else
        python3 -c "
import time
f = open('out.fifo', 'rb')
while f.read(1 << 20): time.sleep(0.02)" &
    fi
    reader=$!
    in_background "$Q2S" "$@" > out.fifo 2> sig.err &
    pid=$!
    if [ "$sig" != PIPE ]; then
        sleep "$delay"
        kill "-$sig" "$pid" 2>/dev/null
    fi
    timeout 20 tail --pid="$pid" -f /dev/null || kill -KILL "$pid"
    wait "$pid"; status=$?
    kill "$reader" 2>/dev/null; wait "$reader" 2>/dev/null
    case $sig:$status in
        *:0|INT:130|TERM:143|HUP:129) ;;
        PIPE:1) [ "$(wc -l < sig.err)" = 1 ] || { echo "stderr:"; cat sig.err; return 1; } ;;
        *) echo "status $status after SIG$sig at $delay"; cat sig.err; return 1 ;;
    esac
    nothing_left
}
signal_rounds=("INT 0.05" "TERM 0.2" "HUP 0.01" "PIPE 0" "PIPE 300000" "PIPE 5000000")
for args in "-f qcow2 --bitmap=bb -B bigbase.raw -F raw big.qcow2" \
            "-f qcow2 --diff=bigbase.qcow2 --diff-format=qcow2 -B bigbase.qcow2 -F qcow2 big.qcow2" \
            "-f qcow2 -B bigbase.qcow2 -F qcow2 big.qcow2"; do
    for round in "${signal_rounds[@]}"; do
        # shellcheck disable=SC2086
        check "SIG${round% *} at ${round#* } (s or bytes read): $args" interrupted $round $args
    done
done

# =========================================================================
# Closed standard descriptors with -B.
# =========================================================================
check "stdin closed, -f qcow2 --bitmap: a valid increment" bash -c '
    "$0" -f qcow2 --bitmap=all -B full.qcow2 -F qcow2 disk.qcow2 <&- > c0.qcow2 &&
    qemu-img compare -q -f raw disk.raw c0.qcow2' "$Q2S"
check "stderr closed, -B base.qcow2 -F qcow2: a valid overlay" bash -c '
    "$0" -B base.qcow2 -F qcow2 in.raw 2>&- > c2.qcow2 &&
    qemu-img compare -q -f raw in.raw c2.qcow2' "$Q2S"
check "stdout closed, -f qcow2 --bitmap: status 1, no qemu-nbd started" bash -c '
    "$0" -f qcow2 --bitmap=all -B full.qcow2 -F qcow2 disk.qcow2 >&- 2> c1.err
    test $? = 1 && grep -q "standard output is closed" c1.err' "$Q2S"
check "no qemu-nbd left, nothing in \$TMPDIR" nothing_left

# =========================================================================
# Backing names: the limits of the header cluster, odd bytes.
# =========================================================================
# name_of LENGTH: a name of LENGTH bytes that leads to base.raw.
name_of() {
    python3 -c 'import sys; n = int(sys.argv[1]) - len("base.raw"); print("./" * (n // 2) + "/" * (n % 2) + "base.raw")' "$1"
}
# longest_name CS ARGS...: the length of the longest name the tool takes at
# cluster size CS (bisected between 100 and 1023).
longest_name() {
    local cs=$1 lo=100 hi=1024 mid; shift
    while [ $((hi - lo)) -gt 1 ]; do
        mid=$(((lo + hi) / 2))
        if "$Q2S" -c "$cs" "$@" -B "$(name_of "$mid")" -F raw in.raw > /dev/null 2>&1; then lo=$mid; else hi=$mid; fi
    done
    echo "$lo"
}
for cs in 512 1024 2048; do
    for extra in "" "--compress=zstd -r 1"; do
        longest=$(longest_name "$cs" $extra)
        name=$(name_of "$longest")
        # shellcheck disable=SC2086
        check "-c $cs $extra: the longest name taken ($longest bytes) makes a valid overlay" bash -c '
            "$0" -c "$1" $3 -B "$2" -F raw in.raw > long.qcow2 &&
            qemu-img check -q long.qcow2 && qemu-img compare -q -f raw in.raw long.qcow2' \
            "$Q2S" "$cs" "$name" "$extra"
        check "  ... named byte for byte" backing_bytes long.qcow2 "$name"
        if [ "$longest" -lt 1023 ]; then
            # shellcheck disable=SC2086
            check "  ... one byte more: too long for the header cluster" \
                fails 2 "too long" "$Q2S" -c "$cs" $extra -B "$(name_of $((longest + 1)))" -F raw in.raw
        else
            check "  ... one byte more: more than qcow2 allows" \
                fails 2 "too long" "$Q2S" -c "$cs" $extra -B "$(name_of 1024)" -F raw in.raw
        fi
    done
done

for name in $'new\nline.raw' 'sp ace.raw' '-lead.raw' $'\xff\xfe.raw' 'com,ma.raw' 'a,file.filename=b'; do
    cp -- base.raw "$name"
    for fmt in raw qcow2; do
        [ "$fmt" = raw ] || qemu-img convert -f raw -O qcow2 base.raw "./$name"
        shown=$(printf '%q' "$name")
        check "-B $shown -F $fmt: a valid overlay" bash -c '
            "$0" -B "$1" -F "$2" in.raw > odd-name.qcow2 &&
            qemu-img check -q odd-name.qcow2 && qemu-img compare -q -f raw in.raw odd-name.qcow2' \
            "$Q2S" "$name" "$fmt"
        check "  ... named byte for byte" backing_bytes odd-name.qcow2 "$name"
    done
    rm -f -- "$name"
done

# A backing file named "-" is the file of that name, as QEMU reads it, not
# standard input (which only --diff=- means).  Standard input holds the
# input itself here: compared with it, nothing would differ, and the
# overlay would read as the file "-".
mkdir dash
for fmt in raw qcow2; do
    cp "base.$fmt" dash/-
    check "-B - -F $fmt, stdin the input itself: the file '-' is the base" bash -c '
        cd dash && "$0" -B - -F "$1" ../in.raw < ../in.raw > dash.qcow2 &&
        qemu-img check -q dash.qcow2 && qemu-img compare -q -f raw ../in.raw dash.qcow2' "$Q2S" "$fmt"
done

# =========================================================================
# Inputs and bases of odd sizes: each overlay reads as its input, or the
# base larger than the input is refused without --shrink.
# =========================================================================
for pair in "b1000 i1000" "b1000 i65537" "b65537 i65537" "b65537 z65537" "i1000 i1000"; do
    read -r b i <<<"$pair"
    for cs in 512 65536; do
        check "-c $cs -B $b.raw -F raw $i.raw: a valid overlay" bash -c '
            "$0" -c "$1" -B "$2.raw" -F raw "$3.raw" > odd.qcow2 && qemu-img check -q odd.qcow2 &&
            qemu-img compare -q -f raw "$3.raw" odd.qcow2' "$Q2S" "$cs" "$b" "$i"
    done
done
check "a base of 65537 bytes, an input of 1000: refused" \
    fails 1 "--shrink" "$Q2S" -B b65537.raw -F raw i1000.raw
check "  ... with --shrink: a valid overlay" bash -c '
    "$0" --shrink -B b65537.raw -F raw i1000.raw > shrunk.qcow2 &&
    qemu-img check -q shrunk.qcow2 && qemu-img compare -q -f raw i1000.raw shrunk.qcow2' "$Q2S"
check "an input of 65537 bytes from a pipe over a base of 1000: a valid overlay" bash -c '
    cat i65537.raw | "$0" -B b1000.raw -F raw - > piped.qcow2 &&
    qemu-img check -q piped.qcow2 && qemu-img compare -q -f raw i65537.raw piped.qcow2' "$Q2S"

# =========================================================================
# Bases that are not images, that fail, that vanish, or that are the
# output itself.
# =========================================================================
mkdir adir
mkfifo base.fifo
check "--diff=a directory: refused" fails 1 "adir" "$Q2S" --diff=adir -B base.raw -F raw in.raw
check "-B a directory -F raw: refused" fails 1 "adir" "$Q2S" -B adir -F raw in.raw
check "--diff=a FIFO nobody writes: refused, not waited on" \
    fails 1 "base.fifo" "$Q2S" --diff=base.fifo -B base.raw -F raw in.raw
check "-B a raw file -F qcow2: refused (the base is read in -F's format)" \
    fails 1 "base.raw" "$Q2S" -B base.raw -F qcow2 in.raw

# The output redirected onto the base: the shell empties it first, and the
# tool would compare with an empty base and then write the overlay where
# its backing file was.  QEMU would read the overlay's own bytes as its
# backing's.
cp base.raw self.raw
"$Q2S" -B self.raw -F raw in.raw > self.raw 2> self.err
status=$?
check "  ... -B self.raw -F raw in.raw > self.raw: status 1, one line" bash -c '
    test "$0" = 1 && test "$(wc -l < self.err)" = 1 && grep -q "standard output" self.err' "$status"
cp base.raw self.raw
"$Q2S" --diff=self.raw -B base.raw -F raw in.raw >> self.raw 2> self.err
status=$?
check "  ... --diff=self.raw >> self.raw: status 1, one line" bash -c '
    test "$0" = 1 && test "$(wc -l < self.err)" = 1 && grep -q "standard output" self.err' "$status"

if have nbdkit && nbdkit --filter=error null --version > /dev/null 2>&1 &&
   nbdkit --filter=delay null --version > /dev/null 2>&1; then
    # serve_nbdkit NAME NBDKIT-ARGS...: nbdkit on NAME.sock (pid in
    # NAME.kitpid) until the end of the test; sets uri.
    serve_nbdkit() {
        local name=$1 i; shift
        nbdkit -U "$scratch/$name.sock" -P "$scratch/$name.kitpid" "$@" 2> "$name.log" ||
            { cat "$name.log"; return 1; }
        for ((i = 0; i < 50; i++)); do [ -S "$scratch/$name.sock" ] && break; sleep 0.05; done
        uri="nbd+unix:///?socket=$scratch/$name.sock"
    }
    stop_nbdkit() {
        local file
        for file in "$scratch"/*.kitpid; do
            [ -e "$file" ] && kill "$(cat "$file")" 2>/dev/null
            rm -f "$file"
        done
    }
    cleanup_hooks+=(stop_nbdkit)
    n=0
    for filter in "error-pread-rate=1 error-pread=EIO" "error-pread-rate=1 error-pread=EPERM" \
                  "error-extents-rate=1 error-extents=EIO" "error-rate=1 error=ENOSPC"; do
        n=$((n + 1))
        # shellcheck disable=SC2086
        serve_nbdkit "err$n" --filter=error file base.raw $filter
        check "--diff=NBD base whose reads fail ($filter): status 1, one line, no output" \
            fails 1 "" "$Q2S" --diff="$uri" -B base.raw -F raw in.raw
        check "  ... nothing on stdout" test ! -s out.bin
    done
    for delay in 0.05 0.2; do
        serve_nbdkit "slow$delay" --filter=delay file base.raw rdelay=100ms
        pid=$(cat "slow$delay.kitpid")
        ( sleep "$delay"; kill -KILL "$pid" ) &
        killer=$!
        "$Q2S" --diff="$uri" -B base.raw -F raw in.raw > killed.qcow2 2> killed.err
        status=$?
        wait "$killer"
        check "--diff=NBD base killed after $delay s: an overlay or one error line" bash -c '
            if [ "$0" = 0 ]; then
                qemu-img check -q killed.qcow2 && qemu-img compare -q -f raw in.raw killed.qcow2
            else
                test "$0" = 1 && test "$(wc -l < killed.err)" = 1 && test ! -s killed.qcow2
            fi' "$status"
    done
    stop_nbdkit
else
    skip "NBD bases that fail or vanish" "needs nbdkit with its error and delay filters (Debian packages nbdkit, nbdkit-plugin-*)"
fi

# =========================================================================
# Zero clusters: an input of zeros over a base of data is nothing but zero
# clusters, at every cluster size, refcount width and compression; QEMU
# then writes into such overlays as into any.
# =========================================================================
for opts in "-c 512" "-c 2M" "-r 1" "-r 64" "--compress=zstd" "--compress=zlib" "-c 512 -r 1 --compress=zstd"; do
    # shellcheck disable=SC2086
    check "zeros over data, $opts: only zero clusters" bash -c '
        "$0" $1 -B base.raw -F raw zeros.raw > zc.qcow2 && qemu-img check -q zc.qcow2 &&
        qemu-img compare -q -f raw zeros.raw zc.qcow2' "$Q2S" "$opts"
    check "  ... the whole disk, no data" test "$(own_zero_bytes zc.qcow2)" = $((4 * M))
    check "  ... --measure --json says as many zero clusters as qemu-img map shows" bash -c '
        cs=$(qemu-img info --output=json zc.qcow2 | python3 -c "import json,sys; print(json.load(sys.stdin)[\"cluster-size\"])")
        said=$("$0" --measure --json $1 -B base.raw -F raw zeros.raw |
               python3 -c "import json,sys; print(json.load(sys.stdin)[\"zero-clusters\"])")
        test "$said" = $((4 * 1048576 / cs))' "$Q2S" "$opts"
    check "  ... QEMU writes, zeroes and discards in it: check clean, content right" bash -c '
        qemu-io -f qcow2 -c "write -P 7 100k 300k" -c "write -z 1M 64k" -c "discard 2M 1M" \
            -c "write -P 8 3M 1M" zc.qcow2 > /dev/null &&
        qemu-img check -q zc.qcow2 &&
        python3 -c "
d = bytearray(4 << 20)
d[100 * 1024:400 * 1024] = b\"\\x07\" * (300 * 1024)
d[3 << 20:] = b\"\\x08\" * (1 << 20)
open(\"zc-want.raw\", \"wb\").write(d)" &&
        qemu-img compare -q -f raw zc-want.raw zc.qcow2'
done
for cs in 512 4096 65536; do
    check "in.raw over base.raw, -c $cs: --measure --json zero-clusters is qemu-img map's" bash -c '
        "$0" -c "$1" -B base.raw -F raw in.raw > mz.qcow2 &&
        said=$("$0" --measure --json -c "$1" -B base.raw -F raw in.raw |
               python3 -c "import json,sys; print(json.load(sys.stdin)[\"zero-clusters\"])") &&
        got=$(qemu-img map -f qcow2 --output=json mz.qcow2 | python3 -c "
import json, sys
cs = $(numfmt --from=iec "$1")
print(sum(e[\"length\"] // cs for e in json.load(sys.stdin)
          if e[\"depth\"] == 0 and e[\"zero\"] and \"offset\" not in e))") &&
        echo "said $said, map $got" && test "$said" = "$got" && test "$got" != 0' "$Q2S" "$cs"
done

# =========================================================================
# Progress with increments.
# =========================================================================
check "--progress-fd with --bitmap: 000 first, 100 last, increasing" bash -c '
    "$0" --progress-fd=3 -f qcow2 --bitmap=all -B full.qcow2 -F qcow2 disk.qcow2 3> prog.txt > pr.qcow2 &&
    python3 -c "
import sys
s = open(\"prog.txt\").read()
v = [int(s[i:i + 3]) for i in range(0, len(s), 3)]
sys.exit(not (len(s) % 3 == 0 and v[0] == 0 and v[-1] == 100 and v == sorted(set(v))))"' "$Q2S"
check "--progress-fd with a reader that goes away: the increment goes on" bash -c '
    { "$0" --progress-fd=3 -f qcow2 --bitmap=all -B full.qcow2 -F qcow2 disk.qcow2 3>&1 > pg.qcow2 2> pg.err | head -c 3 > /dev/null; } &&
    qemu-img compare -q -f raw disk.raw pg.qcow2' "$Q2S"
check "-p with --diff-format=qcow2: the same bytes as without" bash -c '
    "$0" -p --diff=base.qcow2 --diff-format=qcow2 -B base.qcow2 -F qcow2 in.raw > p1.qcow2 2> p.err &&
    "$0" --diff=base.qcow2 --diff-format=qcow2 -B base.qcow2 -F qcow2 in.raw > p2.qcow2 &&
    cmp p1.qcow2 p2.qcow2 && test -s p.err' "$Q2S"
check "no qemu-nbd left, nothing in \$TMPDIR" nothing_left
finish
