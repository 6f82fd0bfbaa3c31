# NBD input against hostile users and lying servers: data kept in memory
# goes into a pipe by reference (vmsplice) and must still be right when the
# reader reads after the tool ended; signals at any moment; a server whose
# connections disagree, that fails on one connection, that takes one
# client, that stalls; odd sizes and limits; closed descriptors; a bad
# $TMPDIR.  Every image is compared with the conversion of the raw file.
. "$(dirname "$0")/lib.sh"

if ! have nbdkit; then
    skip "hostile NBD input" "nbdkit is not installed (Debian package nbdkit)"
    finish
    exit 0
fi

# --- Servers ---------------------------------------------------------------
. "$top/tests/integration/nbdkit.sh"

# same_as RAW OPTION...: the stream from $uri is the stream from RAW.
same_as() {
    local raw=$1; shift
    timeout 60 "$Q2S" "$@" "$raw" > want.qcow2 ||
        { echo "the conversion of $raw failed"; return 1; }
    timeout 60 "$Q2S" "$@" "$uri" > got.qcow2 2> got.err ||
        { echo "the conversion of $uri failed:"; cat got.err; return 1; }
    cmp want.qcow2 got.qcow2
}

# tool_files DIR: files of the tool's in DIR (valgrind keeps its own there).
tool_files() { find "$1" -mindepth 1 ! -name 'vgdb-*' ! -name 'valgrind*' | wc -l; }

MiB=$((1024 * 1024))
make_image disk.raw $((8 * MiB))

# --- 1. Kept memory by reference: the reader reads after the tool ended ----
# A pipe of 1 MiB (the tool sets that size) holds the whole image: the
# tool writes it, exits, frees its memory and closes its temporary file;
# only then does the reader start.
rm -f small.raw; truncate -s 4M small.raw
head -c 600000 /dev/urandom | write_at small.raw 65536
if serve small -r file "$scratch/small.raw"; then
    late_reader() {
        local dir=$1; shift
        rm -f done.flag
        "$Q2S" "$@" small.raw > want.qcow2 || return 1
        { TMPDIR=$dir timeout 30 "$Q2S" "$@" "$uri" 2> late.err; echo $? > done.flag; } |
            { while [ ! -e done.flag ]; do sleep 0.05; done
              sleep 0.2; cat > late.qcow2; }
        [ "$(cat done.flag)" = 0 ] || { echo "status $(cat done.flag)"; cat late.err; return 1; }
        cmp want.qcow2 late.qcow2
    }
    mkdir -p "$scratch/tmp"
    for opts in "--spool-memory=64M" "--spool-memory=0" "--spool-memory=0 --compress" \
                "--spool-memory=64M --compress" "--spool-memory=300K -c 512"; do
        check "reader starts after the tool exited ($opts): the same bytes" \
            late_reader "$scratch/tmp" $opts
    done
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then
        check "reader starts after the tool exited, spool file on tmpfs: the same bytes" \
            late_reader /dev/shm --spool-memory=0
    fi
    stop_server
else
    not_ok "nbdkit file plugin starts"
fi

# A slow reader of a larger image: the tool waits on the full pipe with
# kept pages in it.
if serve slowreader -r file "$scratch/disk.raw"; then
    slow_reader() {
        "$Q2S" "$@" disk.raw > want.qcow2 || return 1
        timeout 60 "$Q2S" "$@" "$uri" | { sleep 1; cat; } > slow.qcow2 || return 1
        cmp want.qcow2 slow.qcow2
    }
    check "a slow reader, data in memory: the same bytes" slow_reader --spool-memory=1G
    check "a slow reader, data in the file: the same bytes" slow_reader --spool-memory=0
    check "a slow reader, half in memory, compressed: the same bytes" \
        slow_reader --spool-memory=1M --compress
    stop_server
else
    not_ok "nbdkit file plugin starts"
fi

# The library: q2s_render twice on one plan into a pipe that nobody reads
# yet, the plan and source freed, memory reused, then the pipe read.
lib_dir=${Q2S_BUILD:-$top/build}
if [ -n "${Q2S_VALGRIND:-}" ]; then
    skip "q2s_render twice, plan freed before the pipe is read" "under valgrind"
elif ! have "${Q2S_CC:-cc}" || [ ! -e "$lib_dir/libqcow2-to-stdout.a" ]; then
    skip "q2s_render twice, plan freed before the pipe is read" "no compiler or no $lib_dir/libqcow2-to-stdout.a"
elif serve api -r file "$scratch/small.raw"; then
    cat > render_twice.c <<'C'
#define _GNU_SOURCE
#include <fcntl.h>
#include <qcow2-to-stdout.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void die(const char *what, struct q2s_error *error)
{
    fprintf(stderr, "%s: %s\n", what, error ? q2s_error_message(error) : "");
    exit(1);
}

int main(int argc, char **argv)
{
    struct q2s_error *error = NULL;
    struct q2s_source *source;
    struct q2s_options *options = q2s_options_new();
    struct q2s_plan *plan;
    uint64_t size, length = 400 * 1024, offset;
    uint8_t *want = malloc(length), *got = malloc(length);
    int fds[2];

    if (argc > 2 && q2s_options_set_compression(options, Q2S_COMPRESSION_ZLIB, 1, &error) < 0)
        die("compression", error);
    if (q2s_options_set_spool_memory(options, 64 << 20, &error) < 0 ||
        q2s_source_open(argv[1], NULL, &source, &error) < 0 ||
        q2s_plan_build(source, options, NULL, NULL, &plan, &error) < 0)
        die("plan", error);
    size = q2s_plan_get_image_size(plan);
    if (size < length)
        die("image too small", NULL);
    offset = size - length;  /* data clusters: kept in memory */
    if (q2s_pread(plan, source, want, length, offset, &error) < 0)
        die("q2s_pread", error);
    if (pipe(fds) < 0 || fcntl(fds[1], F_SETPIPE_SZ, 1 << 20) < 0)
        die("pipe", NULL);
    for (int i = 0; i < 2; i++)
        if (q2s_render(plan, source, fds[1], offset, length, NULL, NULL,
                       &error) < 0)
            die("q2s_render", error);
    q2s_plan_free(plan);
    q2s_source_close(source);
    q2s_options_free(options);
    /* The freed pages, if the pipe did not hold them, go to someone else. */
    for (int i = 0; i < 8; i++) {
        void *p = mmap(NULL, 16 << 20, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (p != MAP_FAILED)
            memset(p, 0xa5, 16 << 20);
    }
    close(fds[1]);
    for (int i = 0; i < 2; i++) {
        size_t done = 0;
        while (done < length) {
            ssize_t n = read(fds[0], got + done, length - done);
            if (n <= 0)
                die("short pipe", NULL);
            done += (size_t)n;
        }
        if (memcmp(want, got, length) != 0) {
            fprintf(stderr, "render %d: the pipe holds other bytes\n", i + 1);
            return 1;
        }
    }
    free(want);
    free(got);
    return 0;
}
C
    read -r -a build_flags <<<"${Q2S_CFLAGS:-} ${Q2S_LDFLAGS:-}"
    if "${Q2S_CC:-cc}" -std=gnu11 -I"$top/include" "${build_flags[@]}" -o render_twice \
            render_twice.c "$lib_dir/libqcow2-to-stdout.a" -lnbd -lz -lzstd -ljson-c -pthread \
            2> cc.err; then
        check "q2s_render twice into a pipe read after q2s_plan_free: the q2s_pread bytes" \
            ./render_twice "$uri"
        check "the same, compressed" ./render_twice "$uri" compress
    else
        not_ok "render_twice.c compiles"; sed 's/^/# /' cc.err | head -5
    fi
    stop_server
else
    not_ok "nbdkit file plugin starts"
fi

# --- 2. Signals -------------------------------------------------------------
# The tool runs with its pid in tool.pid, SIGINT at its default, output
# into a reader that starts late (pass 2 then blocks on the pipe), its
# temporary files in a directory of its own.
mkdir -p "$scratch/sigtmp"
start_tool() {
    rm -f tool.pid tool.status
    { sh -c 'echo $$ > tool.pid; exec env --default-signal=INT,QUIT "$@" 2> tool.err' \
          sh env TMPDIR="$scratch/sigtmp" "$Q2S" "$@"
      echo $? > tool.status; } | { sleep 3; cat; } > /dev/null 2>&1 &
    local i
    for ((i = 0; i < 100; i++)); do [ -s tool.pid ] && break; sleep 0.01; done
}
# signalled SIGNAL SECONDS WANT OPTION...: SIGNAL after SECONDS ends the
# tool within 2 s with status WANT, leaves no file in its $TMPDIR and no
# child running.
signalled() {
    local sig=$1 after=$2 want=$3; shift 3
    local pid kids kid status reader i
    serve sig --filter=delay file "$scratch/disk.raw" rdelay=100ms || return 1
    start_tool "$@" "$uri"
    reader=$!
    sleep "$after"
    pid=$(cat tool.pid)
    kids=$(pgrep -P "$pid")
    kill "-$sig" "$pid"
    gone_within "$pid" 2 || { kill -KILL "$pid"; stop_server; return 1; }
    for ((i = 0; i < 100; i++)); do [ -s tool.status ] && break; sleep 0.01; done
    kill "$reader" 2>/dev/null; wait "$reader" 2>/dev/null
    stop_server
    status=$(cat tool.status)
    [ "$status" = "$want" ] || { echo "status $status, expected $want"; cat tool.err; return 1; }
    for kid in $kids; do
        kill -0 "$kid" 2>/dev/null && { echo "child $kid still runs"; return 1; }
    done
    [ "$(tool_files "$scratch/sigtmp")" = 0 ] || { echo "left in TMPDIR:"; ls -la "$scratch/sigtmp"; return 1; }
}
for when in 0.1 0.5 2; do
    check "SIGINT at ${when}s (memory spool): status 130, nothing left" \
        signalled INT "$when" 130 --spool-memory=1G
    check "SIGTERM at ${when}s (file spool, one connection): status 143, nothing left" \
        signalled TERM "$when" 143 --spool-memory=0 --connections=1
done
check "SIGINT at 0.5s, compressed, 16 connections: status 130, nothing left" \
    signalled INT 0.5 130 --compress --spool-memory=1M --connections=16

# A reader that goes away: pass 2's write fails, status 1.
if serve epipe -r file "$scratch/disk.raw"; then
    early_reader() {
        local status
        TMPDIR="$scratch/sigtmp" "$Q2S" "$@" "$uri" 2> epipe.err | head -c 100 > /dev/null
        status=${PIPESTATUS[0]}
        [ "$status" = 1 ] && grep -q "^qcow2-to-stdout: write error: Broken pipe$" epipe.err ||
            { echo "status $status"; cat epipe.err; return 1; }
        [ "$(tool_files "$scratch/sigtmp")" = 0 ]
    }
    check "head -c 100, memory spool: status 1, broken pipe" early_reader --spool-memory=1G
    check "head -c 100, file spool: status 1, broken pipe" early_reader --spool-memory=0
    check "head -c 100, compressed: status 1, broken pipe" early_reader --compress
    stop_server
else
    not_ok "nbdkit file plugin starts"
fi

# --- 3. Lying and awkward servers --------------------------------------------
# Shell plugins that answer each connection its own way: the first
# connection (the one that takes the first directory) and the others.
# They serve disk.raw.
if have_plugin sh; then
    cat > lying.sh <<'SH'
#!/bin/bash
# FIRST is a directory that the first connection makes; MODE says how the
# others lie.
case "$1" in
    open) if mkdir "$FIRST" 2>/dev/null; then echo first; else echo extra; fi ;;
    get_size)
        size=$(stat -c %s "$DISK")
        if [ "$2" = extra ]; then
            case $MODE in
                smaller) size=$((size / 2)) ;;
                larger) size=$((size * 2)) ;;
            esac
        fi
        echo "$size" ;;
    can_multi_conn) exit 0 ;;
    pread)
        if [ "$2" = extra ] && [ "$MODE" = eio ]; then
            echo "EIO the other connection fails" >&2; exit 1
        fi
        if [ "$MODE" = stall ] && [ "$4" -ge "$STALL_AT" ]; then sleep 10; fi
        dd if="$DISK" skip="$4" count="$3" iflag=skip_bytes,count_bytes status=none ;;
    thread_model) echo parallel ;;
    *) exit 2 ;;
esac
SH
    chmod +x lying.sh
    # serve_lying NAME MODE: lying.sh in MODE (its variables from the
    # environment, which nbdkit passes on to the plugin).
    serve_lying() {
        FIRST="$scratch/$1.first" DISK="$scratch/disk.raw" MODE=$2 \
            serve "$1" sh "$scratch/lying.sh"
    }

    # first CHECK...: CHECK with the first connection to come the first.
    first() { rm -rf "$scratch"/*.first; "$@"; }

    # The extra connections see another size: the first connection's is
    # the export's; the others must agree or not be used.
    for mode in smaller larger; do
        serve_lying size$mode $mode
        check "multi-conn, the other connections say the size is $mode: the bytes of the first's" \
            first same_as disk.raw --connections=4
        check "the same with --reread and no spool: pass 2 reads the right bytes" \
            first same_as disk.raw --connections=4 --reread --spool-memory=0
        stop_server
    done

    # Reads fail on the other connections only: one line, status 1.
    serve_lying eio eio
    check "reads fail on one connection only: one line, status 1" \
        first fails 1 "read error at offset [0-9]*: Input/output error" "$Q2S" --connections=4 "$uri"
    stop_server
    serve_lying eio eio
    check "--connections=1 does not touch the failing connections: the same bytes" \
        first same_as disk.raw --connections=1
    stop_server

    # A server that stops answering mid pass 1: --timeout says where.
    STALL_AT=$((4 * MiB)) serve_lying stall stall
    stalled() {
        local start=$SECONDS
        fails 1 "did not answer for 1 s while reading at offset [0-9]*$" "$Q2S" --timeout=1 "$uri" || return 1
        [ $((SECONDS - start)) -le "$(limit 4)" ] || { echo "took $((SECONDS - start)) s"; return 1; }
    }
    check "a server that stalls mid pass 1, --timeout=1: one line, status 1, within 4 s" first stalled
    stop_server
else
    skip "lying servers" "no nbdkit sh plugin"
fi

# multi-conn advertised, one client taken at a time: the others are
# refused (limit filter), or never finish the handshake (the first one
# passes the second's open forever): the first goes on alone.
if have_filter limit && serve limit -r --filter=limit file "$scratch/disk.raw" limit=1; then
    limited() {
        local start=$SECONDS
        same_as disk.raw "$@" || return 1
        [ $((SECONDS - start)) -le "$(limit 5)" ] || { echo "took $((SECONDS - start)) s"; return 1; }
    }
    check "multi-conn server taking one client (limit=1): the same bytes, quickly" limited --connections=16
    stop_server
else
    skip "limit=1" "no nbdkit limit filter"
fi
if have_plugin sh; then
    cat > slowopen.sh <<'SH'
#!/bin/bash
case "$1" in
    open) if mkdir "$FIRST" 2>/dev/null; then echo first; exit 0; fi
          # The others wait until the test ends (60 s at most).
          for ((i = 0; i < 600; i++)); do [ -e "$RELEASE" ] && break; sleep 0.1; done
          echo extra ;;
    get_size) stat -c %s "$DISK" ;;
    can_multi_conn) exit 0 ;;
    pread) dd if="$DISK" skip="$4" count="$3" iflag=skip_bytes,count_bytes status=none ;;
    thread_model) echo parallel ;;
    *) exit 2 ;;
esac
SH
    chmod +x slowopen.sh
    slow_handshake() {
        local start=$SECONDS ret
        same_as disk.raw "$@"; ret=$?
        [ "$ret" = 0 ] || return 1
        [ $((SECONDS - start)) -le "$(limit 6)" ] || { echo "took $((SECONDS - start)) s"; return 1; }
    }
    # The stalled opens end when released; nbdkit waits for them.
    rm -f "$scratch/release"
    if FIRST="$scratch/slowopen.first" DISK="$scratch/disk.raw" RELEASE="$scratch/release" \
            serve slowopen sh "$scratch/slowopen.sh"; then
        check "the other connections never finish the handshake: the same bytes, the first alone" \
            first slow_handshake
        check "the same with --timeout=1" first slow_handshake --timeout=1
        touch "$scratch/release"
        stop_server
    else
        not_ok "nbdkit sh plugin starts"
    fi
fi

# --- 4. Limits ---------------------------------------------------------------
if serve limits -r file "$scratch/disk.raw"; then
    for opts in "--connections=1" "--connections=16" "--spool-memory=0" "--spool-memory=1" \
                "--spool-memory=1K" "--spool-memory=18446744073709551615" \
                "-c 512 --spool-memory=1K" "-c 2M --spool-memory=1" \
                "-c 2M --compress --spool-memory=1M" "--spool-memory=0 --reread -c 512"; do
        check "$opts: the same bytes" same_as disk.raw $opts
    done
    check "--spool-memory=16E: a usage error" fails 2 "invalid spool memory size" \
        "$Q2S" --spool-memory=16E "$uri"
    check "--connections=17: a usage error" fails 2 "must be from 1 to 16" \
        "$Q2S" --connections=17 "$uri"
    stop_server
else
    not_ok "nbdkit file plugin starts"
fi

# Sizes that are no multiple of anything: empty, one byte, 10000 bytes, a
# server with a 4 KiB minimum block size (advertised, not enforced).
head -c 10000 /dev/urandom > odd10000.raw
printf 'x' > odd1.raw
: > odd0.raw
for size in 0 1 10000; do
    if serve odd$size -r --filter=blocksize-policy file "$scratch/odd$size.raw" \
            blocksize-minimum=4096 blocksize-preferred=4096; then
        for opts in "" "-c 512 --spool-memory=0" "-c 2M --compress" "--reread --spool-memory=0"; do
            check "a $size-byte export, 4 KiB minimum block, '$opts': the same bytes" \
                same_as odd$size.raw $opts
        done
        stop_server
    else
        not_ok "nbdkit blocksize-policy filter starts"
    fi
done
# A server that enforces its minimum: the short tail cannot be read.
if serve strict -r --filter=blocksize-policy file "$scratch/odd10000.raw" \
        blocksize-minimum=4096 blocksize-preferred=4096 blocksize-error-policy=error; then
    check "a 10000-byte export whose server refuses the short tail: one line, status 1" \
        fails 1 "cannot read the last 1808 bytes" "$Q2S" "$uri"
    stop_server
fi

# --- 5. Closed descriptors -----------------------------------------------------
if serve fds -r file "$scratch/disk.raw"; then
    "$Q2S" disk.raw > want.qcow2
    check "standard output closed: one line, status 1" \
        fails 1 "standard output is closed" bash -c '"$0" "$1" >&-' "$Q2S" "$uri"
    closed_in() { "$Q2S" --spool-memory=0 "$uri" <&- > got.qcow2 && cmp want.qcow2 got.qcow2; }
    check "standard input closed, spool file: the same bytes" closed_in
    closed_err() { "$Q2S" --spool-memory=0 "$uri" <&- 2>&- > got.qcow2 && cmp want.qcow2 got.qcow2; }
    check "standard input and error closed, spool file: the same bytes" closed_err
    stop_server
else
    not_ok "nbdkit file plugin starts"
fi

# --- 6. A bad $TMPDIR: pass 2 reads again --------------------------------------
if [ -n "${Q2S_VALGRIND:-}" ]; then
    skip "a bad TMPDIR" "valgrind needs a TMPDIR of its own"
elif serve tmpdir -r file "$scratch/disk.raw"; then
    echo x > a_file
    bad_tmpdir() { TMPDIR=$1 same_as disk.raw --spool-memory=0; }
    check "TMPDIR is a file: the same bytes" bad_tmpdir "$scratch/a_file"
    check "TMPDIR does not exist: the same bytes" bad_tmpdir "$scratch/nothing"
    check "TMPDIR is /proc (no O_TMPFILE, no files): the same bytes" bad_tmpdir /proc
    # A tmpfs of 64 KiB and one of 6 MiB (the first 4 MiB written, the
    # next block fails half way).
    if [ "$(id -u)" = 0 ] && mkdir -p "$scratch/full" &&
            mount -t tmpfs -o size=64K tmpfs "$scratch/full" 2>/dev/null; then
        cleanup_hooks+=("umount '$scratch/full' 2>/dev/null")
        check "TMPDIR on a full 64 KiB tmpfs: the same bytes" bad_tmpdir "$scratch/full"
        full_compressed() { TMPDIR=$scratch/full same_as disk.raw --spool-memory=0 --compress -c 512; }
        check "TMPDIR on a full tmpfs, compressed, -c 512: the same bytes" full_compressed
        make_image big.raw $((24 * MiB))
        head -c $((12 * MiB)) /dev/urandom | write_at big.raw $((6 * MiB))
        stop_server
        if serve big -r file "$scratch/big.raw" && mount -o remount,size=6M "$scratch/full"; then
            half_full() { TMPDIR=$scratch/full same_as big.raw "$@"; }
            check "TMPDIR fills up after 4 MiB: the same bytes" half_full --spool-memory=0
            check "the same with 1 MiB of memory, compressed" half_full --spool-memory=1M --compress
        fi
    else
        skip "TMPDIR on a full tmpfs" "not root, or no mount"
    fi
    stop_server
else
    not_ok "nbdkit file plugin starts"
fi

finish
