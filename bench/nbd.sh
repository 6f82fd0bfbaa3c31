# shellcheck shell=bash
# The nbd section of bench/bench.sh, which sources this file: a raw export
# read through NBD (issue 12), the tool against nbdcopy, which reads the
# export's data once.
#
# It builds, in the bench's temporary directory, a 4 GiB sparse raw image
# with 2 GiB allocated: 64 pieces of 32 MiB, one every 64 MiB, all copies
# of one 32 MiB chunk of /dev/urandom with the piece's index written into
# its first 8 bytes (writing 2 GiB from /dev/urandom takes long; neither the
# tool nor nbdcopy looks for identical clusters).  nbdkit's file plugin
# serves it (-f --exit-with-parent, a pid file waited for, killed at the
# end) on a Unix socket, on a second Unix socket behind the delay filter
# (rdelay=2ms: every read waits 2 ms, as a remote disk would), and on TCP
# loopback (127.0.0.1, a free port).  The tool's output from the first is
# checked once: its byte count must be what --measure of the same URI
# says, and it must start with the qcow2 magic "QFI\xfb" (qemu-img check
# would need the 2 GiB saved).  Then, page cache warm, timed:
#
#   a) Unix socket:        PROG nbd+unix:///?socket=SOCK | cat > /dev/null
#                          PROG --spool-memory=0 --reread URI | cat > /dev/null
#                          PROG --one-pass URI | cat > /dev/null
#                          nbdcopy nbd+unix:///?socket=SOCK null:
#                          nbdcopy URI - | cat > /dev/null
#   b) the same, through the delay filter
#   c) TCP loopback:       the same on nbd://127.0.0.1:PORT/
#
# nbdcopy URI null: reads the data once and writes nowhere: the floor of
# any reader; nbdcopy URI - | cat, the nearest peer writing into a pipe;
# head -c 2G /dev/zero | cat, the floor of any writer of 2 GiB into the
# pipe, timed once beside them.
# The RSS of the tool (default, --reread, --one-pass) is measured once, on
# a), with /usr/bin/time, and --one-pass once through a server with
# nbdkit's log filter, whose reads must be the 2 GiB of data, each byte
# once.  Targets (issue 21): the default within 2x of nbdcopy URI null:
# in a) and b), --one-pass within 1.5x in a) and 1.25x in b), its RSS
# under 64 MiB; c) has none.  Needs nbdkit (make deps) and
# nbdcopy (Debian package libnbd-bin: make bench-deps); without them the section says why it is skipped, and
# without nbdkit's delay filter case b) alone is.  About 3.5 minutes here
# (2 CPUs), most of it the tool.
#
# Uses from bench.sh: WORK, PROGRAM, NBD_RUNS, WARMUP, HAVE_PYTHON,
# HAVE_BASE, BASELINE, say, note, die, measure, ratio, verdict, fmt, have,
# MEAN.

NBD_SKIP=
NBD_DELAY_SKIP=
NBD_DIR=
declare -A NBD_PID=() NBD_URI=() NBD_LABEL=()
NBD_CASES=(unix delay tcp)
NBD_RSS=() # default, --reread, --one-pass: KiB

# nbd_probe: sets NBD_SKIP to why the section cannot run here, and
# NBD_DELAY_SKIP to why case b) cannot.
nbd_probe() {
    if ! command -v nbdkit > /dev/null 2>&1; then
        NBD_SKIP="no nbdkit (Debian package nbdkit: make deps)"
        return
    fi
    if ! command -v nbdcopy > /dev/null 2>&1; then
        NBD_SKIP="no nbdcopy (Debian package libnbd-bin: make bench-deps)"
        return
    fi
    if ! nbdkit file --dump-plugin > /dev/null 2>&1; then
        NBD_SKIP="nbdkit has no file plugin"
        return
    fi
    if ! nbdkit --filter=delay null --dump-plugin > /dev/null 2>&1; then
        NBD_DELAY_SKIP="nbdkit has no delay filter"
    fi
}

# nbd_stop_servers: kills the servers this section started, by their pid.
nbd_stop_servers() {
    local c pid

    for c in "${!NBD_PID[@]}"; do
        pid=${NBD_PID[$c]}
        if [[ -n $pid ]]; then
            kill "$pid" 2> /dev/null || true
            wait "$pid" 2> /dev/null || true
        fi
    done
    NBD_PID=()
}

# Stops the servers and deletes the section's files; run on exit, signals
# included, and after the section.
nbd_cleanup() {
    nbd_stop_servers
    if [[ -n $NBD_DIR ]]; then rm -rf -- "$NBD_DIR"; fi
    return 0
}

# nbd_alive PID: whether PID runs (kill -0 would also say so of a zombie).
nbd_alive() {
    local state
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2> /dev/null) && [[ -n $state && $state != Z ]]
}

# nbd_start CASE PIDFILE NBDKIT-ARGS...: starts nbdkit in the background
# (a child of this shell, so that --exit-with-parent takes it down with
# the bench) and waits up to 10 s for its pid file, which it writes once
# it listens.  Returns 1 if it exits first (a port taken, say).
nbd_start() {
    local c=$1 pidfile=$2 pid i
    shift 2

    rm -f -- "$pidfile"
    nbdkit -f --exit-with-parent -P "$pidfile" "$@" 2> "$NBD_DIR/nbdkit-$c.log" &
    pid=$!
    for ((i = 0; i < 100; i++)); do
        if [[ -s $pidfile ]]; then
            NBD_PID[$c]=$pid
            return 0
        fi
        if ! nbd_alive "$pid"; then
            wait "$pid" 2> /dev/null || true
            return 1
        fi
        sleep 0.1
    done
    kill "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
    die "nbdkit did not write its pid file within 10 s: nbdkit $*"
}

# nbd_free_port: a TCP port on 127.0.0.1 that nobody listens on now.
nbd_free_port() {
    if ((HAVE_PYTHON)); then
        python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
    else
        echo $((20000 + RANDOM % 40000))
    fi
}

nbd_build() {
    local t0=$SECONDS i img=$NBD_DIR/image.raw chunk=$NBD_DIR/chunk alloc_kib

    say "== NBD: building the image"
    mkdir -p -- "$NBD_DIR"
    truncate -s 4G -- "$img" || die "cannot make a 4 GiB file in '$NBD_DIR'"
    head -c $((32 * 1024 * 1024)) /dev/urandom > "$chunk" || die "cannot write $chunk"
    for ((i = 0; i < 64; i++)); do
        printf '%08d' "$i" | dd of="$chunk" bs=8 count=1 conv=notrunc status=none ||
            die "cannot write $chunk"
        dd if="$chunk" of="$img" bs=1M seek=$((i * 64)) conv=notrunc status=none ||
            die "cannot write $img"
    done
    rm -f -- "$chunk"
    sync -- "$img"
    alloc_kib=$(du -k -- "$img" | awk '{ print $1 }')
    say "$img: 4 GiB virtual, $((alloc_kib / 1024)) MiB allocated" \
        "(64 pieces of 32 MiB of random data, one every 64 MiB)"
    if ((alloc_kib > 3 * 1024 * 1024)); then
        note "the filesystem does not seem to keep holes: the numbers will not mean much"
    fi
    say "(built in $((SECONDS - t0)) s)"
    say
}

nbd_serve() {
    local img=$NBD_DIR/image.raw port i

    say "== NBD: the servers (nbdkit $(nbdkit --version | awk '{ print $2 }'), file plugin)"
    nbd_start unix "$NBD_DIR/unix.pid" -U "$NBD_DIR/unix.sock" file "$img" ||
        die "nbdkit could not serve $img on a Unix socket: $(head -c 300 -- "$NBD_DIR/nbdkit-unix.log")"
    NBD_URI[unix]="nbd+unix:///?socket=$NBD_DIR/unix.sock"
    NBD_LABEL[unix]="a) Unix socket"
    say "a) ${NBD_URI[unix]}"
    NBD_LABEL[delay]="b) Unix socket, rdelay=2ms"
    if [[ -z $NBD_DELAY_SKIP ]]; then
        nbd_start delay "$NBD_DIR/delay.pid" -U "$NBD_DIR/delay.sock" --filter=delay \
            file "$img" rdelay=2ms ||
            die "nbdkit --filter=delay could not serve $img: $(head -c 300 -- "$NBD_DIR/nbdkit-delay.log")"
        NBD_URI[delay]="nbd+unix:///?socket=$NBD_DIR/delay.sock"
        say "b) ${NBD_URI[delay]} (--filter=delay rdelay=2ms)"
    else
        say "b) skipped: $NBD_DELAY_SKIP"
    fi
    # The port may be taken between the probe and nbdkit's bind: try again.
    NBD_LABEL[tcp]="c) TCP loopback"
    for ((i = 0; i < 5; i++)); do
        port=$(nbd_free_port) || die "cannot find a free TCP port (python3)"
        if nbd_start tcp "$NBD_DIR/tcp.pid" -p "$port" -i 127.0.0.1 file "$img"; then
            NBD_URI[tcp]="nbd://127.0.0.1:$port/"
            break
        fi
    done
    [[ -n ${NBD_URI[tcp]:-} ]] ||
        die "nbdkit could not listen on 127.0.0.1 after 5 ports: $(head -c 300 -- "$NBD_DIR/nbdkit-tcp.log")"
    say "c) ${NBD_URI[tcp]}"
    # The data into the page cache: nbdcopy reads it once.
    nbdcopy -- "${NBD_URI[unix]}" null: || die "nbdcopy could not read ${NBD_URI[unix]}"
    say
}

# nbd_rss ARGS...: the tool's peak RSS in KiB, its output piped into cat.
nbd_rss() {
    local rss=$NBD_DIR/rss
    /usr/bin/time -f %M -o "$rss" "$PROGRAM" "$@" | cat > /dev/null ||
        die "the tool failed: $PROGRAM $*"
    tail -n 1 -- "$rss"
    rm -f -- "$rss"
}

nbd_say_rss() {
    say "RSS of the tool on a): $((NBD_RSS[0] / 1024)) MiB by default," \
        "$((NBD_RSS[1] / 1024)) MiB with --spool-memory=0 --reread," \
        "$((NBD_RSS[2] / 1024)) MiB with --one-pass (target: under 64 MiB:" \
        "$(verdict "$((NBD_RSS[2] / 1024))" '<=' 64))"
}

# nbd_reads_once: --one-pass through a server of its own whose reads
# nbdkit's log filter records: the bytes asked for must be the image's
# data, 2 GiB, each once (no read overlaps another).
nbd_reads_once() {
    local log=$NBD_DIR/once.log line offset count total=0 reads=() sorted prev_end=0
    nbd_start once "$NBD_DIR/once.pid" -U "$NBD_DIR/once.sock" --filter=log \
        file "$NBD_DIR/image.raw" logfile="$log" ||
        die "nbdkit --filter=log could not serve the image: $(head -c 300 -- "$NBD_DIR/nbdkit-once.log")"
    "$PROGRAM" --one-pass "nbd+unix:///?socket=$NBD_DIR/once.sock" | cat > /dev/null ||
        die "the tool failed: $PROGRAM --one-pass (log filter)"
    kill "${NBD_PID[once]}" 2> /dev/null || true
    wait "${NBD_PID[once]}" 2> /dev/null || true
    unset 'NBD_PID[once]'
    while IFS= read -r line; do
        offset=${line##* offset=}; offset=$((${offset%% *}))
        count=${line##* count=}; count=$((${count%% *}))
        reads+=("$offset $count")
        total=$((total + count))
    done < <(grep ' Read id=' -- "$log")
    sorted=$(printf '%s\n' "${reads[@]}" | sort -n -k1,1)
    while read -r offset count; do
        ((offset >= prev_end)) || die "--one-pass read bytes at $offset twice"
        prev_end=$((offset + count))
    done <<< "$sorted"
    ((total == 2 * 1024 * 1024 * 1024)) ||
        die "--one-pass read $total bytes, not the 2 GiB of data"
    say "--one-pass read $total bytes in ${#reads[@]} requests, each once (nbdkit's log filter)"
    rm -f -- "$log"
}

# nbd_check: the tool's output from the Unix socket, once: as many bytes
# as --measure says, and the qcow2 magic first.
nbd_check() {
    local t0=$SECONDS uri=${NBD_URI[unix]} measured out magic rest

    say "== NBD: the tool's output, checked"
    measured=$("$PROGRAM" --measure "$uri") || die "the tool failed: $PROGRAM --measure $uri"
    [[ $measured =~ ^[0-9]+$ ]] || die "--measure printed '$measured', not a size"
    out=$(set -o pipefail
        "$PROGRAM" "$uri" | {
            dd bs=4 count=1 iflag=fullblock status=none | od -An -tx1 | tr -d ' \n'
            echo
            wc -c
        }) || die "the tool failed: $PROGRAM $uri"
    magic=${out%%$'\n'*}
    rest=${out#*$'\n'}
    rest=${rest//[[:space:]]/}
    [[ $rest =~ ^[0-9]+$ ]] || die "cannot count the tool's output from $uri: '$out'"
    [[ $magic == 514649fb ]] ||
        die "the tool's output from $uri starts with the bytes $magic, not QFI\\xfb (51 46 49 fb)"
    ((rest + 4 == measured)) ||
        die "the tool wrote $((rest + 4)) bytes from $uri, but --measure says $measured"
    say "$((rest + 4)) bytes, as --measure says; starts with QFI\\xfb" \
        "(checked in $((SECONDS - t0)) s)"
    nbd_reads_once
    if [[ -x /usr/bin/time ]]; then
        NBD_RSS[0]=$(nbd_rss "$uri")
        NBD_RSS[1]=$(nbd_rss --spool-memory=0 --reread "$uri")
        NBD_RSS[2]=$(nbd_rss --one-pass "$uri")
        nbd_say_rss
    else
        note "no /usr/bin/time (Debian package time: make deps): the nbd section's RSS is skipped"
    fi
    say
}

nbd_time() {
    local t0=$SECONDS c qprog qbase quri

    printf -v qprog '%q' "$PROGRAM"
    printf -v qbase '%q' "$BASELINE"
    say "== NBD: timing (mean ± standard deviation)"
    # What the pipe into cat costs alone, for 2 GiB: no writer of the
    # data into a pipe can take less, whatever it reads.
    measure "n_pipe_alone" "2 GiB from head -c into cat (the pipe alone)" \
        "$NBD_RUNS" "$WARMUP" "" "head -c 2147483648 /dev/zero | cat > /dev/null"
    for c in "${NBD_CASES[@]}"; do
        say "${NBD_LABEL[$c]}"
        if [[ -z ${NBD_URI[$c]:-} ]]; then
            say "  skipped: $NBD_DELAY_SKIP"
            continue
        fi
        printf -v quri '%q' "${NBD_URI[$c]}"
        measure "n${c}_tool" "  qcow2-to-stdout | cat" "$NBD_RUNS" "$WARMUP" "" \
            "$qprog $quri | cat > /dev/null"
        measure "n${c}_reread" "  ... --spool-memory=0 --reread | cat" \
            "$NBD_RUNS" "$WARMUP" "" "$qprog --spool-memory=0 --reread $quri | cat > /dev/null"
        measure "n${c}_one" "  ... --one-pass | cat" \
            "$NBD_RUNS" "$WARMUP" "" "$qprog --one-pass $quri | cat > /dev/null"
        if ((HAVE_BASE)); then
            measure "n${c}_base" "  baseline | cat" "$NBD_RUNS" "$WARMUP" "" \
                "$qbase $quri | cat > /dev/null"
        fi
        measure "n${c}_copy" "  nbdcopy URI null:" "$NBD_RUNS" "$WARMUP" "" \
            "nbdcopy -- $quri null:"
        measure "n${c}_pipe" "  nbdcopy URI - | cat" "$NBD_RUNS" "$WARMUP" "" \
            "nbdcopy -- $quri - | cat > /dev/null"
    done
    say "(timed in $((SECONDS - t0)) s)"
    say
}

# nbd_row LABEL KEY [TARGET]: KEY's mean, its ratio to nbdcopy URI null:
# of the case, and TARGET's verdict (a ratio the mean must not pass).
nbd_row() {
    local label=$1 key=$2 target=${3:-} c=${2%_*} r
    r=$(ratio "${MEAN[$key]}" "${MEAN[${c}_copy]}")
    if [[ -n $target ]]; then
        printf '    %-44s %9s %11sx   %-22s %s\n' "$label" "$(fmt "${MEAN[$key]}")" "$r" \
            "within ${target}x" "$(verdict "$r" '<=' "$target")"
    else
        printf '    %-44s %9s %11sx\n' "$label" "$(fmt "${MEAN[$key]}")" "$r"
    fi
}

nbd_results() {
    local c target

    say "== NBD: results"
    say "Mean times; /nbdcopy null: is the time over nbdcopy URI null:'s, < 1 means faster."
    printf '    %-44s %9s %12s   %-22s %s\n' "" "time" "/nbdcopy null:" "target" "verdict"
    for c in "${NBD_CASES[@]}"; do
        say "${NBD_LABEL[$c]}"
        if ! have "n${c}_tool"; then
            say "    skipped: $NBD_DELAY_SKIP"
            continue
        fi
        target=2
        if [[ $c == tcp ]]; then target=; fi
        nbd_row "qcow2-to-stdout | cat (default)" "n${c}_tool" "$target"
        nbd_row "qcow2-to-stdout --spool-memory=0 --reread" "n${c}_reread"
        case $c in
            unix) target=1.5 ;;
            delay) target=1.25 ;;
        esac
        nbd_row "qcow2-to-stdout --one-pass | cat" "n${c}_one" "$target"
        if have "n${c}_base"; then
            nbd_row "baseline | cat" "n${c}_base"
        fi
        nbd_row "nbdcopy URI - | cat" "n${c}_pipe"
        nbd_row "nbdcopy URI null:" "n${c}_copy"
    done
    if [[ -n ${NBD_RSS[0]:-} ]]; then nbd_say_rss; fi
    say "The tool's output goes through a pipe into cat; nbdcopy null: writes nowhere."
    if have n_pipe_alone && have nunix_copy; then
        say "The pipe alone (2 GiB from head -c into cat): $(fmt "${MEAN[n_pipe_alone]}")," \
            "$(ratio "${MEAN[n_pipe_alone]}" "${MEAN[nunix_copy]}")x of a)'s nbdcopy URI null:"
    fi
    say "Load average after the timings: $(cut -d ' ' -f 1-3 /proc/loadavg 2> /dev/null || echo '?')"
    say
}

# The whole section: skipped with the reason, or built, served, checked,
# timed, reported and cleaned up.
nbd_section() {
    local nbd_start_time=$SECONDS

    if [[ -n $NBD_SKIP ]]; then
        say "== NBD: skipped: $NBD_SKIP"
        say
        return
    fi
    NBD_DIR=$WORK/nbd
    nbd_build
    nbd_serve
    nbd_check
    nbd_time
    nbd_results
    nbd_cleanup                 # its space and page cache go to what follows
    say "NBD section: $((SECONDS - nbd_start_time)) s"
    say
}
