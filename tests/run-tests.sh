#!/usr/bin/env bash
# Runs every test program and script; each speaks TAP.  Prints what each
# test says, then one closing line: "N passed, N failed, N skipped".
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${Q2S_BUILD:-$top/build}
export Q2S_PROGRAM=${Q2S_PROGRAM:-$build/qcow2-to-stdout}
export CMOCKA_MESSAGE_OUTPUT=TAP

passed=0 failed=0 skipped=0

# Every test works under one directory of this run's own, so that the
# servers left running are looked for among this run's alone: another run
# on the same machine (a second checkout, a sanitizer build) keeps its own.
suite_tmp=$(mktemp -d "${TMPDIR:-/tmp}/q2s-suite.XXXXXX") || exit 1
trap 'rm -rf -- "$suite_tmp"' EXIT
export TMPDIR=$suite_tmp

run_one() {
    local name=$1; shift
    local output status line
    output=$("$@" 2>&1)
    status=$?
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

for test in "$build"/tests/unit/test_*; do
    [ -x "$test" ] || continue
    run_one "unit/$(basename "$test")" "$test"
done
# The interface tests link the shared library as installed into the stage;
# under `make check-valgrind`, they run under valgrind too (a memory error
# or a leak is exit status 99, a failure of its own).
stage=${Q2S_STAGE:-$build/stage}
memcheck=()
if [ -n "${Q2S_VALGRIND:-}" ]; then
    memcheck=(env Q2S_TEST_TIME_SCALE=20 "$Q2S_VALGRIND" -q --error-exitcode=99
              --leak-check=full --errors-for-leak-kinds=definite,indirect,possible)
fi
for test in "$build"/tests/api/test_*; do
    [ -x "$test" ] || continue
    run_one "api/$(basename "$test")" \
        env LD_LIBRARY_PATH="$stage/usr/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        "${memcheck[@]}" "$test"
done
for test in "$top"/tests/integration/test_*.sh; do
    run_one "integration/$(basename "$test" .sh)" bash "$test"
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

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
