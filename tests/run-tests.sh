#!/usr/bin/env bash
# Runs every test program and script; each speaks TAP.  Prints what each
# test says, then one closing line: "N passed, N failed, N skipped".
#
# Tests run Q2S_TEST_JOBS at a time (default: the CPUs this process may
# use): each works in a scratch directory of its own, starts its servers
# on sockets there or on free ports, and finds its loop devices free.
# What each says is printed whole, in the order of the list, and the
# slowest are named at the end, with their times.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${Q2S_BUILD:-$top/build}
export Q2S_PROGRAM=${Q2S_PROGRAM:-$build/qcow2-to-stdout}
export Q2S_IMPORTER=${Q2S_IMPORTER:-$build/qcow2-from-stdin}
export CMOCKA_MESSAGE_OUTPUT=TAP
jobs_max=${Q2S_TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}
case $jobs_max in ''|*[!0-9]*|0) jobs_max=1 ;; esac

passed=0 failed=0 skipped=0

# Every test works under one directory of this run's own, so that the
# servers left running are looked for among this run's alone: another run
# on the same machine (a second checkout, a sanitizer build) keeps its own.
suite_tmp=$(mktemp -d "${TMPDIR:-/tmp}/q2s-suite.XXXXXX") || exit 1
results=$(mktemp -d "${TMPDIR:-/tmp}/q2s-results.XXXXXX") || exit 1
trap 'rm -rf -- "$suite_tmp" "$results"' EXIT
export TMPDIR=$suite_tmp

# The tests, in the order they are reported: names and commands.
names=()
commands=()
add() {
    names+=("$1"); shift
    local quoted
    printf -v quoted '%q ' "$@"
    commands+=("$quoted")
}

for test in "$build"/tests/unit/test_*; do
    [ -x "$test" ] || continue
    add "unit/$(basename "$test")" "$test"
done
# The interface tests link the shared library as installed into the stage;
# under `make check-valgrind`, they run under valgrind too (a memory error
# or a leak is exit status 99, a failure of its own), and so do the fuzz
# targets' replays of their corpora (uninitialised reads in the parsers).
stage=${Q2S_STAGE:-$build/stage}
memcheck=()
if [ -n "${Q2S_VALGRIND:-}" ]; then
    memcheck=(env Q2S_TEST_TIME_SCALE=20 "$Q2S_VALGRIND" -q --error-exitcode=99
              --read-inline-info=no --leak-check=full
              --errors-for-leak-kinds=definite,indirect,possible)
fi
for test in "$build"/tests/api/test_*; do
    [ -x "$test" ] || continue
    add "api/$(basename "$test")" \
        env LD_LIBRARY_PATH="$stage/usr/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        "${memcheck[@]}" "$test"
done
for replay in "$build"/tests/fuzz/replay_*; do
    [ -x "$replay" ] || continue
    name=${replay##*/replay_}
    add "fuzz/$name" "${memcheck[@]}" "$replay" "$top/tests/fuzz/corpus/$name"
done
for test in "$top"/tests/integration/test_*.sh; do
    add "integration/$(basename "$test" .sh)" bash "$test"
done

# Runs test i in the background.  A job that a script starts in the
# background has SIGINT and SIGQUIT ignored, which the programs under
# test keep (as nohup wants): the tests that send them need the defaults.
start() {
    local i=$1
    (
        started=$(date +%s%N)
        eval "env --default-signal=INT,QUIT ${commands[$i]}" \
            > "$results/$i.out" 2>&1 < /dev/null
        echo $? > "$results/$i.status"
        echo $(( ($(date +%s%N) - started) / 1000000 )) > "$results/$i.ms"
    ) &
}

# The slow ones first, so that the last to finish is a short one: those
# measured slowest (under valgrind and in plain runs, 2026-12), then the
# other integration tests, then the rest.
slowest="test_ranges test_compress test_import_hostile test_incremental_hostile
    test_import test_xapi test_nbd_spool test_nbd_hostile test_incremental
    test_nbd test_convert test_stdin"
rank() {
    local position=0 slow
    for slow in $slowest; do
        position=$((position + 1))
        [ "integration/$slow" = "$1" ] && { echo $((1000 - position)); return; }
    done
    case $1 in integration/*) echo 100 ;; *) echo 0 ;; esac
}
order=()
while read -r _ i; do
    order+=("$i")
done < <(for i in "${!names[@]}"; do
             echo "$(rank "${names[$i]}") $i"
         done | sort -k1,1nr -k2,2n)
suite_started=$(date +%s)
running=0
for i in "${order[@]}"; do
    if [ "$running" -ge "$jobs_max" ]; then
        wait -n
        running=$((running - 1))
    fi
    start "$i"
    running=$((running + 1))
done
wait

# Counts and prints what test i said.
report() {
    local i=$1 name=${names[$1]}
    local output status line
    output=$(cat "$results/$i.out")
    status=$(cat "$results/$i.status" 2>/dev/null || echo "none")
    local tests_seen=0 after_failure=0
    while IFS= read -r line; do
        case $line in
            "ok "*"# SKIP"*|"ok "*"# skip"*)
                skipped=$((skipped + 1)); tests_seen=1 after_failure=0
                echo "SKIP $name: ${line#ok }" ;;
            "ok "*)
                passed=$((passed + 1)); tests_seen=1 after_failure=0
                echo "PASS $name: ${line#ok }" ;;
            "not ok "*)
                failed=$((failed + 1)); tests_seen=1 after_failure=1
                echo "FAIL $name: ${line#not ok }" ;;
            # What a failed test said about itself, for the log.
            "#"*) [ "$after_failure" = 0 ] || echo "     $name: $line" ;;
            "1.."*|"") ;;
            *) echo "     $name: $line" ;;
        esac
    done <<<"$output"
    # A program that dies, or exits non-zero with every test passed, or
    # says nothing, is a failure of its own.
    if [ "$tests_seen" = 0 ] || { [ "$status" != 0 ] && ! grep -q '^not ok' <<<"$output"; }; then
        failed=$((failed + 1))
        echo "FAIL $name: exited with status $status"
    fi
}
for i in "${!names[@]}"; do
    report "$i"
done

# No server that a test started may outlive it: a test's servers work in
# its scratch directory (qemu-nbd) or name it (nbdkit's socket).
leftovers=""
for pid in $(pgrep -x qemu-nbd; pgrep -x nbdkit); do
    case "$(readlink "/proc/$pid/cwd" 2>/dev/null) $(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" in
        *"$suite_tmp"/*) leftovers="$leftovers $pid" ;;
    esac
done
if [ -n "$leftovers" ]; then
    failed=$((failed + 1))
    echo "FAIL suite: servers left running:$leftovers"
    kill $leftovers 2>/dev/null
else
    passed=$((passed + 1))
    echo "PASS suite: no qemu-nbd or nbdkit left running"
fi

echo "# the slowest tests ($jobs_max at a time):"
for i in "${!names[@]}"; do
    echo "$(cat "$results/$i.ms" 2>/dev/null || echo 0) ${names[$i]}"
done | sort -rn | head -8 |
    while read -r ms name; do
        printf '#   %4d.%d s  %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$name"
    done
echo "# the whole suite: $(( $(date +%s) - suite_started )) s"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
