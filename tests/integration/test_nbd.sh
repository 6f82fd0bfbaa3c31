# NBD URIs as input, served by nbdkit: the same bytes as from a raw file
# of the same content, zero extents never read, the server's limits
# obeyed, and every failure one line and exit status 1.
. "$(dirname "$0")/lib.sh"

if ! have nbdkit; then
    skip "NBD input" "nbdkit is not installed (Debian package nbdkit)"
    finish
    exit 0
fi

# --- Servers -------------------------------------------------------------
. "$top/tests/integration/nbdkit.sh"

# --- Comparisons ---------------------------------------------------------
# same_output RAW OPTION...: the stream from $uri is the stream from the
# raw file RAW, byte for byte, with the same options; leaves got.qcow2.
same_output() {
    local raw=$1; shift
    timeout 60 "$Q2S" "$@" "$raw" > want.qcow2 ||
        { echo "the conversion of $raw failed"; return 1; }
    timeout 60 "$Q2S" "$@" "$uri" > got.qcow2 ||
        { echo "the conversion of $uri failed"; return 1; }
    cmp want.qcow2 got.qcow2
}

# check_valid NAME RAW: got.qcow2 is a valid image of RAW's content.
check_valid() {
    if have qemu-img; then
        check "$1" valid_image got.qcow2 "$2"
    else
        skip "$1" "qemu-img is not installed (Debian package qemu-utils)"
    fi
}

# json_field NAME: a number from --measure --json on stdin.
json_field() { sed -n "s/^ *\"$1\": *\([0-9]*\).*/\1/p"; }

# same_measure RAW: --measure --json for $uri says what it says for RAW.
same_measure() {
    local want got
    want=$("$Q2S" --measure --json "$1") && got=$("$Q2S" --measure --json "$uri") ||
        { echo "--measure failed"; return 1; }
    [ "$want" = "$got" ] || { echo "raw:"; echo "$want"; echo "nbd:"; echo "$got"; return 1; }
}

# reads_only_data LOG ALIGN START:END...: every read in nbdkit's log (log
# filter) lies in the byte ranges [START, END) widened to multiples of
# ALIGN (whole clusters, whole extents of the server), no read is larger
# than the 32 MiB that the NBD protocol allows by default, and there was
# at least one read.  The ranges are sorted.
reads_only_data() {
    local log=$1 align=$2; shift 2
    local line offset count range start end i reads=0
    local starts=() ends=()
    for range in "$@"; do
        start=$((${range%:*} / align * align))
        end=$(((${range#*:} + align - 1) / align * align))
        i=$((${#ends[@]} - 1))
        if [ "$i" -ge 0 ] && [ "$start" -le "${ends[$i]}" ]; then
            [ "$end" -gt "${ends[$i]}" ] && ends[$i]=$end
        else
            starts+=("$start"); ends+=("$end")
        fi
    done
    while IFS= read -r line; do
        offset=${line##* offset=}; offset=$((${offset%% *}))
        count=${line##* count=}; count=$((${count%% *}))
        reads=$((reads + 1))
        if [ "$count" -gt $((32 * 1024 * 1024)) ]; then
            echo "a read of $count bytes at $offset"; return 1
        fi
        for ((i = 0; i < ${#starts[@]}; i++)); do
            [ "$offset" -ge "${starts[$i]}" ] &&
                [ $((offset + count)) -le "${ends[$i]}" ] && continue 2
        done
        echo "a read outside the data: offset $offset, $count bytes"
        return 1
    done < <(grep ' Read id=' "$log")
    [ "$reads" -gt 0 ] || { echo "no read at all"; return 1; }
}

# no_reads LOG: the log filter saw no read.
no_reads() {
    if grep ' Read id=' "$1"; then return 1; fi
    grep -q ' Connect ' "$1" || { echo "no connection in the log"; return 1; }
}

MiB=$((1024 * 1024))

# --- 1. A raw file served by the file plugin ------------------------------
make_image disk.raw $((6 * MiB))
if serve file -r file "$scratch/disk.raw"; then
    for c in 512 4096 65536; do
        check "file plugin, -c $c: the same bytes as from the raw file" \
            same_output disk.raw -c "$c"
        check_valid "file plugin, -c $c: qemu-img check and compare" disk.raw
    done
    check "file plugin, -c 2M -r 1: the same bytes" same_output disk.raw -c 2M -r 1
    check "file plugin, -r 64: the same bytes" same_output disk.raw -r 64
    check "file plugin, -f raw accepted: the same bytes" same_output disk.raw -f raw
    progress() { same_output disk.raw -p 2> progress.txt; }
    check "file plugin, -p: the same bytes" progress
    check "file plugin: --measure --json as for the raw file" same_measure disk.raw
    stop_server
else
    not_ok "nbdkit file plugin starts"
fi

# The same without any block status (every byte is data to the tool).
if serve noext -r --filter=noextents file "$scratch/disk.raw"; then
    check "noextents filter: the same bytes" same_output disk.raw
    stop_server
else
    not_ok "nbdkit noextents filter starts"
fi

# A server that takes requests of 64 KiB at most, and fails larger ones:
# the advertised maximum is obeyed.
if serve small -r --filter=blocksize-policy file "$scratch/disk.raw" \
        blocksize-maximum=65536 blocksize-error-policy=error; then
    check "64 KiB maximum request size: obeyed, the same bytes" same_output disk.raw
    stop_server
else
    not_ok "nbdkit blocksize-policy filter starts"
fi
# A 4 KiB minimum block size (as qemu-nbd advertises for O_DIRECT on 4K
# disks): smaller clusters are read as whole aligned blocks.
if serve aligned -r --filter=blocksize-policy file "$scratch/disk.raw" \
        blocksize-minimum=4096 blocksize-error-policy=error; then
    check "4 KiB minimum request size, -c 512: obeyed, the same bytes" same_output disk.raw -c 512
    check "4 KiB minimum request size, -c 64K: the same bytes" same_output disk.raw
    stop_server
else
    not_ok "nbdkit blocksize-policy filter starts (minimum)"
fi

# --- 2. The data plugin: sparse, with data at known places ----------------
# 512 MiB + 1000 bytes; data at the start, 3 MiB at an odd offset (across
# requests and clusters), and in the last bytes.  The raw file is built apart.
data_size=$((512 * MiB + 1000))
head -c 300000 /dev/urandom > chunk1
head -c $((3 * MiB)) /dev/urandom > chunk2
head -c 65536 /dev/zero | tr '\0' '\125' > chunk3
rm -f data.raw; truncate -s "$data_size" data.raw
printf hello | write_at data.raw 0
write_at data.raw $((0x100000)) < chunk1
write_at data.raw $((0x300000)) < chunk3
write_at data.raw $((0x1234567)) < chunk2
printf end | write_at data.raw $((data_size - 3))
data_ranges=(0:5 $((0x100000)):$((0x100000 + 300000))
    $((0x300000)):$((0x300000 + 65536))
    $((0x1234567)):$((0x1234567 + 3 * MiB))
    $((data_size - 3)):$data_size)
data_spec="\"hello\" @0x100000 <$scratch/chunk1 @0x300000 0x55*65536 @0x1234567 <$scratch/chunk2 @$((data_size - 3)) \"end\""
if have_plugin data; then
    # One server for each cluster size, each with its log of the reads.
    # nbdkit's sparse allocator describes extents in pages of 32 KiB, so
    # data is expected in whole 64 KiB blocks at least.
    for c in 512 65536 2097152; do
        if serve data --filter=log data "$data_spec" size="$data_size" \
                logfile="$scratch/data-$c.log"; then
            check "data plugin, -c $c: the same bytes as from the raw file" \
                same_output data.raw -c "$c"
            [ "$c" = 65536 ] && check_valid "data plugin: qemu-img check and compare" data.raw
            [ "$c" = 65536 ] && check "data plugin: --measure --json as for the raw file" \
                same_measure data.raw
            stop_server
            check "data plugin, -c $c: only the clusters with data are read" \
                reads_only_data "data-$c.log" $((c > 65536 ? c : 65536)) "${data_ranges[@]}"
        else
            not_ok "nbdkit data plugin starts"
        fi
    done
else
    skip "data plugin" "the nbdkit data plugin is not available"
fi

# An export of zeros only: 1 TiB, no read at all.
rm -f zeros.raw; truncate -s 1T zeros.raw
if serve zeros --filter=log memory size=1T logfile="$scratch/zeros.log"; then
    check "1 TiB of zeros (memory plugin): the same bytes" same_output zeros.raw
    stop_server
    check "1 TiB of zeros: nothing read" no_reads zeros.log
else
    not_ok "nbdkit memory plugin starts"
fi
rm -f zeros.raw

# --- 3, 4. Content made by nbdkit, copied by qemu-img ---------------------
if have qemu-img; then
    # pattern: every byte allocated and non-zero (except the first 8).
    if serve pattern pattern size=$((20 * MiB + 4096)); then
        if qemu-img convert -f raw -O raw "$uri" pattern.raw 2> qemu.err; then
            check "pattern plugin: the same bytes as from its raw copy" \
                same_output pattern.raw
            check_valid "pattern plugin: qemu-img check and compare" pattern.raw
            check "pattern plugin, -c 512: the same bytes" same_output pattern.raw -c 512
        else
            not_ok "qemu-img copies the pattern export"; sed 's/^/# /' qemu.err
        fi
        stop_server
    else
        not_ok "nbdkit pattern plugin starts"
    fi
    # sparse-random: runs of random data and runs of holes.
    if have_plugin sparse-random &&
        serve sparse sparse-random size=64M seed=42 percent=10 \
            runlength=262144 random-content=true; then
        if qemu-img convert -f raw -O raw "$uri" sparse.raw 2> qemu.err; then
            check "sparse-random plugin: the same bytes as from its raw copy" \
                same_output sparse.raw
            check_valid "sparse-random plugin: qemu-img check and compare" sparse.raw
            check "sparse-random plugin, -c 4096: the same bytes" \
                same_output sparse.raw -c 4096
            sparse_clusters() {
                local want got
                want=$("$Q2S" --measure --json sparse.raw | json_field data-clusters)
                got=$("$Q2S" --measure --json "$uri" | json_field data-clusters)
                echo "data clusters: raw $want, nbd $got of 1024"
                [ -n "$got" ] && [ "$got" = "$want" ] && [ "$got" -gt 0 ] && [ "$got" -lt 1024 ]
            }
            check "sparse-random plugin: holes make no data cluster" sparse_clusters
        else
            not_ok "qemu-img copies the sparse-random export"; sed 's/^/# /' qemu.err
        fi
        stop_server
    else
        skip "sparse-random plugin" "the nbdkit sparse-random plugin is not available"
    fi
else
    skip "pattern and sparse-random plugins" "qemu-img is not installed (Debian package qemu-utils)"
fi

# --- 5. Sizes that are not multiples of 512 or of the cluster -------------
# Each file a different export of one server (file plugin, dir=).
mkdir odd
for size in 1 511 513 65537 1000001 $((2 * MiB + 1)) 3000001; do
    truncate -s "$size" "odd/$size"
    printf 'A' | write_at "odd/$size" 0
    printf 'Z' | write_at "odd/$size" $((size - 1))
done
make_image odd/image $((5 * MiB + 7))
if serve odd file dir="$scratch/odd"; then
    base_uri=$uri
    for name in 1 511 513 65537 1000001 $((2 * MiB + 1)) 3000001 image; do
        uri="nbd+unix:///$name?socket=$scratch/odd.sock"
        for c in 512 65536; do
            check "export of $name bytes (export name in the URI), -c $c: the same bytes" \
                same_output "odd/$name" -c "$c"
        done
    done
    check_valid "export of an odd size: qemu-img check and compare" odd/image
    uri="nbd+unix:///missing?socket=$scratch/odd.sock"
    check "an export name the server does not have" fails 1 "missing" "$Q2S" "$uri"
    uri=$base_uri
    stop_server
else
    not_ok "nbdkit file plugin (dir=) starts"
fi
# An empty export.
: > empty.raw
if serve empty null size=0; then
    check "an empty export: the same bytes as an empty file" same_output empty.raw
    stop_server
else
    not_ok "nbdkit null plugin starts"
fi

# --- 6. TCP on the loopback address ---------------------------------------
if serve_tcp tcp -r file "$scratch/disk.raw"; then
    check "nbd:// over TCP on 127.0.0.1: the same bytes" same_output disk.raw
    tcp_uri=$uri
    stop_server
    check "nothing listening on a TCP port: one line, status 1" \
        fails 1 "Connection refused" "$Q2S" "$tcp_uri"
else
    not_ok "nbdkit on 127.0.0.1 starts"
fi

# --- 7. Faults --------------------------------------------------------------
# Every read fails: the first read, at offset 0, is reported; nothing out.
if serve eio -r --filter=error file "$scratch/disk.raw" error=EIO error-pread-rate=100%; then
    check "every read fails: one line with the offset, status 1" \
        fails 1 "read error at offset 0: .*Input/output error" "$Q2S" "$uri"
    check "every read fails: nothing written" test ! -s out.bin
    # A delta reads the base on a thread of its own while the input is
    # read: a failure on either side is one line, whichever side it is.
    check "--diff, every read of the base fails: one line, status 1" \
        fails 1 "read error at offset 0: .*Input/output error" \
        "$Q2S" --diff "$uri" disk.raw
    check "--diff, every read of the input fails: one line, status 1" \
        fails 1 "read error at offset 0: .*Input/output error" \
        "$Q2S" --diff disk.raw "$uri"
    check "--diff, both fail: one line, status 1" \
        fails 1 "read error at offset 0: .*Input/output error" \
        "$Q2S" --diff "$uri" "$uri"
    stop_server
else
    not_ok "nbdkit error filter starts"
fi
# Block status fails.
if serve eext -r --filter=error file "$scratch/disk.raw" error-extents-rate=100%; then
    check "block status fails: one line, status 1" \
        fails 1 "block status" "$Q2S" "$uri"
    stop_server
else
    not_ok "nbdkit error filter (extents) starts"
fi
# Reads fail from 4 MiB on, in a fully allocated 8 MiB export: of the
# requests in flight (of a power-of-two size up to 4 MiB, so one of them
# starts at 4 MiB), the first that failed is reported.  The scan fails
# before the first byte of the stream is written.
if have_plugin eval &&
    serve half eval get_size='echo 8M' \
        pread='if [ "$4" -ge 4194304 ]; then echo "EIO injected" >&2; exit 1; fi
               head -c "$3" /dev/zero | tr "\000" "\001"'; then
    check "reads fail from 4 MiB on: the offset of the first failed read" \
        fails 1 "read error at offset 4194304:" "$Q2S" -c 4096 "$uri"
    check "reads fail from 4 MiB on: nothing written" test ! -s out.bin
    stop_server
else
    skip "reads that fail from an offset on" "the nbdkit eval plugin is not available"
fi

# Reads start failing while the stream is written: the reader takes one
# byte (the tool is then blocked on the full pipe, before any data), the
# errors are switched on, then the reader drains the pipe.  Pass 2 reads
# the server only when told to read again (--reread, no spool memory).
rm -f trigger
if serve late --filter=error pattern size=64M error=EIO error-pread-rate=100% \
        error-pread-file="$scratch/trigger"; then
    late_error() {
        local full status
        full=$("$Q2S" --measure "$uri") || return 1
        timeout 60 "$Q2S" --reread --spool-memory=0 "$uri" 2> late.err |
            { head -c 1 > late.out; touch trigger; cat >> late.out; }
        status=${PIPESTATUS[0]}
        echo "status $status, $(wc -c < late.out) of $full bytes"; cat late.err
        [ "$status" = 1 ] && [ "$(wc -l < late.err)" = 1 ] &&
            grep -q '^qcow2-to-stdout: .*read error at offset [0-9]*: .*Input/output error$' late.err &&
            [ "$(wc -c < late.out)" -lt "$full" ]
    }
    check "reads fail during the writing: status 1, one line, a short stream" late_error
    stop_server
else
    not_ok "nbdkit error filter (error-pread-file) starts"
fi
rm -f trigger

# The server goes away (SIGKILL) while the tool, reading again, is blocked
# on a full pipe.
# (bash reports the killed job on stderr: hidden while this runs.)
exec 3>&2 2> /dev/null
if serve killed pattern size=64M; then
    check "the server is killed mid-stream: status 1, one line with the offset, a short stream" \
        killed_mid_stream --reread --spool-memory=0
    stop_server
    exec 2>&3 3>&-
    # Its socket is left behind, with nobody listening.
    check "a socket nobody listens on: one line, status 1" \
        fails 1 "Connection refused" "$Q2S" "$uri"
else
    exec 2>&3 3>&-
    not_ok "nbdkit pattern plugin starts"
fi

# --- 8. Nothing there ------------------------------------------------------
check "a socket path that does not exist: one line, status 1" \
    fails 1 "No such file or directory" "$Q2S" "nbd+unix:///?socket=$scratch/nothing"

# --- 9. Options that do not apply to an NBD export -------------------------
nouri="nbd+unix:///?socket=$scratch/nothing"
check "-f qcow2 with an NBD URI is refused" fails 1 "read as raw" "$Q2S" -f qcow2 "$nouri"
check "-f vmdk with an NBD URI is refused" fails 1 "read as raw" "$Q2S" -f vmdk "$nouri"
check "-d with an NBD URI is refused: a usage error" fails 2 "NBD export" "$Q2S" -d "$nouri"
check "-R with an NBD URI is refused: a usage error" fails 2 "NBD export" "$Q2S" -R "$nouri"

# --- 10. --measure and byte ranges ------------------------------------------
if serve ranges -r file "$scratch/disk.raw"; then
    measure_is_size() {
        local size
        size=$("$Q2S" --measure "$uri") && "$Q2S" "$uri" > full.qcow2 || return 1
        echo "measured $size, stream $(wc -c < full.qcow2)"
        [ "$size" = "$(wc -c < full.qcow2)" ]
    }
    check "--measure is the size of the stream" measure_is_size
    ranges() {
        local size a b
        size=$(wc -c < full.qcow2)
        a=100000 b=$((size / 2 + 12345))
        "$Q2S" --offset=0 --length=$a "$uri" > part0 &&
            "$Q2S" --offset=$a --length=$((b - a)) "$uri" > part1 &&
            "$Q2S" --offset=$b --length=1T "$uri" > part2 || return 1
        cat part0 part1 part2 | cmp - full.qcow2
    }
    check "three ranges concatenated are the full stream" ranges
    past_end() {
        "$Q2S" --offset="$(wc -c < full.qcow2)" "$uri" > part3 && [ ! -s part3 ]
    }
    check "a range at the end of the stream is empty" past_end
    stop_server
else
    not_ok "nbdkit file plugin starts"
fi

# --- 11. Servers that stop answering, and signals while waiting ----------
# A server that accepts and then says nothing: a Python listener (it ends
# by itself after 60 s, and at the end of the test).
silent_pids=()
stop_silent() { local pid; for pid in "${silent_pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done; }
cleanup_hooks+=(stop_silent)
serve_silent() {
    rm -f "$scratch/silent.sock" "$scratch/silent.ready"
    python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(4)
open(sys.argv[2], "w").close()
connections = []
end = time.time() + 60
while time.time() < end:
    s.settimeout(end - time.time())
    try:
        connections.append(s.accept())
    except OSError:
        break' "$scratch/silent.sock" "$scratch/silent.ready" &
    silent_pids+=($!)
    local i
    for ((i = 0; i < 100; i++)); do [ -e "$scratch/silent.ready" ] && break; sleep 0.05; done
    uri="nbd+unix:///?socket=$scratch/silent.sock"
}
if have python3; then
    serve_silent
    sigterm_silent() {
        local tool
        "$Q2S" "$uri" > /dev/null 2> silent.err &
        tool=$!
        sleep 0.5
        dies_of TERM "$tool" silent.err
    }
    check "SIGTERM while a server never answers the handshake: ends within a second" sigterm_silent
    check "--timeout against a server that never answers: one line, status 1" \
        fails 1 "the server did not answer for 1 s during the handshake" "$Q2S" --timeout=1 "$uri"
    stop_silent
else
    skip "a server that never answers" "no python3"
fi
if have_plugin pattern && serve slow --filter=delay pattern size=4M delay-read=5; then
    check "--timeout while reading: the message names the offset" \
        fails 1 "did not answer for 1 s while reading at offset 0" "$Q2S" --timeout=1 "$uri"
    stop_server
else
    not_ok "nbdkit delay filter starts"
fi

# A qcow2 whose backing file is an NBD export (trusted: QEMU opens it):
# its server answers qemu-nbd's connection and then nothing more, so the
# second opener, qemu-img map, waits.  --timeout bounds every wait
# ("Images you did not make"), that one too.
serve_first_only() {
    rm -f "$scratch/first.sock" "$scratch/first.ready"
    python3 -c 'import socket, struct, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(4)
open(sys.argv[2], "w").close()
def rx(c, n):
    b = b""
    while len(b) < n:
        x = c.recv(n - len(b))
        if not x: raise EOFError
        b += x
    return b
def reply(c, opt, kind, data=b""):
    c.sendall(struct.pack(">QIII", 0x3e889045565a9, opt, kind, len(data)) + data)
held = []
end = time.time() + 60
c = s.accept()[0]
try:
    c.sendall(b"NBDMAGIC" + struct.pack(">QH", 0x49484156454F5054, 3))
    rx(c, 4)
    while True:
        _, opt, n = struct.unpack(">QII", rx(c, 16)); rx(c, n)
        if opt == 7:
            reply(c, 7, 3, struct.pack(">HQH", 0, 1 << 20, 3)); reply(c, 7, 1); break
        reply(c, opt, 2**31 + 1)
    s.setblocking(False)
    while time.time() < end:
        try:
            held.append(s.accept())
        except BlockingIOError:
            pass
        c.settimeout(0.05)
        try:
            _, _, kind, handle, _, n = struct.unpack(">IHHQQI", rx(c, 28))
        except socket.timeout:
            continue
        if kind == 2: break
        c.sendall(struct.pack(">IIQ", 0x67446698, 0, handle) + bytes(n if kind == 0 else 0))
except (EOFError, OSError):
    time.sleep(max(0, end - time.time()))' "$scratch/first.sock" "$scratch/first.ready" &
    silent_pids+=($!)
    local i
    for ((i = 0; i < 100; i++)); do [ -e "$scratch/first.ready" ] && break; sleep 0.05; done
}
if have python3 && have qemu-img && have qemu-nbd; then
    serve_first_only
    qemu-img create -q -f qcow2 -u -b "nbd+unix:///?socket=$scratch/first.sock" \
        -F raw nbd-backed.qcow2 1M
    # qemu-img map is only a shortcut: past the timeout it is given up, and
    # the data comes through qemu-nbd, which does get answers.
    map_given_up() {
        local start=$SECONDS
        truncate -s 1M zeros-1m.raw
        timeout 15 "$Q2S" --timeout=1 -f qcow2 nbd-backed.qcow2 > nbd-backed-out.qcow2 &&
            valid_image nbd-backed-out.qcow2 zeros-1m.raw || return 1
        echo "took $((SECONDS - start)) s"
        [ $((SECONDS - start)) -le "$(limit 5)" ]
    }
    check "--timeout=1, a backing NBD server that answers only qemu-nbd: qemu-img map given up, a valid image" map_given_up
    stop_silent
else
    skip "a backing NBD server that answers once" "no python3 or qemu-utils"
fi

# --- 12. An export size that is not a multiple of the minimum block size -----
head -c 10000 /dev/urandom > tail.raw
if serve tailok --filter=blocksize-policy file "$scratch/tail.raw" \
        blocksize-minimum=4096 blocksize-error-policy=allow; then
    tail_allowed() { "$Q2S" "$uri" > tail.qcow2 && valid_image tail.qcow2 tail.raw; }
    check "minimum block 4096, size 10000, the server allows the tail: a valid image" tail_allowed
    stop_server
else
    not_ok "nbdkit blocksize-policy filter starts"
fi
if serve tailstrict --filter=blocksize-policy file "$scratch/tail.raw" \
        blocksize-minimum=4096 blocksize-error-policy=error; then
    check "the same with a server that refuses the tail: one line naming the cause" \
        fails 1 "cannot read the last 1808 bytes: the export's size, 10000, is not a multiple of the server's minimum block size, 4096" "$Q2S" "$uri"
    stop_server
else
    not_ok "nbdkit blocksize-policy filter starts"
fi

# --- Nothing left behind ------------------------------------------------------
# Every server was stopped by now; each named the scratch directory on its
# command line (its pid file), and a qemu-nbd would name its input there.
left_behind() {
    local pid found=0
    if [ "${#server_pids[@]}" != 0 ]; then
        echo "servers not stopped: ${server_pids[*]}"; found=1
    fi
    for pid in $(pgrep -x nbdkit) $(pgrep -x qemu-nbd); do
        if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "$scratch"; then
            echo "process $pid still runs: $(tr '\0' ' ' < "/proc/$pid/cmdline")"; found=1
        fi
    done
    [ "$found" = 0 ]
}
check "no nbdkit or qemu-nbd left running" left_behind
finish
