# shellcheck shell=bash
# The incremental section of bench/bench.sh, which sources this file: an
# increment exported with a dirty bitmap as a qcow2 overlay (issue 11),
# against a full export and against qemu-img convert -B.
#
# It builds, in the bench's temporary directory, a 4 GiB qcow2 disk
# (64 KiB clusters) with 2 GiB of data: 32 pieces of 64 MiB of random data,
# one every 128 MiB, written by qemu-io from one 64 MiB file.  Then a
# persistent dirty bitmap b0 is added (qemu-img bitmap --add, 64 KiB
# granularity), the full backup is exported once (qcow2-to-stdout -f qcow2
# disk.qcow2 > full.qcow2), and 1% of the data is changed by qemu-io:
# 320 scattered writes of 64 KiB at random cluster-aligned places in the
# data, 288 with data and 32 with zeros (write -z), 20 MiB in all.  The
# increment is checked once (qemu-img check; qemu-img compare of its chain
# against disk.qcow2), then, page cache warm, timed:
#
#   a) the increment:  PROG -f qcow2 --bitmap=b0 -B full.qcow2 -F qcow2
#                        disk.qcow2 | cat > /dev/null
#   b) a full export:  PROG -f qcow2 disk.qcow2 | cat > /dev/null
#   c) qemu-img convert -O qcow2 -B full.qcow2 -F qcow2 disk.qcow2 out.qcow2
#                      (into a file, deleted before each run)
#
# and the same two exports from an NBD server that is already running, as
# a running VM's is (qemu-nbd -r -B b0 --persistent on a Unix socket, the
# URI nbd+unix:///?socket=...):
#
#   a') the increment: PROG --bitmap=b0 -B full.qcow2 -F qcow2 URI
#   b') a full export: PROG URI
#
# Targets: b/a and b'/a' >= 50x, c/a >= 5x, and the increment's size within 1% of the
# changed data plus its metadata, where
#   data      = the increment's own data clusters (qemu-img map: depth 0,
#               "data": true) times the cluster size,
#   metadata  = the increment's size minus that: header, L1 and L2 tables,
#               refcount table and blocks, padding,
#   changed   = what the writes put there as data: 288 x 64 KiB (the zero
#               writes become zero clusters, which cost no data cluster),
# that is |data - changed| <= 1% of (changed + metadata).  Needs qemu-img,
# qemu-io and qemu-nbd, and a build with --bitmap; without them the section
# says why it is skipped.  About 20 s here (2 CPUs).
#
# Uses from bench.sh: WORK, PROGRAM, RUNS, REF_RUNS, WARMUP, HAVE_QEMU,
# say, note, die, measure, ratio, verdict, fmt, have, MEAN.

INC_SKIP=
INC_DIR=
INC_SERVER_PID=
INC_CHANGED=$((288 * 65536))
INC_WRITES=320

# inc_probe: sets INC_SKIP to why the section cannot run here.
inc_probe() {
    local t
    if ((!HAVE_QEMU)); then
        INC_SKIP="no qemu-img (make deps)"
        return
    fi
    if ((!HAVE_PYTHON)); then
        INC_SKIP="no python3 (make deps)"
        return
    fi
    for t in qemu-io qemu-nbd; do
        if ! command -v "$t" > /dev/null 2>&1; then
            INC_SKIP="no $t (Debian package qemu-utils: make deps)"
            return
        fi
    done
    if ! "$PROGRAM" --help 2>&1 | grep -qE -- '--bitmap([^-a-z]|$)'; then
        INC_SKIP="the tool '$PROGRAM' has no --bitmap option"
    fi
}

# Deletes the section's files; run on exit, ^C included, and after the
# section.  The tool's own qemu-nbd goes with the tool.
inc_cleanup() {
    inc_stop_server
    [[ -n $INC_DIR ]] && rm -rf -- "$INC_DIR"
    return 0
}

# The qemu-nbd that serves disk.qcow2 and its bitmap for a') and b').
inc_start_server() {
    qemu-nbd -r -f qcow2 -B b0 --persistent --shared=8 --fork \
        --pid-file="$INC_DIR/nbd.pid" -k "$INC_DIR/nbd.sock" -- "$INC_DIR/disk.qcow2" ||
        die "qemu-nbd could not serve $INC_DIR/disk.qcow2"
    INC_SERVER_PID=$(cat -- "$INC_DIR/nbd.pid") || die "qemu-nbd wrote no pid file"
}

inc_stop_server() {
    if [[ -n $INC_SERVER_PID ]]; then
        kill "$INC_SERVER_PID" 2> /dev/null || true
        INC_SERVER_PID=
    fi
}

inc_build() {
    local t0=$SECONDS q=$INC_DIR/disk.qcow2 i

    say "== Incremental: building the disk, its full backup, the changes"
    mkdir -p -- "$INC_DIR"
    qemu-img create -q -f qcow2 -- "$q" 4G || die "qemu-img create failed"
    head -c $((64 * 1024 * 1024)) /dev/urandom > "$INC_DIR/piece" ||
        die "cannot write $INC_DIR/piece"
    local -a writes=()
    for ((i = 0; i < 32; i++)); do
        writes+=(-c "write -q -s $INC_DIR/piece $((i * 128))M 64M")
    done
    qemu-io -f qcow2 "${writes[@]}" -- "$q" > /dev/null || die "qemu-io could not write the data"
    rm -f -- "$INC_DIR/piece"
    qemu-img bitmap --add -- "$q" b0 || die "qemu-img bitmap --add failed"
    (cd -- "$INC_DIR" && "$PROGRAM" -f qcow2 disk.qcow2 > full.qcow2) ||
        die "the full backup failed: $PROGRAM -f qcow2 disk.qcow2"
    # 320 distinct clusters inside the 32 pieces, in random order: the
    # first 288 get data, the last 32 zeros.
    mapfile -t writes < <(python3 - "$INC_WRITES" <<'PY'
import random, sys
rnd = random.Random(12)
n = int(sys.argv[1])
clusters = rnd.sample(range(32 * 1024), n)        # 1024 clusters per piece
for k, c in enumerate(clusters):
    offset = (c // 1024) * 128 * 1024 * 1024 + (c % 1024) * 65536
    print("-c")
    print("write -q -z %d 65536" % offset if k >= n - 32 else
          "write -q -P %d %d 65536" % (k % 255 + 1, offset))
PY
    )
    ((${#writes[@]} == 2 * INC_WRITES)) || die "cannot make the list of changes (python3)"
    qemu-io -f qcow2 "${writes[@]}" -- "$q" > /dev/null || die "qemu-io could not change the disk"
    sync -- "$q" "$INC_DIR/full.qcow2"
    cat -- "$q" "$INC_DIR/full.qcow2" > /dev/null
    say "disk.qcow2: 4 GiB virtual, $(du -k -- "$q" | awk '{ printf "%d MiB", $1 / 1024 }')" \
        "allocated, bitmap b0; full.qcow2 (the full backup): $(du -k -- "$INC_DIR/full.qcow2" |
        awk '{ printf "%d MiB", $1 / 1024 }'); changed since: $INC_WRITES clusters of 64 KiB" \
        "(288 data, 32 zeros), in the page cache"
    say "(built in $((SECONDS - t0)) s)"
    say
}

# inc_check: the increment once, kept as inc.qcow2: qemu-img check, and its
# chain compared with the disk; sets INC_SIZE, INC_DATA.
inc_check() {
    local log=$INC_DIR/check.log

    say "== Incremental: the increment, checked"
    if ! (cd -- "$INC_DIR" &&
        "$PROGRAM" -f qcow2 --bitmap=b0 -B full.qcow2 -F qcow2 disk.qcow2 | cat > inc.qcow2); then
        die "the increment failed: $PROGRAM -f qcow2 --bitmap=b0 -B full.qcow2 -F qcow2 disk.qcow2"
    fi
    (cd -- "$INC_DIR" && qemu-img check -f qcow2 inc.qcow2) > "$log" 2>&1 ||
        { cat -- "$log" >&2; die "qemu-img check failed on the increment"; }
    (cd -- "$INC_DIR" && qemu-img compare -f qcow2 -F qcow2 disk.qcow2 inc.qcow2) > "$log" 2>&1 ||
        { cat -- "$log" >&2; die "qemu-img compare: the increment over full.qcow2 differs from disk.qcow2"; }
    INC_SIZE=$(stat -c %s -- "$INC_DIR/inc.qcow2")
    INC_DATA=$( (cd -- "$INC_DIR" && qemu-img map --output=json -f qcow2 inc.qcow2) |
        python3 -c '
import json, sys
print(sum(e["length"] for e in json.load(sys.stdin) if e["depth"] == 0 and e["data"]))') ||
        die "qemu-img map failed on the increment"
    say "qemu-img check: no errors; qemu-img compare of inc.qcow2 (over full.qcow2) with disk.qcow2: identical"
    rm -f -- "$log"
    say
}

inc_time() {
    local qprog qdir quri t0=$SECONDS

    printf -v qprog '%q' "$PROGRAM"
    printf -v qdir '%q' "$INC_DIR"
    say "== Incremental: timing (mean ± standard deviation)"
    measure inc_tool "a) increment: --bitmap=b0 -B full.qcow2" "$RUNS" "$WARMUP" "" \
        "cd $qdir && $qprog -f qcow2 --bitmap=b0 -B full.qcow2 -F qcow2 disk.qcow2 | cat > /dev/null"
    measure inc_full "b) full export: -f qcow2" "$REF_RUNS" "$WARMUP" "" \
        "cd $qdir && $qprog -f qcow2 disk.qcow2 | cat > /dev/null"
    measure inc_qemu "c) qemu-img convert -B full.qcow2" "$REF_RUNS" 0 "rm -f $qdir/out.qcow2" \
        "cd $qdir && qemu-img convert -f qcow2 -O qcow2 -B full.qcow2 -F qcow2 disk.qcow2 out.qcow2"
    INC_QEMU_SIZE=$(stat -c %s -- "$INC_DIR/out.qcow2" 2> /dev/null || echo 0)
    rm -f -- "$INC_DIR/out.qcow2"
    inc_start_server
    printf -v quri '%q' "nbd+unix:///?socket=$INC_DIR/nbd.sock"
    (cd -- "$INC_DIR" && "$PROGRAM" --bitmap=b0 -B full.qcow2 -F qcow2 \
        "nbd+unix:///?socket=$INC_DIR/nbd.sock" | cmp -s - inc.qcow2) ||
        die "the increment through the NBD server differs from the one with -f qcow2"
    rm -f -- "$INC_DIR/inc.qcow2"
    measure inc_tool_uri "a') increment from the server" "$RUNS" "$WARMUP" "" \
        "cd $qdir && $qprog --bitmap=b0 -B full.qcow2 -F qcow2 $quri | cat > /dev/null"
    measure inc_full_uri "b') full export from the server" "$REF_RUNS" "$WARMUP" "" \
        "$qprog $quri | cat > /dev/null"
    inc_stop_server
    say "(timed in $((SECONDS - t0)) s)"
    say
}

inc_results() {
    local r meta off

    say "== Incremental: results"
    say "Mean times; ratios > 1 mean the increment is faster."
    printf '    %-40s %10s\n' "a) increment (--bitmap)" "$(fmt "${MEAN[inc_tool]}")"
    printf '    %-40s %10s\n' "b) full export" "$(fmt "${MEAN[inc_full]}")"
    printf '    %-40s %10s\n' "c) qemu-img convert -B (to a file)" "$(fmt "${MEAN[inc_qemu]}")"
    printf '    %-40s %10s\n' "a') increment from the NBD server" "$(fmt "${MEAN[inc_tool_uri]}")"
    printf '    %-40s %10s\n' "b') full export from the NBD server" "$(fmt "${MEAN[inc_full_uri]}")"
    r=$(ratio "${MEAN[inc_full]}" "${MEAN[inc_tool]}")
    printf '    %-56s target >= %-5s %s\n' "b/a: ${r}x faster than a full export" "50x" "$(verdict "$r" '>=' 50)"
    r=$(ratio "${MEAN[inc_full_uri]}" "${MEAN[inc_tool_uri]}")
    printf '    %-56s target >= %-5s %s\n' "b'/a': ${r}x faster, from a running server" "50x" "$(verdict "$r" '>=' 50)"
    r=$(ratio "${MEAN[inc_qemu]}" "${MEAN[inc_tool]}")
    printf '    %-56s target >= %-5s %s\n' "c/a: ${r}x faster than qemu-img convert -B" "5x" "$(verdict "$r" '>=' 5)"
    meta=$((INC_SIZE - INC_DATA))
    off=$((INC_DATA > INC_CHANGED ? INC_DATA - INC_CHANGED : INC_CHANGED - INC_DATA))
    say "    increment: $INC_SIZE bytes = data clusters $INC_DATA + metadata $meta" \
        "($((meta / 65536)) clusters: header, L1, L2, refcounts)"
    say "    changed data: $INC_CHANGED bytes (288 x 64 KiB; the 32 zeroed clusters cost no data)"
    say "    qemu-img convert -B's output: $INC_QEMU_SIZE bytes"
    r=$(awk -v o="$off" -v t="$((INC_CHANGED + meta))" 'BEGIN { printf "%.3f", 100 * o / t }')
    printf '    %-56s target <= %-5s %s\n' "size: ${r}% off changed data + metadata" "1%" "$(verdict "$r" '<=' 1)"
    say
}

# The whole section: skipped with the reason, or built, checked, timed,
# reported and cleaned up.
inc_section() {
    local inc_start=$SECONDS

    if [[ -n $INC_SKIP ]]; then
        say "== Incremental: skipped: $INC_SKIP"
        say
        return
    fi
    INC_DIR=$WORK/incremental
    inc_build
    inc_check
    inc_time
    inc_results
    inc_cleanup                 # its space and page cache go to what follows
    say "Incremental section: $((SECONDS - inc_start)) s"
    say
}
