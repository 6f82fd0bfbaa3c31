# "-": a raw image on standard input, read once.
. "$(dirname "$0")/lib.sh"

mkdir tmp
export TMPDIR=$PWD/tmp

# piped_same NAME FILE OPTIONS...: through a pipe, the same bytes as from
# the file.
piped_same() {
    local file=$1; shift
    "$Q2S" "$@" "$file" > want.qcow2 || return 1
    cat "$file" | "$Q2S" "$@" - > got.qcow2 || return 1
    cmp want.qcow2 got.qcow2
}

make_image disk.raw $((5 * 1024 * 1024 + 1234))
for options in "" "-c 512 -r 1" "-c 4096" "-c 2M -r 64"; do
    check "pipe ${options:-(defaults)}: same bytes as the file" piped_same disk.raw $options
done
for size in 1 511 512 513 65535 65537 1000001; do
    head -c "$size" /dev/urandom > odd.raw
    check "pipe of $size bytes: same bytes as the file" piped_same odd.raw -c 4096
done
# Zeros in the middle of a sector's worth of data, zero sectors between.
{ head -c 700 /dev/urandom; head -c 100000 /dev/zero; head -c 3 /dev/urandom; } > mixed.raw
check "pipe with zero sectors: same bytes as the file" piped_same mixed.raw -c 1024
: > empty.raw
check "empty stdin: same bytes as an empty file" piped_same empty.raw
if have qemu-img; then
    cat disk.raw | "$Q2S" - > piped.qcow2
    check "pipe: valid, same content" valid_image piped.qcow2 disk.raw
fi

# A file on stdin is read in place.
"$Q2S" - < disk.raw > redirected.qcow2
"$Q2S" disk.raw > want.qcow2
check "a file redirected to stdin: same bytes" cmp redirected.qcow2 want.qcow2

# A pipe with O_NONBLOCK set (as a parent may leave it): the tool waits for
# the data instead of failing with EAGAIN, and a signal still stops it.
# (exec: the tool keeps the pid that signals are sent to.)
nonblocking() {
    exec python3 -c 'import fcntl, os, sys
fcntl.fcntl(0, fcntl.F_SETFL, fcntl.fcntl(0, fcntl.F_GETFL) | os.O_NONBLOCK)
os.execvp(sys.argv[1], sys.argv[1:])' "$@"
}
nonblocking_pipe() {
    { sleep 0.3; head -c 3M disk.raw; sleep 0.3; tail -c +$((3 * 1024 * 1024 + 1)) disk.raw; } |
        nonblocking "$Q2S" - > nonblocking.qcow2 || return 1
    valid_image nonblocking.qcow2 disk.raw && cmp nonblocking.qcow2 want.qcow2
}
check "a non-blocking pipe that is slow to fill: valid, same bytes" nonblocking_pipe
nonblocking_pipe_interrupted() {
    local tool status
    rm -f fifo.in && mkfifo fifo.in
    nonblocking "$Q2S" - < fifo.in > /dev/null 2> int.err &
    tool=$!
    exec 8> fifo.in
    head -c 100000 /dev/urandom >&8
    sleep 0.5  # the tool waits for more
    sigint_status "$tool" 2>&1
    status=$?
    exec 8>&-
    [ "$status" = 130 ] || { echo "status $status"; cat int.err; return 1; }
}
check "a non-blocking pipe: SIGINT while waiting for data stops the tool" \
    nonblocking_pipe_interrupted

check "--measure on a pipe" \
    test "$(cat disk.raw | "$Q2S" --measure -)" = "$(stat -c %s want.qcow2)"
ranges_from_pipe() {
    { cat disk.raw | "$Q2S" --length=70000 - &&
        cat disk.raw | "$Q2S" --offset=70000 -; } > joined.qcow2 &&
        cmp joined.qcow2 want.qcow2
}
check "ranges from a pipe" ranges_from_pipe
check "nothing left in TMPDIR" test -z "$(ls -A "$TMPDIR")"

# Only non-zero sectors are kept: a 4 GiB stream with 1 MiB of data.
check "a sparse 4 GiB stream" bash -c \
    "{ head -c 1M /dev/urandom; head -c 4G /dev/zero; } | '$Q2S' --measure - > /dev/null"

check "stdin with -f qcow2 is refused" fails 1 "standard input can only be read as a raw image" \
    bash -c "'$Q2S' -f qcow2 - < disk.raw"
check "stdin with -d is refused: a usage error" fails 2 "external data file" \
    bash -c "'$Q2S' -d - < disk.raw"
if [ -n "${Q2S_VALGRIND_PROGRAM:-}" ]; then
    skip "an unusable TMPDIR" "valgrind needs a usable TMPDIR itself"
else
    check "an unusable TMPDIR" fails 1 "temporary file" \
        bash -c "cat disk.raw | TMPDIR=$PWD/missing '$Q2S' -"
fi
check "a directory on stdin" fails 1 "is a directory" \
    bash -c "'$Q2S' - < ."
finish
