#!/usr/bin/env bash
# make fuzz: runs each fuzz target NAME given for FUZZ_SECONDS (default
# 60), starting from its committed corpus (tests/fuzz/corpus/NAME/) and
# what earlier runs on this machine found ($Q2S_FUZZ_BUILD/corpus/NAME/).
# Any crash, leak, sanitizer report, timeout or broken promise is a
# finding: its reproducer is named, and the status is 1 once every target
# has run.  FUZZ_MERGE=1 adds the inputs that reached new code to the
# committed corpus (libFuzzer's -merge=1, which keeps it small).
#
#     replay a finding:  build/tests/fuzz/replay_NAME FILE  (or the
#                        fuzzer itself: build-fuzz/tests/fuzz/fuzz_NAME FILE)
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${Q2S_FUZZ_BUILD:-$top/build-fuzz}
seconds=${FUZZ_SECONDS:-60}
merge=${FUZZ_MERGE:-0}
findings_dir=$build/findings
# libFuzzer reads a -max_total_time that is not a number as 0: for ever.
case $seconds in
    ''|*[!0-9]*|0) echo "run-fuzzers.sh: FUZZ_SECONDS=$seconds: give a number of seconds, 1 or more" >&2
                   exit 2 ;;
esac
if [ "$#" = 0 ]; then
    echo "run-fuzzers.sh: no fuzz target named" >&2
    exit 2
fi
mkdir -p "$findings_dir"

# The longest input worth trying: a header cluster's names lie in its
# first kilobytes, options are short, maps grow by repetition.
max_len() {
    case $1 in
        image_refs) echo 16384 ;;
        size) echo 64 ;;
        qemu_img_map) echo 4096 ;;
        *) echo 16384 ;;
    esac
}

status=0
found=()
for name in "$@"; do
    fuzzer=$build/tests/fuzz/fuzz_$name
    seeds=$top/tests/fuzz/corpus/$name
    work=$build/corpus/$name
    dict=$top/tests/fuzz/$name.dict
    if [ ! -x "$fuzzer" ] || [ ! -d "$seeds" ]; then
        echo "run-fuzzers.sh: fuzz_$name: no such target (or no corpus in $seeds)" >&2
        exit 2
    fi
    mkdir -p "$work"
    args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048
          -max_len="$(max_len "$name")" -print_final_stats=1
          -artifact_prefix="$findings_dir/$name-")
    [ -f "$dict" ] && args+=(-dict="$dict")
    echo "== fuzz_$name: $seconds s"
    log=$build/fuzz_$name.log
    # Leaks are findings; ASan's own leak check runs at exit for that.
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
        "$fuzzer" "${args[@]}" "$work" "$seeds" > "$log" 2>&1
    result=$?
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)' "$log"
    if [ "$result" != 0 ]; then
        status=1
        tail -40 "$log"
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        found+=("fuzz_$name: ${artifact:-no reproducer written (see $log)}")
        continue
    fi
    if [ "$merge" = 1 ]; then
        "$fuzzer" -merge=1 -max_len="$(max_len "$name")" \
            -artifact_prefix="$findings_dir/$name-merge-" "$seeds" "$work" \
            > "$build/merge_$name.log" 2>&1 ||
            { status=1; found+=("fuzz_$name: the merge failed (see $build/merge_$name.log)"); }
        # The merge goes on past an input that crashes: that is a finding.
        for artifact in "$findings_dir/$name-merge-"*; do
            [ -e "$artifact" ] || continue
            status=1
            found+=("fuzz_$name: $artifact (during the merge)")
        done
    fi
done
for line in "${found[@]}"; do
    echo "finding: $line"
done
[ "$status" = 0 ] && echo "fuzz: $# targets, no finding"
exit "$status"
