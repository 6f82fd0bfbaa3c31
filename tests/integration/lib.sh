# Sourced by every integration test: TAP output, a scratch directory that
# goes away whatever happens, and checks by QEMU's own tools.
set -u
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
Q2S=${Q2S_PROGRAM:-$top/build/qcow2-to-stdout}
REFERENCE=${Q2S_REFERENCE:-$top/../shared/reference/qcow2-to-stdout.py}
Q2F=${Q2S_IMPORTER:-$top/build/qcow2-from-stdin}
test_count=0
scratch=$(mktemp -d "${TMPDIR:-/tmp}/q2s-test.XXXXXX")
cleanup_hooks=()
cleanup() {
    local hook
    for hook in "${cleanup_hooks[@]}"; do eval "$hook"; done
    rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$scratch" || exit 1
# Under make check-valgrind the importer runs under valgrind too: Q2F is
# then a script that starts it through the same wrapper.
if [ -n "${Q2S_VALGRIND_IMPORTER:-}" ]; then
    Q2F=$scratch/.qcow2-from-stdin
    printf '#!/bin/sh\nQ2S_VALGRIND_PROGRAM=%s exec %s "$@"\n' \
        "$Q2S_VALGRIND_IMPORTER" "$top/tests/valgrind-wrapper.sh" > "$Q2F"
    chmod +x "$Q2F"
fi

ok()      { test_count=$((test_count + 1)); echo "ok $test_count - $*"; }
not_ok()  { test_count=$((test_count + 1)); echo "not ok $test_count - $*"; }
skip()    { test_count=$((test_count + 1)); echo "ok $test_count - $1 # SKIP $2"; }
finish()  { echo "1..$test_count"; }

# check NAME COMMAND...: one test that passes when the command succeeds;
# on failure, the command's output is shown as TAP comments.
check() {
    local name=$1; shift
    local out
    if out=$("$@" 2>&1); then
        ok "$name"
    else
        not_ok "$name"
        sed 's/^/# /' <<<"$out" | head -20
    fi
}

have() { command -v "$1" >/dev/null 2>&1; }

# valid_image QCOW2 RAW: qemu-img check finds no errors, and the guest sees
# exactly the bytes of RAW (padded with zeros to the virtual size).
valid_image() {
    qemu-img check -f qcow2 "$1" >/dev/null || { echo "qemu-img check failed:"; qemu-img check -f qcow2 "$1"; return 1; }
    qemu-img compare -f raw -F qcow2 "$2" "$1" >/dev/null || { echo "qemu-img compare:"; qemu-img compare -f raw -F qcow2 "$2" "$1"; return 1; }
}

# write_at FILE OFFSET: writes standard input into FILE at byte OFFSET.
write_at() {
    dd of="$1" bs=64K seek="$2" oflag=seek_bytes iflag=fullblock \
        conv=notrunc status=none
}

# make_image FILE SIZE: a sparse image of SIZE bytes with data in several
# places: runs that cross cluster, L2-table and refcount-block boundaries
# at every cluster size, allocated zeros, and data in the last bytes.
make_image() {
    local file=$1 size=$2
    rm -f "$file"
    truncate -s "$size" "$file"
    printf 'first bytes' | write_at "$file" 0
    head -c 300000 /dev/urandom | write_at "$file" 70000
    head -c 262144 /dev/zero | write_at "$file" 819200
    head -c 1000 /dev/urandom | write_at "$file" 1000000
    if [ "$size" -gt 3000000 ]; then
        head -c 1200000 /dev/urandom | write_at "$file" 1800000
    fi
    printf 'last bytes' | write_at "$file" $((size - 10))
}

# fails STATUS PATTERN COMMAND...: runs COMMAND (stdout to out.bin), which
# must exit with STATUS and print one line matching PATTERN on stderr
# (usage errors add a usage line and a hint).
fails() {
    local want=$1 pattern=$2; shift 2
    local status
    timeout 60 "$@" > out.bin 2> err.txt
    status=$?
    if [ "$status" != "$want" ]; then
        echo "exit status $status, expected $want"; cat err.txt; return 1
    fi
    if ! head -n 1 err.txt |
            grep -q "^qcow2-\\(to-stdout\\|from-stdin\\): .*$pattern"; then
        echo "stderr does not match '$pattern':"; cat err.txt; return 1
    fi
    if [ "$want" = 1 ] && [ "$(wc -l < err.txt)" != 1 ]; then
        echo "more than one line on stderr:"; cat err.txt; return 1
    fi
    if [ "$want" = 2 ] && ! grep -q '^Usage: ' err.txt; then
        echo "no usage line:"; cat err.txt; return 1
    fi
}

# in_background COMMAND... &: runs COMMAND with SIGINT, SIGQUIT and SIGHUP
# at their defaults.  A shell without job control starts background
# commands with the first two ignored, a suite run under nohup all of them
# with SIGHUP ignored, and the tool, like GNU tools, leaves ignored
# signals be.
in_background() { exec env --default-signal=INT,QUIT,HUP "$@"; }

# qemu_nbd_count: the qemu-nbd processes of this test, those working in
# its scratch directory (other tests may run at the same time).
qemu_nbd_count() {
    local pid count=0
    for pid in $(pgrep -x qemu-nbd); do
        [ "$(readlink "/proc/$pid/cwd")" = "$scratch" ] && count=$((count + 1))
    done
    echo "$count"
}

# limit SECONDS: a bound on how long the tool may take, three times as
# long under valgrind, whose start and leak check at exit take their own
# time (more so beside other tests); the plain and sanitizer runs keep
# the bound the docs promise.
limit() {
    if [ -n "${Q2S_VALGRIND_PROGRAM:-}" ]; then
        echo $(($1 * 3))
    else
        echo "$1"
    fi
}

# gone_within PID SECONDS: the process ends within that time (checked
# every 50 ms; tail --pid looks only once a second), scaled by limit.  A
# zombie has ended: a child of a dead tool waits there until init reaps
# it.
gone_within() {
    local i state seconds
    seconds=$(limit "$2")
    for ((i = 0; i < seconds * 20; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
        [ "$state" = Z ] && return 0
        sleep 0.05
    done
    echo "process $1 still runs after $seconds s"; return 1
}

# dies_of SIGNAL PID ERRFILE: sends SIGNAL to PID, a background child of
# this shell, which must end within a second, dying of that signal.
dies_of() {
    local status
    kill "-$1" "$2"
    gone_within "$2" 1 || { kill -KILL "$2"; wait "$2"; return 1; }
    wait "$2"; status=$?
    [ "$status" = $((128 + $(kill -l "$1"))) ] ||
        { echo "status $status"; cat "$3"; return 1; }
}

# sigint_status PID: sends SIGINT to PID, a child of this shell, and gives
# its exit status (130 when it died of the signal); it gets 20 seconds.
sigint_status() {
    kill -INT "$1"
    timeout 20 tail --pid="$1" -f /dev/null ||
        { kill -KILL "$1"; echo "SIGINT did not stop it" >&2; }
    wait "$1"
}
