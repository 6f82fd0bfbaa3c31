# shellcheck shell=bash
# The import section of bench/bench.sh, which sources this file:
# qcow2-from-stdin (a qcow2 image read from a pipe, its disk written into a
# file) against qemu-img convert -O raw, which reads the image from the file.
#
# It builds, in the bench's temporary directory, a 4 GiB sparse raw disk
# with 2 GiB of data: 32 pieces of 64 MiB, one every 128 MiB, the even ones
# random (/dev/urandom, each its own), the odd ones text (one 64 MiB chunk
# of log lines made by awk, the piece's index written into its first
# 8 bytes), so that zstd at the cluster level makes about 1.8x of it.
# Three images of it, 64 KiB clusters:
#
#   qemu.qcow2   qemu-img convert -O qcow2 (tables among the data, ahead
#                of what they map)
#   q2s.qcow2    qcow2-to-stdout's stream (all the metadata first)
#   zstd.qcow2   qemu-img convert -c -O qcow2 -o compression_type=zstd
#
# Each is imported once first: that run is the warm-up (the image read into
# the page cache), the check (qemu-img compare of out.raw with the raw disk)
# and the RSS measure (/usr/bin/time -f %M on qcow2-from-stdin alone); so is
# qemu-img's first run of each.  Then timed (mean ± standard deviation),
# each run writing a new out.raw ("rm -f out.raw; sync" before each: the
# previous run's dirty pages dropped, nothing left to write back):
#
#   ours:      cat IMAGE | qcow2-from-stdin out.raw
#   qemu-img:  qemu-img convert -f qcow2 -O raw IMAGE out.raw
#   floor:     cat IMAGE | pipe-floor out.raw: the image's bytes spliced
#              from the pipe into a file (bench/pipe-floor.c), the least
#              any reader of the pipe can do; where qemu-img is faster
#              than that, no reader of the pipe can reach its time here
#   flushed (no target, for comparison): qcow2-from-stdin --flush
#              (fdatasync at the end) against qemu-img convert -t writeback;
#              by default neither flushes (qemu-img's cache mode unsafe)
#
# Targets: qemu-img/ours >= 1.0 for qemu.qcow2 and q2s.qcow2, >= 1.5 for
# zstd.qcow2; RSS of qcow2-from-stdin < 64 MiB for qemu.qcow2 and q2s.qcow2
# (zstd.qcow2's is shown, with no target).  Needs qemu-img and
# qcow2-from-stdin (make), /usr/bin/time for the RSS column; without them
# the section says why it is skipped.  About 2.5 minutes here (2 CPUs).
#
# Environment (besides bench.sh's):
#   Q2S_IMPORTER       qcow2-from-stdin (default: beside the tool,
#                      $(dirname Q2S_PROGRAM)/qcow2-from-stdin)
#   Q2S_PIPE_FLOOR     bench/pipe-floor.c built (make bench builds it);
#                      without it the floor column is skipped
#   BENCH_IMPORT_RUNS  timed runs of ours and of qemu-img (default 3)
#   BENCH_IMPORT_WB_RUNS  timed runs of the flushed pair (default 1)
#
# Uses from bench.sh: WORK, PROGRAM, HAVE_QEMU, say, note, die, measure,
# ratio, verdict, mib, have, MEAN.

IMPORTER=${Q2S_IMPORTER:-$(dirname -- "$PROGRAM")/qcow2-from-stdin}
PIPE_FLOOR=${Q2S_PIPE_FLOOR:-}
IMPORT_RUNS=${BENCH_IMPORT_RUNS:-3}
IMPORT_WB_RUNS=${BENCH_IMPORT_WB_RUNS:-1}
IMPORT_SKIP=
IMPORT_DIR=
IMPORT_HAVE_TIME=0
IMPORT_CASES=(qemu q2s zstd)
declare -A IMPORT_LABEL=(
    [qemu]="qemu-img convert layout"
    [q2s]="qcow2-to-stdout (metadata first)"
    [zstd]="zstd, qemu-img convert -c"
)
declare -A IMPORT_GOAL=([qemu]=1.0 [q2s]=1.0 [zstd]=1.5)
declare -A IMPORT_RSS=() IMPORT_QEMU_RSS=() IMPORT_SIZE=()

# import_probe: sets IMPORT_SKIP to why the section cannot run here.
import_probe() {
    local var
    for var in IMPORT_RUNS IMPORT_WB_RUNS; do
        [[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$var must be a positive integer, not '${!var}'"
    done
    if ((!HAVE_QEMU)); then
        IMPORT_SKIP="no qemu-img (make deps)"
    elif [[ ! -x $IMPORTER ]]; then
        IMPORT_SKIP="no qcow2-from-stdin at '$IMPORTER' (run make, or set Q2S_IMPORTER)"
    elif ! qemu-img create -f qcow2 -o help 2>&1 | grep -q 'compression_type'; then
        IMPORT_SKIP="this qemu-img cannot make zstd-compressed images (no compression_type)"
    fi
    if [[ -n $PIPE_FLOOR && ! -x $PIPE_FLOOR ]]; then
        note "no pipe-floor at '$PIPE_FLOOR': the import section's floor column is skipped"
        PIPE_FLOOR=
    fi
    if [[ -x /usr/bin/time ]]; then
        IMPORT_HAVE_TIME=1
    elif [[ -z $IMPORT_SKIP ]]; then
        note "no /usr/bin/time (Debian package time: make deps): the import section's RSS column is skipped"
    fi
}

# Deletes the section's files; run on exit, signals included, and after
# the section.
import_cleanup() {
    if [[ -n $IMPORT_DIR ]]; then rm -rf -- "$IMPORT_DIR"; fi
    return 0
}

import_build() {
    local t0=$SECONDS i raw=$IMPORT_DIR/disk.raw txt=$IMPORT_DIR/text alloc_kib c data
    local log=$IMPORT_DIR/build.log

    say "== Import: building the disk and its three images"
    mkdir -p -- "$IMPORT_DIR"
    truncate -s 4G -- "$raw" || die "cannot make a 4 GiB file in '$IMPORT_DIR'"
    # Log lines: a few fields vary, most repeat; zstd makes about 1/10 of
    # a 64 KiB cluster of them.
    awk 'BEGIN {
        srand(1); n = 0; t = 0
        split("kernel sshd systemd cron nginx postgres dockerd", d, " ")
        split("INFO INFO INFO WARN", lv, " ")
        while (n < 67108864) {
            t += int(rand() * 3)
            l = sprintf("2026-12-07 %02d:%02d:%02d host%02d %s[%d]: %s GET /api/v1/items/%d HTTP/1.1 status=200\n",
                int(t / 3600) % 24, int(t / 60) % 60, t % 60, int(rand() * 4),
                d[1 + int(rand() * 7)], 1000 + int(rand() * 8), lv[1 + int(rand() * 4)],
                int(rand() * 1000))
            printf "%s", l
            n += length(l)
        }
    }' | head -c $((64 * 1024 * 1024)) > "$txt" || die "cannot write $txt"
    for ((i = 0; i < 32; i++)); do
        if ((i % 2 == 0)); then
            dd if=/dev/urandom of="$raw" bs=1M count=64 seek=$((i * 128)) conv=notrunc \
                iflag=fullblock status=none || die "cannot write $raw"
        else
            printf '%08d' "$i" | dd of="$txt" bs=8 count=1 conv=notrunc status=none ||
                die "cannot write $txt"
            dd if="$txt" of="$raw" bs=1M seek=$((i * 128)) conv=notrunc status=none ||
                die "cannot write $raw"
        fi
    done
    rm -f -- "$txt"
    alloc_kib=$(du -k -- "$raw" | awk '{ print $1 }')
    say "disk.raw: 4 GiB virtual, $((alloc_kib / 1024)) MiB allocated" \
        "(16 pieces of 64 MiB of random data, 16 of text, one piece every 128 MiB)"
    if ((alloc_kib > 3 * 1024 * 1024)); then
        note "the filesystem does not seem to keep holes: the numbers will not mean much"
    fi
    qemu-img convert -f raw -O qcow2 -- "$raw" "$IMPORT_DIR/qemu.qcow2" > "$log" 2>&1 ||
        { cat -- "$log" >&2; die "qemu-img convert -O qcow2 failed"; }
    "$PROGRAM" "$raw" > "$IMPORT_DIR/q2s.qcow2" 2> "$log" ||
        { cat -- "$log" >&2; die "the tool failed on $raw"; }
    qemu-img convert -f raw -c -O qcow2 -o compression_type=zstd -- "$raw" \
        "$IMPORT_DIR/zstd.qcow2" > "$log" 2>&1 ||
        { cat -- "$log" >&2; die "qemu-img convert -c -o compression_type=zstd failed"; }
    rm -f -- "$log"
    # Written back now rather than while the timings run.
    sync -- "$raw" "$IMPORT_DIR"/*.qcow2
    data=$((alloc_kib * 1024))
    for c in "${IMPORT_CASES[@]}"; do
        IMPORT_SIZE[$c]=$(stat -c %s -- "$IMPORT_DIR/$c.qcow2")
        say "$c.qcow2: $(mib "${IMPORT_SIZE[$c]}") MiB (${IMPORT_LABEL[$c]}$(
            if [[ $c == zstd ]]; then
                awk -v d="$data" -v s="${IMPORT_SIZE[$c]}" \
                    'BEGIN { printf "; the data compressed %.2fx", d / s }'
            fi))"
    done
    say "(built in $((SECONDS - t0)) s)"
    say
}

# import_first CASE: the first run of ours and of qemu-img on CASE's image,
# out of the timings: reads the image into the page cache, checks ours's
# out.raw against the raw disk, measures both RSS.
import_first() {
    local c=$1 img=$IMPORT_DIR/$1.qcow2 out=$IMPORT_DIR/out.raw rss=$IMPORT_DIR/rss
    local log=$IMPORT_DIR/first.log alloc_kib

    rm -f -- "$out"
    if ((IMPORT_HAVE_TIME)); then
        (set -o pipefail; cat -- "$img" | /usr/bin/time -f %M -o "$rss" "$IMPORTER" "$out") \
            2> "$log" || { cat -- "$log" >&2; die "qcow2-from-stdin failed on $c.qcow2"; }
        IMPORT_RSS[$c]=$(tail -n 1 -- "$rss")
    else
        (set -o pipefail; cat -- "$img" | "$IMPORTER" "$out") 2> "$log" ||
            { cat -- "$log" >&2; die "qcow2-from-stdin failed on $c.qcow2"; }
    fi
    qemu-img compare -q -f raw -F raw -- "$IMPORT_DIR/disk.raw" "$out" > "$log" 2>&1 ||
        { cat -- "$log" >&2; die "$c.qcow2: qcow2-from-stdin's out.raw differs from disk.raw"; }
    alloc_kib=$(du -k -- "$out" | awk '{ print $1 }')
    rm -f -- "$out"
    if ((IMPORT_HAVE_TIME)); then
        /usr/bin/time -f %M -o "$rss" qemu-img convert -f qcow2 -O raw -- "$img" "$out" \
            > "$log" 2>&1 || { cat -- "$log" >&2; die "qemu-img convert -O raw failed on $c.qcow2"; }
        IMPORT_QEMU_RSS[$c]=$(tail -n 1 -- "$rss")
    else
        qemu-img convert -f qcow2 -O raw -- "$img" "$out" > "$log" 2>&1 ||
            { cat -- "$log" >&2; die "qemu-img convert -O raw failed on $c.qcow2"; }
    fi
    rm -f -- "$out" "$rss" "$log"
    say "$c.qcow2: out.raw identical to disk.raw (qemu-img compare), $((alloc_kib / 1024)) MiB" \
        "allocated${IMPORT_RSS[$c]:+; RSS: ours $(import_mib "${IMPORT_RSS[$c]}") MiB,}${IMPORT_RSS[$c]:+" qemu-img $(import_mib "${IMPORT_QEMU_RSS[$c]}") MiB"}"
}

import_time() {
    local t0=$SECONDS c qimp qimg qout prep qfloor

    printf -v qimp '%q' "$IMPORTER"
    printf -v qout '%q' "$IMPORT_DIR/out.raw"
    printf -v qfloor '%q' "$PIPE_FLOOR"
    prep="rm -f -- $qout; sync"
    say "== Import: first runs (warm-up, check, RSS)"
    for c in "${IMPORT_CASES[@]}"; do import_first "$c"; done
    say "(in $((SECONDS - t0)) s)"
    say
    t0=$SECONDS
    say "== Import: timing (mean ± standard deviation; warm-up: the first runs above)"
    for c in "${IMPORT_CASES[@]}"; do
        printf -v qimg '%q' "$IMPORT_DIR/$c.qcow2"
        say "$c.qcow2 (${IMPORT_LABEL[$c]})"
        measure "imp_${c}_tool" "  cat | qcow2-from-stdin out.raw" "$IMPORT_RUNS" 0 "$prep" \
            "cat -- $qimg | $qimp $qout"
        measure "imp_${c}_qemu" "  qemu-img convert -O raw" "$IMPORT_RUNS" 0 "$prep" \
            "qemu-img convert -f qcow2 -O raw -- $qimg $qout"
        if [[ -n $PIPE_FLOOR ]]; then
            measure "imp_${c}_floor" "  cat | pipe-floor out.raw (the pipe alone)" \
                "$IMPORT_RUNS" 0 "$prep" "cat -- $qimg | $qfloor $qout"
        fi
        measure "imp_${c}_toolwb" "  cat | qcow2-from-stdin --flush out.raw" "$IMPORT_WB_RUNS" 0 "$prep" \
            "cat -- $qimg | $qimp --flush $qout"
        measure "imp_${c}_wb" "  qemu-img convert -O raw -t writeback" "$IMPORT_WB_RUNS" 0 "$prep" \
            "qemu-img convert -t writeback -f qcow2 -O raw -- $qimg $qout"
    done
    rm -f -- "$IMPORT_DIR/out.raw"
    say "(timed in $((SECONDS - t0)) s)"
    say
}

# import_s SECONDS: three decimals (awk: no locale's decimal comma).
import_s() { awk -v v="$1" 'BEGIN { printf "%.3f", v }'; }

# import_mib KIB: KIB in MiB, one decimal, or n/a if empty.
import_mib() {
    if [[ -n $1 ]]; then awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; else echo n/a; fi
}

import_results() {
    local c r rss_goal rss_verdict wb floor floor_ratio
    local row='    %-33s %8s %12s %8s %7s %-7s %9s %8s %-4s %9s %s\n'

    say "== Import: results"
    say "Mean times; ratio = qemu-img/ours, > 1 means qcow2-from-stdin is faster."
    # shellcheck disable=SC2059  # the format is the row's
    printf "$row" "case" "ours (s)" "qemu-img (s)" "ratio" "goal" "" "RSS (MiB)" "RSS goal" "" \
        "floor (s)" "qemu-img/floor"
    for c in "${IMPORT_CASES[@]}"; do
        r=$(ratio "${MEAN[imp_${c}_qemu]}" "${MEAN[imp_${c}_tool]}")
        rss_goal="< 64" rss_verdict=n/a
        if [[ $c == zstd ]]; then
            rss_goal="(none)" rss_verdict=
        elif [[ -n ${IMPORT_RSS[$c]:-} ]]; then
            rss_verdict=$( ((IMPORT_RSS[$c] < 64 * 1024)) && echo met || echo MISSED)
        fi
        floor=n/a floor_ratio=n/a
        if [[ -n ${MEAN[imp_${c}_floor]:-} ]]; then
            floor=$(import_s "${MEAN[imp_${c}_floor]}")
            floor_ratio="$(ratio "${MEAN[imp_${c}_qemu]}" "${MEAN[imp_${c}_floor]}")x"
        fi
        # shellcheck disable=SC2059
        printf "$row" "${IMPORT_LABEL[$c]}" "$(import_s "${MEAN[imp_${c}_tool]}")" \
            "$(import_s "${MEAN[imp_${c}_qemu]}")" "${r}x" \
            ">=${IMPORT_GOAL[$c]}x" "$(verdict "$r" '>=' "${IMPORT_GOAL[$c]}")" \
            "$(import_mib "${IMPORT_RSS[$c]:-}")" "$rss_goal" "$rss_verdict" \
            "$floor" "$floor_ratio"
    done
    say
    say "Flushed to disk at the end (no target): qcow2-from-stdin --flush (fdatasync) against"
    say "qemu-img convert -t writeback; neither flushes by default (qemu-img's -t unsafe)."
    printf '    %-33s %8s %12s %8s %s\n' "case" "--flush (s)" "qemu-img -t" "ratio" "qemu-img RSS (MiB)"
    printf '    %-33s %8s %12s\n' "" "" "writeback (s)"
    for c in "${IMPORT_CASES[@]}"; do
        wb=$(ratio "${MEAN[imp_${c}_wb]}" "${MEAN[imp_${c}_toolwb]}")
        printf '    %-33s %8s %12s %7sx %s\n' "${IMPORT_LABEL[$c]}" \
            "$(import_s "${MEAN[imp_${c}_toolwb]}")" "$(import_s "${MEAN[imp_${c}_wb]}")" "$wb" \
            "$(import_mib "${IMPORT_QEMU_RSS[$c]:-}")"
    done
    say "floor: the image's bytes spliced from the pipe into out.raw, nothing parsed (pipe-floor);"
    say "a qemu-img/floor ratio below 1 means that qemu-img, reading the file, is faster than any"
    say "reader of the pipe can be on this machine: the goal is out of reach of the pipe itself."
    say "Ours reads the image through a pipe (cat), qemu-img from the file; both write"
    say "out.raw in $IMPORT_DIR, deleted (and sync run) before each run."
    say "Load average after the timings: $(cut -d ' ' -f 1-3 /proc/loadavg 2> /dev/null || echo '?')"
    say
}

# The whole section: skipped with the reason, or built, checked, timed,
# reported and cleaned up.
import_section() {
    local import_start=$SECONDS

    if [[ -n $IMPORT_SKIP ]]; then
        say "== Import: skipped: $IMPORT_SKIP"
        say
        return
    fi
    IMPORT_DIR=$WORK/import
    say "== Import: $IMPORTER ($("$IMPORTER" --version 2> /dev/null | head -n 1 || echo '?'))"
    import_build
    import_time
    import_results
    import_cleanup              # its space and page cache go to what follows
    say "Import section: $((SECONDS - import_start)) s"
    say
}
