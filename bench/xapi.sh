# shellcheck shell=bash
# The xapi section of bench/bench.sh, which sources this file: the command
# lines XAPI runs its fork of the reference script with
# (ocaml/xapi/qcow_tool_wrapper.ml), timed against the fork in one run.
#
# It builds, in the bench's temporary directory, a 4 GiB raw base with
# 256 MiB of random data (2048 pieces of 128 KiB at random places, as on a
# used disk) and an input made from it: a tenth of the pieces rewritten,
# and 128 new pieces (16 MiB).  Their qcow2 twins come from qemu-img convert
# -O qcow2 (64 KiB clusters), and the JSON that XAPI passes on file
# descriptors from qemu-img map / info --output=json on them, written to
# files before any timing.  The two raw files go on read-only loop devices,
# as a VDI's block device would be.  Then, page cache warm (the loop
# devices' backing files; a block device's own cache goes with its last
# close, so every run reads through the device):
#
#   a) plain:           PROG DEV                          (and dd bs=4M DEV)
#   b) with maps:       PROG --json-header-map 3 --json-header-info 4 DEV
#   c) --diff, maps:    PROG --diff BASEDEV --json-header-map 3
#                         --json-header-info 4 --json-header-diff-map 5
#                         --json-header-diff-info 6 DEV
#   d) --diff, no maps: PROG --diff BASEDEV DEV
#
# with fds 3 to 6 opened on the JSON files inside each timed command.  Each
# command line is run once by both first, outputs compared with cmp (a
# MISMATCH line if they differ; the bench then fails at its end).  A build
# of the tool without --json-header-map or --diff gets "not supported by
# this build" on those rows.  Needs root, losetup (Debian package mount)
# and qemu-img; without them the section says why it is skipped.
#
# Uses from bench.sh: WORK, PROGRAM, REPO, RUNS, REF_RUNS, WARMUP,
# HAVE_PYTHON, HAVE_QEMU, HAVE_BASE, BASELINE, say, note, die, measure,
# ratio, verdict, fmt, have.

XAPI_REFERENCE=${Q2S_XAPI_REFERENCE:-$REPO/../shared/reference/qcow2-to-stdout-xapi.py}
XAPI_SKIP=
XAPI_HAVE_FORK=0
XAPI_MISMATCHES=0
XAPI_BASE_RAW=
XAPI_IN_RAW=

# xapi_probe: sets XAPI_SKIP to why the section cannot run here, and
# XAPI_HAVE_FORK.
xapi_probe() {
    if ((EUID != 0)); then
        XAPI_SKIP="not root (loop devices need it)"
    elif ! command -v losetup > /dev/null 2>&1 && [[ ! -x /sbin/losetup ]]; then
        XAPI_SKIP="no losetup (Debian package mount: make deps)"
    elif ((!HAVE_QEMU)); then
        XAPI_SKIP="no qemu-img (for the qcow2 twins and their maps: make deps)"
    fi
    if [[ ! -f $XAPI_REFERENCE ]]; then
        note "XAPI's fork '$XAPI_REFERENCE' not found: the xapi section times the tool alone"
    elif ((!HAVE_PYTHON)); then
        note "python3 not found: the xapi section times the tool alone"
    else
        XAPI_HAVE_FORK=1
        XAPI_REFERENCE=$(cd "$(dirname "$XAPI_REFERENCE")" && pwd)/$(basename "$XAPI_REFERENCE")
    fi
}

xapi_losetup() {
    if command -v losetup > /dev/null 2>&1; then losetup "$@"; else /sbin/losetup "$@"; fi
}

# Detaches every loop device on the section's raw files, including one that
# an interrupted losetup --find --show made without telling its name, then
# deletes the section's files.  Run on exit, ^C included, and after the
# section.
xapi_cleanup() {
    local file dev

    for file in "$XAPI_IN_RAW" "$XAPI_BASE_RAW"; do
        [[ -n $file && -e $file ]] || continue
        while read -r dev; do
            if [[ -n $dev ]]; then xapi_losetup -d "$dev" 2> /dev/null || true; fi
        done < <(xapi_losetup -n -O NAME -j "$file" 2> /dev/null || true)
    done
    rm -rf -- "$WORK/xapi"
}

# xapi_supports PROG OPTION: whether PROG's --help names OPTION.
xapi_supports() {
    "$1" --help 2>&1 | grep -qE -- "$2([^-a-z]|\$)"
}

xapi_build() {
    local i

    say "== XAPI: building the base, the input, their qcow2 twins and maps"
    t0=$SECONDS
    mkdir -p -- "$WORK/xapi"
    # Names with spaces, on purpose.
    XAPI_BASE_RAW="$WORK/xapi/base 4G.raw"
    XAPI_IN_RAW="$WORK/xapi/input 4G.raw"
    truncate -s 4G -- "$XAPI_BASE_RAW"
    # 2048 pieces of 128 KiB at random places (a used disk's data is
    # scattered: its qemu-img map has thousands of entries); the input
    # rewrites a tenth of them and adds 128 where the base has none.
    python3 - "$XAPI_BASE_RAW" "$XAPI_IN_RAW" <<'PY' || die "cannot write the xapi images"
import os, random, sys
base, data = sys.argv[1], random.Random(10)
piece, pieces = 128 * 1024, (4 << 30) // (128 * 1024)
used = sorted(data.sample(range(pieces), 2048))
with open(base, "r+b") as f:
    for p in used:
        f.seek(p * piece)
        f.write(data.randbytes(piece))
os.system("cp --sparse=always -- '%s' '%s'" % (base, sys.argv[2]))
unused = sorted(set(range(pieces)) - set(used))
with open(sys.argv[2], "r+b") as f:
    for p in sorted(data.sample(used, 205) + data.sample(unused, 128)):
        f.seek(p * piece)
        f.write(data.randbytes(piece))
PY
    sync -- "$XAPI_BASE_RAW" "$XAPI_IN_RAW"
    qemu-img convert -f raw -O qcow2 -- "$XAPI_BASE_RAW" "$WORK/xapi/base.qcow2" ||
        die "qemu-img convert could not make the base's qcow2"
    qemu-img convert -f raw -O qcow2 -- "$XAPI_IN_RAW" "$WORK/xapi/input.qcow2" ||
        die "qemu-img convert could not make the input's qcow2"
    for i in base input; do
        qemu-img map --output=json -- "$WORK/xapi/$i.qcow2" > "$WORK/xapi/$i-map.json" ||
            die "qemu-img map failed on $WORK/xapi/$i.qcow2"
        qemu-img info --output=json -- "$WORK/xapi/$i.qcow2" > "$WORK/xapi/$i-info.json" ||
            die "qemu-img info failed on $WORK/xapi/$i.qcow2"
    done
    if ! XAPI_BASE_DEV=$(xapi_losetup --find --show --read-only -- "$XAPI_BASE_RAW" 2>&1) ||
        ! XAPI_IN_DEV=$(xapi_losetup --find --show --read-only -- "$XAPI_IN_RAW" 2>&1); then
        XAPI_SKIP="cannot make a loop device: ${XAPI_IN_DEV:-$XAPI_BASE_DEV}"
        return
    fi
    say "base:  $XAPI_BASE_RAW on $XAPI_BASE_DEV," \
        "$(du -k -- "$XAPI_BASE_RAW" | awk '{ printf "%d MiB", $1 / 1024 }') allocated"
    say "input: $XAPI_IN_RAW on $XAPI_IN_DEV," \
        "$(du -k -- "$XAPI_IN_RAW" | awk '{ printf "%d MiB", $1 / 1024 }') allocated" \
        "(the base's, 24 MiB of it rewritten, and 16 MiB more)"
    say "qcow2 twins (qemu-img convert -O qcow2): base" \
        "$(du -k -- "$WORK/xapi/base.qcow2" | awk '{ printf "%d MiB", $1 / 1024 }'), input" \
        "$(du -k -- "$WORK/xapi/input.qcow2" | awk '{ printf "%d MiB", $1 / 1024 }');" \
        "their qemu-img map and info JSON in files"
    # The first read through each device puts its backing file in the page
    # cache (holes included): the timings start warm.
    for i in "$XAPI_BASE_DEV" "$XAPI_IN_DEV"; do
        dd if="$i" of=/dev/null bs=4M status=none || die "cannot read $i"
    done
    say "(built and read once in $((SECONDS - t0)) s)"
    say
}

# The four command lines, without the program: XAPI_ARGS[case] is what
# follows it, XAPI_FDS[case] opens the JSON files on fds 3 to 6 before it,
# XAPI_OPTION[case] the option a build must have to run it.
declare -A XAPI_ARGS=() XAPI_FDS=() XAPI_OPTION=() XAPI_LABEL=()
XAPI_CASES=(plain maps diffmaps diff)

xapi_command_lines() {
    local qin qbase d=$WORK/xapi qim qii qbm qbi

    printf -v qin '%q' "$XAPI_IN_DEV"
    printf -v qbase '%q' "$XAPI_BASE_DEV"
    printf -v qim '%q' "$d/input-map.json"
    printf -v qii '%q' "$d/input-info.json"
    printf -v qbm '%q' "$d/base-map.json"
    printf -v qbi '%q' "$d/base-info.json"
    XAPI_LABEL[plain]="a) plain"
    XAPI_ARGS[plain]="$qin"
    XAPI_LABEL[maps]="b) with maps (fds 3, 4)"
    XAPI_FDS[maps]="exec 3< $qim 4< $qii;"
    XAPI_ARGS[maps]="--json-header-map 3 --json-header-info 4 $qin"
    XAPI_OPTION[maps]=--json-header-map
    XAPI_LABEL[diffmaps]="c) --diff BASEDEV with maps (fds 3 to 6)"
    XAPI_FDS[diffmaps]="exec 3< $qim 4< $qii 5< $qbm 6< $qbi;"
    XAPI_ARGS[diffmaps]="--diff $qbase --json-header-map 3 --json-header-info 4"
    XAPI_ARGS[diffmaps]+=" --json-header-diff-map 5 --json-header-diff-info 6 $qin"
    XAPI_OPTION[diffmaps]=--json-header-diff-map
    XAPI_LABEL[diff]="d) --diff BASEDEV, no maps"
    XAPI_ARGS[diff]="--diff $qbase $qin"
    XAPI_OPTION[diff]=--diff
}

# xapi_runs PROG CASE: whether PROG has what CASE needs.
xapi_runs() {
    [[ -z ${XAPI_OPTION[$2]:-} ]] || xapi_supports "$1" "${XAPI_OPTION[$2]}"
}

# xapi_check CASE: the tool's output and the fork's, same bytes or a
# MISMATCH line.
xapi_check() {
    local c=$1 qprog qfork log=$WORK/xapi/cmp.log

    printf -v qprog '%q' "$PROGRAM"
    printf -v qfork '%q' "$XAPI_REFERENCE"
    printf '%-44s' "${XAPI_LABEL[$c]}"
    if ((!XAPI_HAVE_FORK)); then
        say "not checked: no fork"
        return
    fi
    if ! xapi_runs "$PROGRAM" "$c"; then
        say "ours: not supported by this build"
        return
    fi
    if bash -c "set -o pipefail; cmp -- \
        <(${XAPI_FDS[$c]:-} python3 $qfork ${XAPI_ARGS[$c]}) \
        <(${XAPI_FDS[$c]:-} $qprog ${XAPI_ARGS[$c]})" > "$log" 2>&1; then
        say "same bytes as the fork"
    else
        say "MISMATCH: $(head -c 300 -- "$log" | tr '\n' ' ')"
        XAPI_MISMATCHES=$((XAPI_MISMATCHES + 1))
    fi
    rm -f -- "$log"
}

xapi_time() {
    local c qprog qfork qbase qdev

    printf -v qprog '%q' "$PROGRAM"
    printf -v qfork '%q' "$XAPI_REFERENCE"
    printf -v qbase '%q' "$BASELINE"
    printf -v qdev '%q' "$XAPI_IN_DEV"
    say "== XAPI: timing (mean ± standard deviation)"
    t0=$SECONDS
    for c in "${XAPI_CASES[@]}"; do
        say "${XAPI_LABEL[$c]}"
        if [[ $c == plain ]]; then
            measure "x${c}_dd" "  dd bs=4M of the device" "$RUNS" "$WARMUP" "" \
                "dd if=$qdev of=/dev/null bs=4M status=none"
        fi
        if xapi_runs "$PROGRAM" "$c"; then
            measure "x${c}_tool" "  qcow2-to-stdout" "$RUNS" "$WARMUP" "" \
                "${XAPI_FDS[$c]:-} $qprog ${XAPI_ARGS[$c]} | cat > /dev/null"
        else
            printf '%-44s%s\n' "  qcow2-to-stdout" "ours: not supported by this build"
        fi
        if ((HAVE_BASE)) && xapi_runs "$BASELINE" "$c"; then
            measure "x${c}_base" "  baseline" "$RUNS" "$WARMUP" "" \
                "${XAPI_FDS[$c]:-} $qbase ${XAPI_ARGS[$c]} | cat > /dev/null"
        fi
        if ((XAPI_HAVE_FORK)); then
            measure "x${c}_fork" "  XAPI's fork" "$REF_RUNS" 0 "" \
                "${XAPI_FDS[$c]:-} python3 $qfork ${XAPI_ARGS[$c]} | cat > /dev/null"
        fi
    done
    say "(timed in $((SECONDS - t0)) s)"
    say
}

# xapi_fork_line CASE TARGET: fork/tool and its target.
xapi_fork_line() {
    local c=$1 target=$2 r

    if have "x${c}_fork" && have "x${c}_tool"; then
        r=$(ratio "${MEAN[x${c}_fork]}" "${MEAN[x${c}_tool]}")
        printf '    %-56s target >= %-5s %s\n' "fork/tool: ${r}x faster than the fork" \
            "${target}x" "$(verdict "$r" '>=' "$target")"
    elif have "x${c}_fork"; then
        printf '    %-56s target >= %-5s %s\n' "fork/tool: ours: not supported by this build" \
            "${target}x" "n/a"
    else
        printf '    %-56s target >= %-5s %s\n' "fork/tool: not measured (no fork)" \
            "${target}x" "n/a"
    fi
}

xapi_results() {
    local c r

    say "== XAPI: results"
    say "Mean times; fork/tool > 1 means the tool is faster."
    for c in "${XAPI_CASES[@]}"; do
        say "${XAPI_LABEL[$c]}"
        if have "x${c}_dd"; then
            printf '    %-32s %10s\n' "dd bs=4M of the device" "$(fmt "${MEAN[x${c}_dd]}")"
        fi
        if have "x${c}_tool"; then
            printf '    %-32s %10s\n' "qcow2-to-stdout" "$(fmt "${MEAN[x${c}_tool]}")"
        else
            printf '    %-32s %10s\n' "qcow2-to-stdout" "ours: not supported by this build"
        fi
        if have "x${c}_base"; then
            printf '    %-32s %10s\n' "baseline (Q2S_BENCH_BASELINE)" "$(fmt "${MEAN[x${c}_base]}")"
        fi
        if have "x${c}_fork"; then
            printf '    %-32s %10s\n' "XAPI's fork" "$(fmt "${MEAN[x${c}_fork]}")"
        fi
        case $c in
            plain)
                if have xplain_tool; then
                    r=$(ratio "${MEAN[xplain_tool]}" "${MEAN[xplain_dd]}")
                    printf '    %-56s target <= %-5s %s\n' "tool/dd: ${r}x the time dd takes to read the device" \
                        "1.25x" "$(verdict "$r" '<=' 1.25)"
                fi
                if have xplain_fork && have xplain_tool; then
                    printf '    %-56s (no target)\n' \
                        "fork/tool: $(ratio "${MEAN[xplain_fork]}" "${MEAN[xplain_tool]}")x faster than the fork"
                fi
                ;;
            maps) xapi_fork_line maps 4 ;;
            diffmaps) xapi_fork_line diffmaps 10 ;;
            diff) xapi_fork_line diff 5 ;;
        esac
        if have "x${c}_base"; then
            printf '    %-56s (same within noise expected)\n' \
                "tool/baseline: $(ratio "${MEAN[x${c}_tool]}" "${MEAN[x${c}_base]}")x the baseline's time"
        fi
    done
    if ((XAPI_MISMATCHES)); then
        say "MISMATCH: $XAPI_MISMATCHES command line(s) gave other bytes than the fork (see above)"
    fi
    say
}

# The whole section: skipped with the reason, or built, checked, timed,
# reported and cleaned up.
xapi_section() {
    local c

    if [[ -n $XAPI_SKIP ]]; then
        say "== XAPI: skipped: $XAPI_SKIP"
        say
        return
    fi
    xapi_start=$SECONDS
    xapi_build
    if [[ -n $XAPI_SKIP ]]; then
        xapi_cleanup
        say "== XAPI: skipped: $XAPI_SKIP"
        say
        return
    fi
    xapi_command_lines
    say "== XAPI: the tool's output against the fork's, per command line"
    for c in "${XAPI_CASES[@]}"; do
        say "${XAPI_LABEL[$c]%% *} ${XAPI_FDS[$c]:-} PROG ${XAPI_ARGS[$c]}"
    done
    t0=$SECONDS
    for c in "${XAPI_CASES[@]}"; do xapi_check "$c"; done
    say "(checked in $((SECONDS - t0)) s)"
    say
    xapi_time
    xapi_results
    xapi_cleanup                # its space and page cache go to what follows
    say "XAPI section: $((SECONDS - xapi_start)) s"
    say
}
