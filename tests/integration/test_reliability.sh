# What the tool promises whatever its caller does: closed standard
# descriptors, signals at any moment, children that never outlive it, and
# messages that stay one line.
. "$(dirname "$0")/lib.sh"

make_image disk.raw $((3 * 1024 * 1024))
qemu-img convert -O vmdk disk.raw disk.vmdk

# --- Closed standard descriptors ----------------------------------------
# A closed descriptor would be taken by the next one opened: the stream
# would go into a spool file or a socket, and the status would be 0.
check "closed stdout, file input: status 1" \
    fails 1 "standard output is closed" bash -c "exec '$Q2S' disk.raw >&-"
check "closed stdout, a pipe on stdin: status 1" \
    fails 1 "standard output is closed" bash -c "cat disk.raw | '$Q2S' - >&-"
check "closed stdout, -f vmdk: status 1" \
    fails 1 "standard output is closed" bash -c "exec '$Q2S' -f vmdk disk.vmdk >&-"
check "closed stdin with input -: status 1" \
    fails 1 "standard input is closed" bash -c "exec '$Q2S' - <&-"
closed_stdin_file() {
    "$Q2S" disk.raw <&- > stdin-closed.qcow2 && valid_image stdin-closed.qcow2 disk.raw
}
check "closed stdin, file input: a valid image" closed_stdin_file
closed_stderr_progress() {
    "$Q2S" -p -f vmdk disk.vmdk 2>&- > stderr-closed.qcow2 &&
        valid_image stderr-closed.qcow2 disk.raw
}
check "closed stderr with -p and -f vmdk: a valid image" closed_stderr_progress
closed_stderr_failure() {
    "$Q2S" missing.raw 2>&- > /dev/null
    [ "$?" = 1 ]
}
check "closed stderr: a failure still exits 1" closed_stderr_failure

# --- Children that cannot outlive the tool -------------------------------
# Stand-ins for qemu-nbd and qemu-img that hang, note their pid and where
# their stdout goes, then become sleep (same pid).
mkdir fakebin fake
for program in qemu-nbd qemu-img; do
    cat > "fakebin/$program" <<SCRIPT
#!/bin/sh
readlink /proc/\$\$/fd/1 | cat > "$scratch/fake/$program.stdout"
echo \$\$ > "$scratch/fake/$program.pid"
exec sleep 300
SCRIPT
    chmod +x "fakebin/$program"
done
# wait_for_file FILE: up to 10 s.
wait_for_file() {
    local i
    for ((i = 0; i < 200; i++)); do [ -s "$1" ] && return 0; sleep 0.05; done
    echo "$1 never appeared"; return 1
}
# A qemu-nbd that never answers: the tool waits in the handshake.
killed_in_handshake() {
    local tool child
    rm -f fake/*
    PATH=$scratch/fakebin:$PATH "$Q2S" -f vmdk disk.vmdk > /dev/null 2>&1 &
    tool=$!
    wait_for_file fake/qemu-nbd.pid || { kill -KILL "$tool"; return 1; }
    child=$(cat fake/qemu-nbd.pid)
    kill -KILL "$tool"
    wait "$tool" 2>/dev/null
    gone_within "$child" 2 || { kill -KILL "$child"; return 1; }
}
check "SIGKILL during the qemu-nbd handshake: qemu-nbd dies too" killed_in_handshake
check "qemu-nbd's stdout is /dev/null, not the stream" \
    grep -qx /dev/null fake/qemu-nbd.stdout
# qemu-img map that never ends (the real qemu-nbd serves).
signal_during_map() {
    local signal=$1 tool child status
    rm -f fake/*
    mkdir -p mapbin && ln -sf "$scratch/fakebin/qemu-img" mapbin/qemu-img
    PATH=$scratch/mapbin:$PATH "$Q2S" -f vmdk disk.vmdk > /dev/null 2> map.err &
    tool=$!
    wait_for_file fake/qemu-img.pid || { kill -KILL "$tool"; return 1; }
    child=$(cat fake/qemu-img.pid)
    kill "-$signal" "$tool"
    [ -z "${2:-}" ] || kill "-$signal" "$tool"
    gone_within "$tool" 1 || { kill -KILL "$tool" "$child"; return 1; }
    wait "$tool"; status=$?
    [ "$status" = $((128 + $(kill -l "$signal"))) ] || { echo "status $status"; cat map.err; return 1; }
    gone_within "$child" 1 || { kill -KILL "$child"; return 1; }
}
check "SIGTERM during qemu-img map: the tool and qemu-img end within a second" signal_during_map TERM
check "SIGUSR1 during qemu-img map: the same" signal_during_map USR1
check "two SIGTERMs at once during qemu-img map: qemu-img ends too" signal_during_map TERM twice

# Mid-stream, blocked on a reader that stopped reading: every terminating
# signal ends the tool of that signal, with its qemu-nbd, leaving nothing
# in $TMPDIR.
mkdir tool-tmp
mid_stream_signal() {
    local signal=$1 tool status
    rm -f fifo.out && mkfifo fifo.out
    TMPDIR=$scratch/tool-tmp in_background "$Q2S" -f vmdk disk.vmdk > fifo.out 2> sig.err &
    tool=$!
    exec 7< fifo.out
    head -c 1 <&7 > /dev/null
    kill "-$signal" "$tool"
    gone_within "$tool" 2 || { kill -KILL "$tool"; exec 7<&-; return 1; }
    exec 7<&-
    wait "$tool"; status=$?
    [ "$status" = $((128 + $(kill -l "$signal"))) ] || { echo "status $status"; cat sig.err; return 1; }
    sleep 0.2
    [ "$(qemu_nbd_count)" = 0 ] || { echo "qemu-nbd left running"; return 1; }
    [ -z "$(ls -A tool-tmp)" ] || { echo "left in TMPDIR: $(ls -A tool-tmp)"; return 1; }
}
for signal in TERM INT HUP QUIT USR1 USR2 ALRM; do
    check "SIG$signal mid-stream: the tool dies of it, qemu-nbd too" mid_stream_signal "$signal"
done
# A pipe that never makes the tool wait (its writer is faster than the
# spooling): the signal lands during a read that returns data, not EINTR,
# and must still end the tool.
fast_pipe_signal() {
    local feeder tool status attempt
    # Whether the tool happens to block in read() when the signal lands
    # is a race, so several tries: each must end the tool.
    for attempt in 1 2 3 4 5; do
        rm -f zeros.fifo && mkfifo zeros.fifo
        head -c 64G /dev/zero > zeros.fifo &
        feeder=$!
        TMPDIR=$scratch/tool-tmp "$Q2S" - < zeros.fifo > /dev/null 2> fast.err &
        tool=$!
        sleep 0.3
        kill -TERM "$tool"
        gone_within "$tool" 1 || { kill -KILL "$tool" "$feeder"; wait "$tool"; echo "try $attempt"; return 1; }
        kill "$feeder" 2>/dev/null
        wait "$tool"; status=$?
        [ "$status" = 143 ] || { echo "status $status"; cat fast.err; return 1; }
    done
}
check "SIGTERM while spooling a fast pipe on stdin: the tool ends within a second" fast_pipe_signal
dev_zero_signal() {
    local tool
    TMPDIR=$scratch/tool-tmp "$Q2S" - < /dev/zero > /dev/null 2> zero.err &
    tool=$!
    sleep 0.5
    dies_of TERM "$tool" zero.err
}
check "SIGTERM while reading /dev/zero on stdin: the tool ends within a second" dev_zero_signal
# While compressing: zstd at level 22 takes a second or two over one
# 2 MiB cluster of near-repetitive data, and a signal must not wait for
# the cluster to be done.
compressing_signal() {
    local tool
    python3 -c 'import random
random.seed(2)
block = bytes(random.getrandbits(8) for _ in range(1000))
out = bytearray()
while len(out) < 4 << 20:
    b = bytearray(block)
    for _ in range(5):
        b[random.randrange(1000)] = random.getrandbits(8)
    out += b
open("slow-zstd.raw", "wb").write(out[:4 << 20])' || return 1
    "$Q2S" --compress=zstd --compress-level=22 -c 2M -j 1 slow-zstd.raw > /dev/null 2> zstd.err &
    tool=$!
    sleep 0.1
    dies_of TERM "$tool" zstd.err
}
if have python3; then
    check "SIGTERM while zstd -22 compresses a 2 MiB cluster: the tool ends within a second" compressing_signal
else
    skip "SIGTERM while compressing" "no python3"
fi
# nohup: a signal the caller ignores stays ignored.
nohup_test() {
    local tool
    rm -f fifo.out && mkfifo fifo.out
    nohup "$Q2S" -f vmdk disk.vmdk > fifo.out 2> nohup.err &
    tool=$!
    exec 7< fifo.out
    head -c 1 <&7 > /dev/null
    kill -HUP "$tool"
    cat <&7 > /dev/null
    exec 7<&-
    wait "$tool"
}
check "SIGHUP under nohup: ignored, the stream completes" nohup_test

# --- Messages and exit statuses ------------------------------------------
check "an unknown letter in a group names the letter" \
    fails 2 "unknown option '-a'" "$Q2S" -dash.raw
check "a missing value in a group names the letter" \
    fails 2 "option '-c' needs a value" "$Q2S" disk.raw -dc
check "-R with -f qcow2: a usage error" \
    fails 2 "must be a raw file that the image can name" "$Q2S" -R -f qcow2 disk.raw
check "a timeout of 0: a usage error" fails 2 "invalid timeout '0'" "$Q2S" --timeout=0 disk.raw
check "a timeout with a suffix: a usage error" fails 2 "invalid timeout '1K'" "$Q2S" --timeout=1K disk.raw
newline_name() {
    fails 1 'bad\\nname\.raw: No such file or directory' "$Q2S" "$(printf 'bad\nname.raw')"
}
check "a file name with a newline: the message stays one line" newline_name
control_name() {
    fails 1 'bad\\x1bname\.raw: No such file' "$Q2S" "$(printf 'bad\033name.raw')"
}
check "a file name with an escape character: written as \\x1b" control_name
check "--help into a full device: status 1" fails 1 "write error" bash -c "exec '$Q2S' --help > /dev/full"
check "--help with stdout closed: status 1" fails 1 "write error" bash -c "exec '$Q2S' --help >&-"
check "--version with stdout closed: status 1" fails 1 "write error" bash -c "exec '$Q2S' --version >&-"
check "an empty format: a usage error" fails 2 "invalid format ''" "$Q2S" -f '' disk.raw
check "--version into a full device: status 1" fails 1 "write error" bash -c "exec '$Q2S' --version > /dev/full"
finish
