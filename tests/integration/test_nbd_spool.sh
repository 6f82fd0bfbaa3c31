# Read once (issue 12): pass 1 keeps an NBD input's data for pass 2, in
# memory up to --spool-memory, the rest in an unlinked file in $TMPDIR;
# --reread reads again what memory does not hold.  Checked from the
# server's side (nbdkit's log filter): which bytes are asked for, how
# often, over how many connections; the temporary file while the tool
# runs and after it ends however it ends; a temporary directory that is
# full or missing; faults while pass 1 streams; block status asked ahead.
. "$(dirname "$0")/lib.sh"

if ! have nbdkit; then
    skip "NBD spool" "nbdkit is not installed (Debian package nbdkit)"
    finish
    exit 0
fi
. "$top/tests/integration/nbdkit.sh"
for filter in log error delay; do
    if ! have_filter "$filter"; then
        skip "NBD spool" "the nbdkit $filter filter is not available"
        finish
        exit 0
    fi
done

MiB=$((1024 * 1024))
KiB=1024

# Each run gets a temporary directory of its own, which must be empty
# after it, whatever happened.
tmp=$scratch/tmp
export TMPDIR=$tmp
# Under valgrind (make check-valgrind), valgrind's own files (its
# valgrind_proc_* and, after SIGKILL, vgdb-pipe-*) do not count.
fresh_tmp() { rm -rf "$tmp"; mkdir "$tmp"; }
not_valgrind() { grep -v -e '/valgrind_proc_' -e '/vgdb-pipe-' -e '^valgrind_proc_' -e '^vgdb-pipe-'; }
tmp_empty() {
    [ -z "$(ls -A "$tmp" 2>/dev/null | not_valgrind)" ] ||
        { echo "left in \$TMPDIR:"; ls -la "$tmp"; return 1; }
}

# --- The log: what the server was asked ---------------------------------------
# A run's requests are those logged after the mark (the log's size before
# the run); nbdkit writes each request's line before it answers.
mark() { mark=$(stat -c %s "$log"); }
since_mark() { tail -c +$((mark + 1)) "$log"; }
# read_pairs: "offset count" of each Read since the mark, in decimal,
# sorted by offset.
read_pairs() {
    since_mark | sed -n 's/.* Read id=[0-9]* offset=\(0x[0-9a-f]*\) count=\(0x[0-9a-f]*\) .*/\1 \2/p' |
        while read -r o c; do echo "$((o)) $((c))"; done | sort -n -k1,1
}
# read_total: the bytes of all reads since the mark.
read_total() { read_pairs | awk '{ t += $2 } END { print t + 0 }'; }
# no_overlap: no byte asked for twice since the mark.
no_overlap() {
    read_pairs | awk '$1 < end { print "offset " $1 " (" $2 " bytes) read again: an earlier read ended at " end; bad = 1 }
                      $1 + $2 > end { end = $1 + $2 }
                      END { exit bad }'
}
# connections_since_mark: the connections opened since the mark.
connections_since_mark() { since_mark | grep -c ' Connect export='; }

# convert_logged OPTION...: converts $uri into got.qcow2 with the options,
# after setting the mark, in a fresh $TMPDIR; want.qcow2 is the raw file
# $raw converted with the same options.  Fails unless both succeed, the
# tool says nothing, the outputs are the same bytes and $TMPDIR is left
# empty.
convert_logged() {
    fresh_tmp
    timeout 60 "$Q2S" "$@" "$raw" > want.qcow2 ||
        { echo "the conversion of $raw failed"; return 1; }
    mark
    timeout 60 "$Q2S" "$@" "$uri" > got.qcow2 2> got.err ||
        { echo "the conversion of $uri failed: status $?"; cat got.err; return 1; }
    [ ! -s got.err ] || { echo "stderr:"; cat got.err; return 1; }
    cmp want.qcow2 got.qcow2 && tmp_empty
}

# reads_once EXPECTED OPTION...: the conversion asks for each byte once,
# EXPECTED bytes in all.
reads_once() {
    local want=$1 total; shift
    convert_logged "$@" || return 1
    total=$(read_total)
    echo "read $total bytes, expected $want"
    no_overlap && [ "$total" = "$want" ]
}

# reads_again EXPECTED OPTION...: the conversion reads EXPECTED bytes in
# all, some of them twice.
reads_again() {
    local want=$1 total; shift
    convert_logged "$@" || return 1
    total=$(read_total)
    echo "read $total bytes, expected $want"
    [ "$total" = "$want" ]
}

# --- 1. Read once ---------------------------------------------------------------
# 24 MiB with 7 MiB of data in 64 KiB-aligned runs, none of them zeros
# (each data cluster is read once in pass 1 and, read again, once in pass
# 2): random data, text that compresses, and the last 64 KiB.
raw=$scratch/spool.raw
truncate -s $((24 * MiB)) "$raw"
head -c $((3 * MiB)) /dev/urandom | write_at "$raw" $((1 * MiB))
yes 'compressible text, compressible text' | head -c $((2 * MiB)) | write_at "$raw" $((8 * MiB))
head -c $((1 * MiB)) /dev/urandom | write_at "$raw" $((15 * MiB + 64 * KiB))
head -c $((64 * KiB)) /dev/urandom | write_at "$raw" $((24 * MiB - 64 * KiB))
# Text over random data in one cluster: part of it compresses.
yes 'more text' | head -c $((512 * KiB)) | write_at "$raw" $((12 * MiB))
data=$((3 * MiB + 2 * MiB + 1 * MiB + 64 * KiB + 512 * KiB))
log=$scratch/once.log
: > "$log"
if serve once -r --filter=log file "$raw" logfile="$log"; then
    check "default budget: each byte asked for once, the output of the raw file" \
        reads_once "$data"
    check "default budget: qemu-img check and compare" valid_image got.qcow2 "$raw"
    check "--spool-memory=0 (all in the temporary file): each byte asked for once" \
        reads_once "$data" --spool-memory=0
    check "--spool-memory=1M (part memory, part file): each byte asked for once" \
        reads_once "$data" --spool-memory=1M
    check "--spool-memory=1M --reread: all but the first 1 MiB read twice" \
        reads_again $((2 * data - MiB)) --spool-memory=1M --reread
    check "--spool-memory=0 --reread: every byte read twice" \
        reads_again $((2 * data)) --spool-memory=0 --reread
    check "--compress: each byte asked for once" reads_once "$data" --compress
    check "--compress: qemu-img check and compare" valid_image got.qcow2 "$raw"
    check "--compress --spool-memory=0: each byte asked for once" \
        reads_once "$data" --compress --spool-memory=0
    check "--compress --spool-memory=1M: each byte asked for once" \
        reads_once "$data" --compress --spool-memory=1M
    check "--compress --spool-memory=0 --reread: every byte read twice" \
        reads_again $((2 * data)) --compress --spool-memory=0 --reread
    check "--compress-cache=1M --compress: each byte asked for once" \
        reads_once "$data" --compress --compress-cache=1M
    # 2 MiB clusters: pass 1 reads the extents rounded out to whole
    # clusters (7 of them), pass 2 reads again only the extents' bytes.
    check "-c 2M: each byte asked for once" reads_once $((14 * MiB)) -c 2M
    check "-c 2M --spool-memory=0: each byte asked for once" \
        reads_once $((14 * MiB)) -c 2M --spool-memory=0
    check "-c 2M --spool-memory=0 --reread: the data read again" \
        reads_again $((14 * MiB + data)) -c 2M --spool-memory=0 --reread
    check "-c 512: each byte asked for once" reads_once "$data" -c 512
    check "-c 512 --spool-memory=0: each byte asked for once" \
        reads_once "$data" -c 512 --spool-memory=0
    check "-c 512 --spool-memory=100K --compress: each byte asked for once" \
        reads_once "$data" -c 512 --spool-memory=100K --compress
    stop_server
else
    not_ok "nbdkit file plugin with the log filter starts"
fi

# A size that is not a multiple of the cluster: 5 MiB + 1000 bytes, data
# up to the last byte.  The last cluster is read up to the end only.
raw=$scratch/odd.raw
truncate -s $((5 * MiB + 1000)) "$raw"
head -c $((1 * MiB)) /dev/urandom | write_at "$raw" $((1 * MiB))
head -c $((64 * KiB + 1000)) /dev/urandom | write_at "$raw" $((5 * MiB))
log=$scratch/odd.log
: > "$log"
if serve odd -r --filter=log file "$raw" logfile="$log"; then
    check "size 5 MiB + 1000: each byte asked for once" \
        reads_once $((MiB + 64 * KiB + 1000))
    check "size 5 MiB + 1000: qemu-img check and compare" valid_image got.qcow2 "$raw"
    check "size 5 MiB + 1000, --spool-memory=0: each byte asked for once" \
        reads_once $((MiB + 64 * KiB + 1000)) --spool-memory=0
    check "size 5 MiB + 1000, --spool-memory=0 --reread: every byte read twice" \
        reads_again $((2 * (MiB + 64 * KiB + 1000))) --spool-memory=0 --reread
    check "size 5 MiB + 1000, -c 2M --compress --spool-memory=0: each byte asked for once" \
        reads_once $((MiB + 64 * KiB + 1000)) -c 2M --compress --spool-memory=0
    stop_server
else
    not_ok "nbdkit file plugin with the log filter starts (odd size)"
fi
raw=$scratch/spool.raw

# --- 2. The temporary file -------------------------------------------------------
# spool_fds PID: what the process has open in $TMPDIR (an O_TMPFILE file
# reads as "DIR/#INODE (deleted)", an unlinked one as "DIR/NAME (deleted)").
spool_fds() {
    local fd
    for fd in /proc/"$1"/fd/*; do readlink "$fd"; done 2>/dev/null | grep -F "$tmp/" | not_valgrind
}

# while_blocked OPTION...: converts $uri into a pipe that is not read
# until the first bytes come: pass 1 is over, and the tool is blocked on
# the full pipe.  Its files in $TMPDIR then go into fds.txt; then the pipe
# is drained.  Fails unless the tool succeeds and leaves $TMPDIR empty.
while_blocked() {
    local pid status
    fresh_tmp
    rm -f out.fifo; mkfifo out.fifo
    timeout 60 "$Q2S" "$@" "$uri" > out.fifo 2> blocked.err &
    pid=$!
    exec 4< out.fifo
    timeout 60 head -c 1 <&4 > /dev/null
    spool_fds "$(pgrep -P "$pid" -x qcow2-to-stdout || pgrep -P "$pid" || echo "$pid")" > fds.txt
    cat <&4 > /dev/null
    exec 4<&-
    wait "$pid"; status=$?
    echo "status $status; open in \$TMPDIR while writing:"; cat fds.txt; cat blocked.err
    [ "$status" = 0 ] && tmp_empty
}
spool_file_open() {
    while_blocked "$@" || return 1
    grep -q ' (deleted)$' fds.txt
}
no_spool_file() {
    while_blocked "$@" || return 1
    [ ! -s fds.txt ]
}

# killed_while_blocked SIGNAL OPTION...: the tool, blocked on the full
# pipe with its temporary file open, dies of SIGNAL; $TMPDIR is empty.
killed_while_blocked() {
    local signal=$1 pid status; shift
    fresh_tmp
    rm -f out.fifo; mkfifo out.fifo
    in_background "$Q2S" "$@" "$uri" > out.fifo 2> killed.err &
    pid=$!
    exec 4< out.fifo
    timeout 60 head -c 1 <&4 > /dev/null
    spool_fds "$pid" > fds.txt
    kill "-$signal" "$pid"
    timeout 20 cat <&4 > /dev/null
    exec 4<&-
    gone_within "$pid" 20 || { kill -KILL "$pid"; wait "$pid"; return 1; }
    wait "$pid"; status=$?
    echo "status $status; open in \$TMPDIR before the signal:"; cat fds.txt; cat killed.err
    [ -s fds.txt ] && [ "$status" = $((128 + $(kill -l "$signal"))) ] && tmp_empty
}

raw=$scratch/spool.raw
if serve tmpfile -r file "$raw"; then
    check "--spool-memory=0: the temporary file is in \$TMPDIR, unlinked, while the tool writes" \
        spool_file_open --spool-memory=0
    check "--spool-memory=0 --compress: the same" \
        spool_file_open --spool-memory=0 --compress
    check "default budget: no file in \$TMPDIR" no_spool_file
    check "--spool-memory=0 --reread: no file in \$TMPDIR" no_spool_file --spool-memory=0 --reread
    for signal in INT TERM KILL; do
        check "SIG$signal while writing from the temporary file: \$TMPDIR empty after" \
            killed_while_blocked "$signal" --spool-memory=0
    done
    stop_server
else
    not_ok "nbdkit file plugin starts"
fi

# -f qcow2 goes through a qemu-nbd of the tool's own, which gives the
# extents; their data is read from the image file where it lies there as
# it is (so not kept: reading it again is cheap), or else kept.
if have qemu-img && have qemu-nbd; then
    qemu-img convert -f raw -O qcow2 "$raw" spool.qcow2
    qcow2_bytes() {
        fresh_tmp
        timeout 60 "$Q2S" -f qcow2 --spool-memory=0 spool.qcow2 > got-f.qcow2 &&
            timeout 60 "$Q2S" "$raw" > want.qcow2 && cmp want.qcow2 got-f.qcow2 && tmp_empty
    }
    check "-f qcow2 (qemu-nbd), --spool-memory=0: the same bytes as the raw file, \$TMPDIR empty" qcow2_bytes
    # Compressed clusters have no place in the file: all the data comes
    # through qemu-nbd, and is kept (here in the file); uncompressed, the
    # map places it all in the file, and nothing is kept.
    qemu-img convert -c -f raw -O qcow2 "$raw" spool-c.qcow2
    compressed_kept() { local uri=spool-c.qcow2; spool_file_open -f qcow2 --spool-memory=0; }
    plain_not_kept() { local uri=spool.qcow2; no_spool_file -f qcow2 --spool-memory=0; }
    check "-f qcow2 with compressed clusters, --spool-memory=0: an unlinked file in \$TMPDIR while writing" compressed_kept
    check "-f qcow2 uncompressed, --spool-memory=0: no file, the data is read from the image again" plain_not_kept
    compressed_bytes() {
        fresh_tmp
        timeout 60 "$Q2S" -f qcow2 --spool-memory=0 spool-c.qcow2 > got-c.qcow2 &&
            timeout 60 "$Q2S" "$raw" > want.qcow2 && cmp want.qcow2 got-c.qcow2 && tmp_empty
    }
    check "-f qcow2 with compressed clusters, kept in the file: the same bytes as the raw file" compressed_bytes
    check "-f qcow2: no qemu-nbd left" test "$(qemu_nbd_count)" = 0
else
    skip "-f qcow2 through qemu-nbd" "qemu-utils is not installed"
fi

# --- 3. A temporary directory that is full or missing ------------------------------
# Nothing can be kept: what is not in memory is read again, silently.
log=$scratch/full.log
: > "$log"
if serve full -r --filter=log file "$raw" logfile="$log"; then
    # falls_back DIR OPTION...: with TMPDIR=DIR, the output is the raw
    # file's, status 0, nothing on stderr, and data was read again.
    falls_back() {
        local dir=$1 total; shift
        mark
        TMPDIR=$dir timeout 60 "$Q2S" "$@" "$uri" > got.qcow2 2> got.err ||
            { echo "status $?"; cat got.err; return 1; }
        [ ! -s got.err ] || { echo "stderr:"; cat got.err; return 1; }
        timeout 60 "$Q2S" "$@" "$raw" > want.qcow2 && cmp want.qcow2 got.qcow2 || return 1
        total=$(read_total)
        echo "read $total bytes, $data of data"
        [ "$total" -gt "$data" ] && [ "$total" -le $((2 * data)) ]
    }
    # valgrind cannot start without its TMPDIR.
    if TMPDIR=$scratch/missing "$Q2S" --version > /dev/null 2>&1; then
        check "TMPDIR does not exist, --spool-memory=0: the same bytes, status 0, data read again" \
            falls_back "$scratch/missing" --spool-memory=0
        check "TMPDIR does not exist, --spool-memory=0 --compress: the same" \
            falls_back "$scratch/missing" --spool-memory=0 --compress
    else
        skip "TMPDIR does not exist" "the program cannot start without its TMPDIR (valgrind keeps its files there)"
    fi
    mkdir small
    if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=1M tmpfs small 2> /dev/null; then
        cleanup_hooks+=("umount '$scratch/small'")
        check "TMPDIR on a full 1 MiB tmpfs, --spool-memory=0: the same bytes, status 0, data read again" \
            falls_back "$scratch/small" --spool-memory=0
        check "TMPDIR on a full 1 MiB tmpfs, --spool-memory=0 --compress: the same" \
            falls_back "$scratch/small" --spool-memory=0 --compress
        check "TMPDIR on a full 1 MiB tmpfs, --spool-memory=512K: the same" \
            falls_back "$scratch/small" --spool-memory=512K
        check "the tmpfs is empty after" test -z "$(ls -A small)"
    else
        skip "TMPDIR on a full tmpfs" "not root, or mount -t tmpfs does not work here"
    fi
    stop_server
else
    not_ok "nbdkit file plugin with the log filter starts"
fi

# --- 4. Connections ---------------------------------------------------------------
log=$scratch/conn.log
: > "$log"
if serve conn -r --filter=log file "$raw" logfile="$log"; then
    # connections N OPTION...: the conversion opens N connections, reads
    # over all of them, the output is the raw file's.
    connections() {
        local want=$1 got used; shift
        convert_logged "$@" || return 1
        got=$(connections_since_mark)
        used=$(since_mark | sed -n 's/.*connection=\([0-9]*\) Read .*/\1/p' | sort -u | wc -l)
        echo "$got connections, reads over $used, expected $want"
        [ "$got" = "$want" ] && [ "$used" = "$want" ] && no_overlap
    }
    check "a server with multi-conn, default: 4 connections" connections 4
    check "--connections=1: 1 connection" connections 1 --connections=1
    check "--connections=7: 7 connections" connections 7 --connections=7
    check "--connections=16 --spool-memory=0: 16 connections" connections 16 --connections=16 --spool-memory=0
    stop_server
else
    not_ok "nbdkit file plugin with the log filter starts"
fi
if have_filter multi-conn &&
    serve noconn -r --filter=log --filter=multi-conn file "$raw" \
        multi-conn-mode=disable logfile="$log"; then
    check "a server without multi-conn: 1 connection" connections 1
    check "a server without multi-conn, --connections=7: 1 connection" connections 1 --connections=7
    stop_server
else
    skip "a server without multi-conn" "the nbdkit multi-conn filter is not available"
fi
for n in 0 17 x -1 ''; do
    check "--connections='$n': a usage error" \
        fails 2 "connections" "$Q2S" --connections="$n" "nbd+unix:///?socket=$scratch/nothing"
done

# --- 5. Faults in pass 1 ---------------------------------------------------------------
# Data from 5 MiB to 9 MiB only: the first read is at 5 MiB.
raw=$scratch/late.raw
truncate -s $((16 * MiB)) "$raw"
head -c $((4 * MiB)) /dev/urandom | write_at "$raw" $((5 * MiB))
# A server for each run: nbdkit 1.32's error filter was seen to abort
# after a client that had dropped its connection mid-request.
for n in 1 4; do
    for spool in --spool-memory=0 --spool-memory=1M; do
        if serve eio -r --filter=error file "$raw" error=EIO error-pread-rate=100%; then
            read_fails() {
                fresh_tmp
                fails 1 "read error at offset $((5 * MiB)): .*Input/output error" \
                    "$Q2S" --connections="$n" "$spool" "$uri" || return 1
                [ ! -s out.bin ] || { echo "output written"; return 1; }
                tmp_empty
            }
            check "every read fails, --connections=$n $spool: one line naming offset $((5 * MiB)), nothing written, \$TMPDIR empty" \
                read_fails
            stop_server
        else
            not_ok "nbdkit error filter starts"
        fi
    done
done
# The same when the failure of the first read comes last: the read at
# 0 fails after 0.5 s, every other one at once (no block status: all data).  The message names the
# first offset that failed, not the first failure to arrive.
if nbdkit eval --dump-plugin > /dev/null 2>&1 &&
    serve slowfirst eval thread_model='echo parallel' \
        get_size="echo $((4 * MiB))" \
        pread='if [ "$4" = 0 ]; then sleep 0.5; fi; echo "EIO injected" >&2; exit 1'; then
    for n in 1 4; do
        first_fails_last() {
            fresh_tmp
            fails 1 "read error at offset 0: " \
                "$Q2S" --connections="$n" "$uri" && tmp_empty
        }
        check "every read fails, the first one last, --connections=$n: the message names offset 0" \
            first_fails_last
    done
    stop_server
else
    skip "the first read fails last" "the nbdkit eval plugin is not available"
fi

# The server is killed while pass 1 reads (each read takes 200 ms, one at
# a time on each connection).
log=$scratch/killed.log
: > "$log"
exec 3>&2 2> /dev/null  # bash reports the killed job
if serve killed -r -t 1 --filter=log --filter=delay file "$raw" rdelay=200ms logfile="$log"; then
    killed_in_pass_1() {
        local pid i status start=$SECONDS
        fresh_tmp
        timeout 60 "$Q2S" --spool-memory=0 "$uri" > out.bin 2> err.txt &
        pid=$!
        for ((i = 0; i < 400; i++)); do
            grep -q ' Read id=' "$log" && break
            sleep 0.05
        done
        kill -KILL "$server_pid"
        wait "$pid"; status=$?
        reap "$server_pid"
        echo "status $status after $((SECONDS - start)) s"; cat err.txt
        [ "$status" = 1 ] && [ "$(wc -l < err.txt)" = 1 ] &&
            grep -q '^qcow2-to-stdout: .*offset [0-9]' err.txt &&
            [ ! -s out.bin ] && tmp_empty
    }
    check "the server is killed in pass 1: status 1, one line with the offset, no hang, \$TMPDIR empty" \
        killed_in_pass_1
else
    not_ok "nbdkit delay filter starts"
fi
exec 2>&3 3>&-

# A signal while pass 1 waits for a slow server: $TMPDIR empty after.
if serve slow -r -t 1 --filter=delay file "$raw" rdelay=200ms; then
    for signal in INT TERM; do
        signal_in_pass_1() {
            local pid
            fresh_tmp
            in_background "$Q2S" --spool-memory=0 "$uri" > out.bin 2> err.txt &
            pid=$!
            sleep 0.5
            dies_of "$signal" "$pid" err.txt && tmp_empty
        }
        check "SIG$signal in pass 1: dies of it within a second, \$TMPDIR empty" signal_in_pass_1
    done
    stop_server
else
    not_ok "nbdkit delay filter starts"
fi

# A server that answers no read: --timeout=1 gives up within seconds.
for n in 1 4; do
    if serve stuck -r --filter=delay file "$raw" rdelay=5; then
        stuck() {
            local start=$SECONDS
            fresh_tmp
            fails 1 "did not answer for 1 s while reading at offset $((5 * MiB))" \
                "$Q2S" --timeout=1 --connections="$n" --spool-memory=0 "$uri" || return 1
            echo "took $((SECONDS - start)) s"
            [ $((SECONDS - start)) -le "$(limit 4)" ] && tmp_empty
        }
        check "a stuck server, --timeout=1 --connections=$n: status 1, one line, within seconds" stuck
        stop_server
    else
        not_ok "nbdkit delay filter starts"
    fi
done

# --- 6. Block status asked one query ahead ---------------------------------------------
# 3 GiB + 12345 bytes: 4 KiB of data every 64 KiB in the first 64 MiB
# (1024 extents), some at 1.5 GiB and in the last bytes.
raw=$scratch/extents.raw
truncate -s $((3 * 1024 * MiB + 12345)) "$raw"
if have python3; then
    python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
for i in range(1024):
    os.pwrite(fd, os.urandom(4096), i * 65536)
os.close(fd)' "$raw"
else
    for ((i = 0; i < 1024; i++)); do
        head -c 4096 /dev/urandom | write_at "$raw" $((i * 65536))
    done
fi
head -c $((MiB)) /dev/urandom | write_at "$raw" $((1536 * MiB))
printf 'last bytes' | write_at "$raw" $((3 * 1024 * MiB + 12335))
log=$scratch/extents.log
: > "$log"
if serve extents -r --filter=log file "$raw" logfile="$log"; then
    few_queries() {
        local queries offsets
        convert_logged "$@" || return 1
        queries=$(since_mark | grep -c ' Extents id=')
        offsets=$(since_mark | sed -n 's/.* Extents id=[0-9]* offset=\(0x[0-9a-f]*\) .*/\1/p' | sort | uniq -d)
        echo "$queries block status queries; asked twice: ${offsets:-none}"
        [ "$queries" -ge 1 ] && [ "$queries" -le 4 ] && [ -z "$offsets" ]
    }
    check "1024 small extents over 3 GiB: the same bytes, 4 block status queries at most, none twice" \
        few_queries
    check "the same with -c 4096 --spool-memory=0" few_queries -c 4096 --spool-memory=0
    # The second block status query goes out before the first one's data
    # has been read: it was asked ahead.
    # Without it, the second query would wait until the stream had asked
    # for all but its last pieces (64 pieces of a cluster in flight at
    # most) of the first query's 1024 extents.
    asked_ahead() {
        convert_logged || return 1
        since_mark | awk '/ Extents id=/ { if (++queries == 2) before = reads }
            / Read id=/ { reads++ }
            END { print reads " reads, " before " before the second block status query"
                  exit !(queries >= 2 && before < 512) }' ||
            { since_mark | grep ' Extents id='; return 1; }
    }
    check "the next block status query goes out before the reads of the current one end" asked_ahead
    stop_server
else
    not_ok "nbdkit file plugin with the log filter starts"
fi
rm -f "$raw"

# --- Nothing left behind ---------------------------------------------------------------
left_behind() {
    local pid found=0
    for pid in $(pgrep -x nbdkit) $(pgrep -x qemu-nbd) $(pgrep -x qcow2-to-stdout); do
        if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "$scratch"; then
            echo "process $pid still runs: $(tr '\0' ' ' < "/proc/$pid/cmdline")"; found=1
        fi
    done
    [ "$found" = 0 ]
}
stop_servers
check "no nbdkit, qemu-nbd or qcow2-to-stdout left running" left_behind
finish
