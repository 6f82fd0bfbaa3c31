#!/usr/bin/env bash
# Benchmark of qcow2-to-stdout, run by `make bench`.
#
# It builds, in a temporary directory, a 4 GiB sparse raw image with 2 GiB
# allocated (1 GiB of random data, 1 GiB of allocated zeros, in 64 MiB
# pieces) and a 1 TiB sparse file with 1 MiB of data, checks once per
# cluster size that the tool's output is a valid qcow2 image with the same
# contents (and the same bytes as the reference script's), and that the
# tool's output for the qcow2 and the vmdk image of case e is the same bytes
# as for the raw image, then times:
#
#   a) 64 KiB clusters: the tool, the reference, splice-extents (the lower
#      bound: the data extents spliced once into the pipe), qemu-img convert
#   b) 4 KiB clusters:  the tool, the reference, qemu-img convert
#   c) 512 B clusters:  the tool, the reference, qemu-img convert
#   d) the 1 TiB sparse file, 64 KiB clusters: the tool, the reference
#   e) formats through NBD: the 4 GiB image converted by qemu-img to qcow2
#      and to vmdk (monolithicSparse); the tool with -f qcow2 / -f vmdk
#      (which reads through qemu-nbd), qemu-img convert to qcow2, and the
#      reference with -f, which reads through a FUSE export of
#      qemu-storage-daemon: only if that works here (qemu-storage-daemon
#      from Debian's qemu-system-common, /dev/fuse, fusermount3 from fuse3),
#      which a run on a 1 MiB qcow2 with a 30 s timeout checks first
#
# and prints a table with the ratios and the targets.  Every streaming
# command runs as `bash -c 'set -o pipefail; X | cat > /dev/null'`;
# qemu-img cannot write to a pipe, so it converts into a file in the
# temporary directory, deleted before each run.  A missed target does not
# make the benchmark fail; a failed correctness check or command does.
#
# Between the compressed section and cases a to e, the xapi section
# (bench/xapi.sh, about 3 minutes here, most of it XAPI's fork) times the
# command lines XAPI runs its fork of the reference script with, on loop
# devices, against the fork: plain, with qemu-img map/info JSON on fds,
# --diff BASE with and without them; and dd bs=4M of the device.  It needs
# root, losetup and qemu-img, else it says why it is skipped.
#
# After the xapi section, the incremental section (bench/incremental.sh,
# about 20 s) times an increment exported with a dirty bitmap as a
# qcow2 overlay (--bitmap=b0 -B full.qcow2) from a 4 GiB qcow2 with 2 GiB
# of data of which 1% changed, against a full export of it and against
# qemu-img convert -B, and checks the increment's size.  It needs
# qemu-img, qemu-io, qemu-nbd and python3, else it says why it is skipped.
#
# After the incremental section, the nbd section (bench/nbd.sh, about
# 3.5 minutes here) serves a 4 GiB sparse raw image with 2 GiB of random
# data with nbdkit's file plugin on a Unix socket, on a second one behind
# the delay filter (rdelay=2ms) and on TCP loopback, checks the tool's
# output once (its size is what --measure says; the qcow2 magic first),
# and times the tool (piped into cat; by default, and reading again with
# --spool-memory=0 --reread) against nbdcopy URI null:, which reads the
# data once, and nbdcopy URI - | cat; the tool's RSS once: target (issue
# 21) the default within 2x of nbdcopy URI null: on the Unix sockets, no
# target on TCP.  It needs nbdkit and nbdcopy (Debian package
# libnbd-bin: make bench-deps), else it says why it is skipped.
#
# After the nbd section, the import section (bench/import.sh, about
# 2.5 minutes here) times qcow2-from-stdin (cat IMAGE | qcow2-from-stdin
# out.raw) against qemu-img convert -O raw on a 4 GiB disk with 2 GiB of
# data (half random, half text), as qemu-img convert's qcow2, as
# qcow2-to-stdout's stream and zstd-compressed by qemu-img convert -c;
# targets: at least as fast as qemu-img uncompressed, 1.5x with zstd,
# RSS < 64 MiB.  It needs qemu-img and qcow2-from-stdin (make), else it
# says why it is skipped; Q2S_IMPORTER, BENCH_IMPORT_RUNS and
# BENCH_IMPORT_WB_RUNS are described in bench/import.sh.
#
# Before all that, the compressed section (about 3 minutes on 2 cores)
# builds a realistic image: an 8 GiB ext4 filesystem filled by
# `mke2fs -d` from a directory tree (/usr/share: about 1 GiB of data),
# reads its data once into the page cache, then times, each writing a
# file in the temporary directory (deleted before each run, so that its
# size can be reported and the tool's outputs checked):
#
#   qcow2-to-stdout --compress=zstd  vs  qemu-img convert -c -O qcow2
#                                        -o compression_type=zstd
#   qcow2-to-stdout --compress=zlib  vs  qemu-img convert -c -O qcow2
#   the reference | zstd -T0, the reference | gzip (its uncompressed
#   stream compressed afterwards, for comparison; no target)
#
# checks with qemu-img check, qemu-img info and qemu-img compare that each
# of the tool's outputs is a valid qcow2 image of the compression type
# asked for with the same contents as the filesystem, and prints mean
# times, sizes and the targets: at least 1.5x faster than qemu-img and
# no larger than its output, for zstd and for zlib.  It needs mke2fs
# (e2fsprogs); the reference | zstd row needs zstd (`make bench-deps`).
#
# Environment:
#   Q2S_PROGRAM      the tool (default: <repo>/build/qcow2-to-stdout)
#   Q2S_BUILD        build directory; splice-extents is compiled into
#                    $Q2S_BUILD/bench/ (default: build; relative to <repo>)
#   Q2S_REFERENCE    the reference script
#                    (default: <repo>/../shared/reference/qcow2-to-stdout.py)
#   BENCH_RUNS       timed runs of the fast commands: tool, splice (default 5)
#   BENCH_REF_RUNS   timed runs of the reference and of qemu-img, also in
#                    case e (the reference through FUSE) (default 3)
#   BENCH_SLOW_RUNS  timed runs of the reference and of qemu-img at 512 B
#                    clusters, and of the reference | gzip in the
#                    compressed section, tens of seconds each here (default 1)
#   BENCH_WARMUP     warm-up runs before each timing, except for the slow
#                    ones above and the compressed section, which have
#                    none (default 1)
#   BENCH_COMPRESS_RUNS       compressed section: timed runs of the tool with
#                             zstd, qemu-img with zstd, the reference | zstd
#                             (default 3)
#   BENCH_COMPRESS_SLOW_RUNS  compressed section: timed runs of the tool and
#                             of qemu-img with zlib, 15 to 25 s each here
#                             (default 2)
#   Q2S_BENCH_BASELINE  another build of the tool (an older commit, say),
#                    timed beside it in cases a to e: before and after in
#                    one run, on one machine (default: none)
#   Q2S_RANGES       examples/qcow2-ranges built against the library
#                    (make bench builds it): in case a, the whole image read
#                    with q2s_pread() in 1 MiB ranges, last range first,
#                    against the stream (target: at most 1.2x its time)
#   Q2S_XAPI_REFERENCE  XAPI's fork of the reference script (default:
#                    <repo>/../shared/reference/qcow2-to-stdout-xapi.py)
#   BENCH_NBD_RUNS   nbd section: timed runs of the tool and of nbdcopy
#                    in each case (default 3)
#   Q2S_BENCH_ONLY   run only one section: compress (the compressed
#                    section), xapi (the xapi section), incremental (the
#                    incremental section), nbd (the nbd section), import
#                    (the import section) or uncompressed (cases a to e);
#                    empty or all: all six (default)
#   Q2S_BENCH_TREE   the directory tree copied into the ext4 filesystem of
#                    the compressed section (default: /usr/share)
#   Q2S_BENCH_FS_SIZE  the size of that filesystem (default: 8G)
#   CC               C compiler for splice-extents (default: cc)
#   TMPDIR           where the temporary directory goes (default: /tmp)

set -euo pipefail

bench_start=$SECONDS

REPO=$(cd "$(dirname "$0")/.." && pwd)
PROGRAM=${Q2S_PROGRAM:-$REPO/build/qcow2-to-stdout}
BUILD_DIR=${Q2S_BUILD:-build}
case $BUILD_DIR in
    /*) ;;
    *) BUILD_DIR=$REPO/$BUILD_DIR ;;
esac
REFERENCE=${Q2S_REFERENCE:-$REPO/../shared/reference/qcow2-to-stdout.py}
RUNS=${BENCH_RUNS:-5}
REF_RUNS=${BENCH_REF_RUNS:-3}
SLOW_RUNS=${BENCH_SLOW_RUNS:-1}
WARMUP=${BENCH_WARMUP:-1}
COMPRESS_RUNS=${BENCH_COMPRESS_RUNS:-3}
COMPRESS_SLOW_RUNS=${BENCH_COMPRESS_SLOW_RUNS:-2}
NBD_RUNS=${BENCH_NBD_RUNS:-3}
TREE=${Q2S_BENCH_TREE:-/usr/share}
FS_SIZE=${Q2S_BENCH_FS_SIZE:-8G}

say() { printf '%s\n' "$*"; }
note() { printf 'note: %s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

for var in RUNS REF_RUNS SLOW_RUNS COMPRESS_RUNS COMPRESS_SLOW_RUNS NBD_RUNS; do
    [[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$var must be a positive integer, not '${!var}'"
done
[[ $WARMUP =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a non-negative integer, not '$WARMUP'"

RUN_UNCOMPRESSED=1
RUN_COMPRESS=1
RUN_XAPI=1
RUN_INCREMENTAL=1
RUN_NBD=1
RUN_IMPORT=1
case ${Q2S_BENCH_ONLY:-} in
    '' | all) ;;
    compress) RUN_UNCOMPRESSED=0 RUN_XAPI=0 RUN_INCREMENTAL=0 RUN_NBD=0 RUN_IMPORT=0 ;;
    uncompressed) RUN_COMPRESS=0 RUN_XAPI=0 RUN_INCREMENTAL=0 RUN_NBD=0 RUN_IMPORT=0 ;;
    xapi) RUN_COMPRESS=0 RUN_UNCOMPRESSED=0 RUN_INCREMENTAL=0 RUN_NBD=0 RUN_IMPORT=0 ;;
    incremental) RUN_COMPRESS=0 RUN_UNCOMPRESSED=0 RUN_XAPI=0 RUN_NBD=0 RUN_IMPORT=0 ;;
    nbd) RUN_COMPRESS=0 RUN_UNCOMPRESSED=0 RUN_XAPI=0 RUN_INCREMENTAL=0 RUN_IMPORT=0 ;;
    import) RUN_COMPRESS=0 RUN_UNCOMPRESSED=0 RUN_XAPI=0 RUN_INCREMENTAL=0 RUN_NBD=0 ;;
    *) die "Q2S_BENCH_ONLY must be compress, xapi, incremental, nbd, import, uncompressed or all, not '$Q2S_BENCH_ONLY'" ;;
esac
# shellcheck source=bench/xapi.sh
. "$REPO/bench/xapi.sh"
# shellcheck source=bench/incremental.sh
. "$REPO/bench/incremental.sh"
# shellcheck source=bench/nbd.sh
. "$REPO/bench/nbd.sh"
# shellcheck source=bench/import.sh
. "$REPO/bench/import.sh"

# The compressed section deletes its filesystem image before cases a to e
# build theirs: the larger of the two is what a whole run needs.
NEEDED_KIB=$((3 * 1024 * 1024))     # compressed: filesystem ~1 GiB + one output
                                    # at a time (< 1 GiB) + slack
if ((RUN_UNCOMPRESSED)); then
    NEEDED_KIB=$((7 * 1024 * 1024)) # image 2 GiB + its qcow2 and vmdk 2 GiB + outputs
                                    # up to ~2 GiB + slack
elif ((RUN_INCREMENTAL)); then
    NEEDED_KIB=$((7 * 1024 * 1024)) # incremental: disk 2 GiB + full backup 2 GiB
                                    # + qemu-img's output ~2 GiB + slack
elif ((RUN_NBD)); then
    NEEDED_KIB=$((3 * 1024 * 1024)) # nbd: image 2 GiB, no output kept + slack
elif ((RUN_XAPI)); then
    NEEDED_KIB=$((2 * 1024 * 1024)) # xapi: two raw files and their qcow2 twins,
                                    # ~300 MiB each, no output kept + slack
fi
if ((RUN_IMPORT && NEEDED_KIB < 11 * 1024 * 1024)); then
    NEEDED_KIB=$((11 * 1024 * 1024)) # import: disk 2 GiB + its three images 5.1 GiB
                                     # + out.raw 2 GiB + slack
fi

[[ -x $PROGRAM ]] || die "the tool '$PROGRAM' is missing or not executable (run make first)"

# --- Contenders that may be absent -------------------------------------------

HAVE_PYTHON=0
command -v python3 > /dev/null 2>&1 && HAVE_PYTHON=1
HAVE_REF=0
if [[ ! -f $REFERENCE ]]; then
    note "reference script '$REFERENCE' not found: skipping the comparisons with it"
elif ((!HAVE_PYTHON)); then
    note "python3 not found: skipping the reference script"
else
    HAVE_REF=1
    REFERENCE=$(cd "$(dirname "$REFERENCE")" && pwd)/$(basename "$REFERENCE")
fi
HAVE_QEMU=0
if command -v qemu-img > /dev/null 2>&1; then
    HAVE_QEMU=1
else
    note "qemu-img not found: skipping the qemu-img column and the qemu-img checks"
fi
# Case e: qemu-img makes the images, the tool starts qemu-nbd.
HAVE_FORMATS=0
if ((!RUN_UNCOMPRESSED)); then
    :
elif ((!HAVE_QEMU)); then
    note "qemu-img not found: skipping case e (formats through NBD)"
elif ! command -v qemu-nbd > /dev/null 2>&1; then
    note "qemu-nbd not found: skipping case e (formats through NBD)"
else
    HAVE_FORMATS=1
fi
if ((RUN_XAPI)); then xapi_probe; fi
if ((RUN_INCREMENTAL)); then inc_probe; fi
if ((RUN_NBD)); then nbd_probe; fi
if ((RUN_IMPORT)); then import_probe; fi
HAVE_HYPERFINE=0
if command -v hyperfine > /dev/null 2>&1; then
    HAVE_HYPERFINE=1
else
    note "hyperfine not found: timing with a bash loop and date +%s.%N instead"
fi
# The compressed section: mke2fs (often in /usr/sbin, which a user's PATH
# may lack) fills the filesystem; zstd and gzip compress the reference's
# stream.
COMPRESS_SKIP=
MKE2FS=
HAVE_ZSTD=0
HAVE_GZIP=0
if ((RUN_COMPRESS)); then
    tool_help=$("$PROGRAM" --help 2>&1 || true)
    for MKE2FS in "$(command -v mke2fs 2> /dev/null || true)" /usr/sbin/mke2fs /sbin/mke2fs ''; do
        [[ -n $MKE2FS && -x $MKE2FS ]] && break
    done
    if [[ $tool_help != *--compress* ]]; then
        COMPRESS_SKIP="the tool '$PROGRAM' has no --compress option"
    elif [[ -z $MKE2FS ]]; then
        COMPRESS_SKIP="mke2fs not found (Debian package e2fsprogs: make bench-deps)"
    fi
    [[ -d $TREE ]] || die "Q2S_BENCH_TREE: '$TREE' is not a directory"
    if [[ -n $COMPRESS_SKIP ]]; then
        note "skipping the compressed section: $COMPRESS_SKIP"
    else
        if command -v zstd > /dev/null 2>&1; then
            HAVE_ZSTD=1
        elif ((HAVE_REF)); then
            note "zstd not found (Debian package zstd: make bench-deps): skipping reference | zstd"
        fi
        if command -v gzip > /dev/null 2>&1; then
            HAVE_GZIP=1
        elif ((HAVE_REF)); then
            note "gzip not found: skipping reference | gzip"
        fi
    fi
fi

# --- splice-extents -----------------------------------------------------------

SPLICE_SRC=$REPO/bench/splice-extents.c
SPLICE=$BUILD_DIR/bench/splice-extents
HAVE_SPLICE=0
if ((!RUN_UNCOMPRESSED)); then
    :   # only cases a to e use it
elif [[ -x $SPLICE && ! $SPLICE_SRC -nt $SPLICE ]]; then
    HAVE_SPLICE=1
elif command -v "${CC:-cc}" > /dev/null 2>&1; then
    mkdir -p -- "$BUILD_DIR/bench"
    "${CC:-cc}" -std=c11 -O2 -Wall -Wextra -Werror -o "$SPLICE" "$SPLICE_SRC" ||
        die "cannot compile $SPLICE_SRC"
    HAVE_SPLICE=1
else
    note "no C compiler '${CC:-cc}': skipping splice-extents, the lower bound"
fi

BASELINE=${Q2S_BENCH_BASELINE:-}
HAVE_BASE=0
if [[ -n $BASELINE ]]; then
    [[ -x $BASELINE ]] || die "Q2S_BENCH_BASELINE is not an executable: $BASELINE"
    HAVE_BASE=1
fi
RANGES=${Q2S_RANGES:-}
HAVE_RANGES=0
if [[ -n $RANGES && -x $RANGES ]]; then
    HAVE_RANGES=1
elif ((RUN_UNCOMPRESSED)); then
    note "no examples/qcow2-ranges (Q2S_RANGES): skipping the random access row"
fi

# --- Temporary directory --------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/q2s-bench.XXXXXX")
# The reference's temporary directories (with -f: a pid file and the FUSE
# mount point) go into $FUSE_TMP.  A reference killed by the probe's
# timeout, or by ^C, leaves its qemu-storage-daemon running and the mount
# in place: stop the daemon by its pid file, then unmount what is left.
FUSE_TMP=$WORK/fuse-tmp
fuse_cleanup() {
    local dir pid i
    for dir in "$FUSE_TMP"/*/; do
        [[ -d $dir ]] || continue
        if [[ -f $dir/pid ]] && pid=$(< "$dir/pid") && [[ $pid =~ ^[0-9]+$ ]]; then
            kill -TERM "$pid" 2> /dev/null || true
            for ((i = 0; i < 50; i++)); do
                [[ -e $dir/pid ]] || break
                sleep 0.1
            done
        fi
        if [[ -e $dir/raw ]]; then
            fusermount3 -u -z -- "$dir/raw" 2> /dev/null || umount -l -- "$dir/raw" 2> /dev/null || true
        fi
        rm -rf -- "$dir" 2> /dev/null || true
    done
}
cleanup() {
    xapi_cleanup
    inc_cleanup
    nbd_cleanup
    import_cleanup
    fuse_cleanup
    rm -rf -- "$WORK"
}
trap cleanup EXIT
WORK=$(cd -- "$WORK" && pwd)       # absolute, even with a relative TMPDIR
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

avail_kib=$(df -Pk -- "$WORK" | awk 'NR == 2 { print $4 }')
if ((avail_kib < NEEDED_KIB)); then
    die "not enough free space in '$WORK': $((avail_kib / 1024)) MiB free," \
        "$((NEEDED_KIB / 1024)) MiB needed (images + outputs); set TMPDIR elsewhere"
fi

# Names with spaces, on purpose.
IMG="$WORK/image 4G.raw"
SPARSE="$WORK/sparse 1T.raw"
OUT="$WORK/qemu-img out.qcow2"
QCOW="$WORK/image 4G.qcow2"
VMDK="$WORK/image 4G.vmdk"
CHECK="$WORK/check out.qcow2"
printf -v qPROGRAM '%q' "$PROGRAM"
printf -v qREFERENCE '%q' "$REFERENCE"
printf -v qSPLICE '%q' "$SPLICE"
printf -v qBASELINE '%q' "$BASELINE"
printf -v qRANGES '%q' "$RANGES"
printf -v qIMG '%q' "$IMG"
printf -v qSPARSE '%q' "$SPARSE"
printf -v qOUT '%q' "$OUT"
printf -v qQCOW '%q' "$QCOW"
printf -v qVMDK '%q' "$VMDK"
printf -v qFUSE_TMP '%q' "$FUSE_TMP"
# The compressed section's filesystem image and its outputs.
FS_IMG="$WORK/fs ext4.img"
printf -v qFS_IMG '%q' "$FS_IMG"

# --- Machine ----------------------------------------------------------------------

cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2> /dev/null || true)
if [[ -z $cpu ]] && command -v lscpu > /dev/null 2>&1; then
    cpu=$(lscpu | awk -F': *' '/^Model name/ { print $2; exit }')
fi
mem=$(free -h 2> /dev/null | awk '/^Mem:/ { print $2 }' || true)
fstype=$(stat -f -c %T -- "$WORK" 2> /dev/null || echo '?')
say "== Machine"
say "CPUs:        $(nproc)"
say "CPU model:   ${cpu:-unknown}"
say "Memory:      ${mem:-unknown}"
say "Kernel:      $(uname -r)"
say "Temp dir:    $WORK ($fstype, $((avail_kib / 1024 / 1024)) GiB free)"
say "Tool:        $PROGRAM ($("$PROGRAM" --version 2> /dev/null | head -n 1 || echo '?'))"
if ((HAVE_REF)); then say "Reference:   $REFERENCE ($(python3 --version 2>&1))"; fi
if ((HAVE_QEMU)); then say "qemu-img:    $(qemu-img --version | head -n 1)"; fi
if ((RUN_XAPI && XAPI_HAVE_FORK)); then say "XAPI's fork: $XAPI_REFERENCE"; fi
if command -v qemu-storage-daemon > /dev/null 2>&1; then
    say "qemu-storage-daemon: $(qemu-storage-daemon --version | head -n 1)"
fi
if ((RUN_COMPRESS)) && [[ -z $COMPRESS_SKIP ]]; then
    say "mke2fs:      $MKE2FS ($("$MKE2FS" -V 2>&1 | head -n 1))"
    if ((HAVE_ZSTD)); then say "zstd:        $(zstd --version 2>&1 | head -n 1)"; fi
    if ((HAVE_GZIP)); then say "gzip:        $(gzip --version 2>&1 | head -n 1)"; fi
fi
if ((RUN_NBD)) && [[ -z $NBD_SKIP ]]; then
    say "nbdkit:      $(nbdkit --version 2>&1 | head -n 1)"
    say "nbdcopy:     $(nbdcopy --version 2>&1 | head -n 1)"
fi
if ((HAVE_HYPERFINE)); then say "Timer:       $(hyperfine --version)"; else say "Timer:       bash loop (times include starting bash, a few ms)"; fi
if ((RUN_UNCOMPRESSED)); then
    say "Runs:        $RUNS (tool, splice), $REF_RUNS (reference, qemu-img)," \
        "$SLOW_RUNS (reference, qemu-img at 512 B); warm-up $WARMUP"
fi
if ((RUN_NBD)) && [[ -z $NBD_SKIP ]]; then
    say "NBD:         $NBD_RUNS (tool, nbdcopy); warm-up $WARMUP"
fi
if ((RUN_COMPRESS)) && [[ -z $COMPRESS_SKIP ]]; then
    say "Compressed:  $COMPRESS_RUNS (tool and qemu-img with zstd, reference | zstd)," \
        "$COMPRESS_SLOW_RUNS (tool and qemu-img with zlib), $SLOW_RUNS (reference | gzip);" \
        "no warm-up; tool threads (-j default): $(nproc)"
fi
say "Load average: $(cut -d ' ' -f 1-3 /proc/loadavg 2> /dev/null || echo '?') (1, 5, 15 min)"
say

# --- Timing and results helpers -----------------------------------------------------

declare -A MEAN=() SD=() NRUNS=()

# measure KEY LABEL RUNS WARMUP PREPARE COMMAND: times `bash -c COMMAND`
# (with pipefail), running PREPARE (may be empty) before each run.
measure() {
    local key=$1 label=$2 runs=$3 warmup=$4 prepare=$5 cmd="set -o pipefail; $6"
    local json=$WORK/$key.json log=$WORK/$key.log stats

    printf '%-44s' "$label"
    if ((HAVE_HYPERFINE)); then
        local -a args=(--shell=bash --style none --warmup "$warmup" --runs "$runs"
            --export-json "$json")
        if [[ -n $prepare ]]; then args+=(--prepare "$prepare"); fi
        if ! hyperfine "${args[@]}" -- "$cmd" > "$log" 2>&1; then
            say
            cat -- "$log" >&2
            die "$label: the command failed: $cmd"
        fi
        if ((HAVE_PYTHON)); then
            stats=$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(r["mean"], r["stddev"] or 0, len(r["times"]))' "$json")
        else
            stats=$(tr -d ' \n' < "$json" | sed -E \
                's/.*"mean":([^,]*),"stddev":([^,]*),.*/\1 \2/; s/null/0/')
            stats="$stats $runs"
        fi
    else
        local i t_start t_end
        local -a times=()
        for ((i = 0; i < warmup + runs; i++)); do
            if [[ -n $prepare ]]; then bash -c "$prepare"; fi
            t_start=$(date +%s.%N)
            if ! bash -c "$cmd"; then
                say
                die "$label: the command failed: $cmd"
            fi
            t_end=$(date +%s.%N)
            if ((i >= warmup)); then
                times+=("$(awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.6f", b - a }')")
            fi
        done
        stats=$(printf '%s\n' "${times[@]}" | awk '
            { t[NR] = $1; s += $1 }
            END {
                m = s / NR
                for (i = 1; i <= NR; i++) v += (t[i] - m) ^ 2
                printf "%.6f %.6f %d\n", m, (NR > 1 ? sqrt(v / (NR - 1)) : 0), NR
            }')
    fi
    read -r "MEAN[$key]" "SD[$key]" "NRUNS[$key]" <<< "$stats"
    awk -v m="${MEAN[$key]}" -v s="${SD[$key]}" -v n="${NRUNS[$key]}" \
        'BEGIN { printf "%9.3f s ± %6.3f s  (%d run%s)\n", m, s, n, (n > 1 ? "s" : "") }'
    rm -f -- "$json" "$log"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# verdict VALUE OP TARGET: "met" or "MISSED"
verdict() {
    awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN {
        ok = (op == ">=") ? (v >= t) : (v <= t)
        print (ok ? "met" : "MISSED")
    }'
}
fmt() { awk -v v="$1" 'BEGIN { printf "%.3f s", v }'; }
have() { [[ -n ${MEAN[$1]:-} ]]; }
# base_line PREFIX: the tool against the baseline build, if timed.
base_line() {
    local p=$1 r
    if have "${p}_base"; then
        r=$(ratio "${MEAN[${p}_tool]}" "${MEAN[${p}_base]}")
        printf '    %-56s (same within noise expected)\n' "tool/baseline: ${r}x the baseline's time"
    fi
}

# --- Compressed clusters ------------------------------------------------------------

declare -A SIZE=()
QEMU_ZSTD_SKIP="no qemu-img"
CHECK_VERDICTS=

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

# check_compressed LABEL TYPE FILE: the tool's output FILE must pass qemu-img
# check, have the compression type TYPE and the same contents as the
# filesystem image for qemu-img compare; sets CHECK_VERDICTS.
check_compressed() {
    local label=$1 type=$2 file=$3 log=$WORK/check.log pct got

    if ((!HAVE_QEMU)); then
        CHECK_VERDICTS="not checked: no qemu-img"
        return
    fi
    if ! qemu-img check -f qcow2 -- "$file" > "$log" 2>&1; then
        cat -- "$log" >&2
        die "$label: qemu-img check failed on the tool's output"
    fi
    pct=$(grep -o '[0-9.]*% compressed clusters' "$log" || true)
    if ! got=$(qemu-img info -f qcow2 --output=json -- "$file" 2> "$log" |
        sed -n 's/.*"compression-type": *"\([a-z0-9]*\)".*/\1/p'); then
        cat -- "$log" >&2
        die "$label: qemu-img info failed on the tool's output"
    fi
    if [[ $got != "$type" ]]; then
        die "$label: the tool's output has the compression type '${got:-none}', not $type"
    fi
    if ! qemu-img compare -f raw -F qcow2 -- "$FS_IMG" "$file" > "$log" 2>&1; then
        cat -- "$log" >&2
        die "$label: qemu-img compare: the tool's output differs from the filesystem image"
    fi
    CHECK_VERDICTS="qemu-img check ok (${pct:-no compressed clusters}), compression type $type,"
    CHECK_VERDICTS+=" qemu-img compare identical"
    rm -f -- "$log"
}

# time_compressed KEY LABEL RUNS CHECK_TYPE COMMAND: times COMMAND followed by
# the name of its output file, $WORK/out.KEY, deleted before each run; then
# keeps the size of the last run's output in SIZE[KEY], checks it if
# CHECK_TYPE (zstd or zlib) is given, and deletes it.
time_compressed() {
    local key=$1 label=$2 runs=$3 check_type=$4 out=$WORK/out.$1 qout

    printf -v qout '%q' "$out"
    measure "$key" "$label" "$runs" 0 "rm -f -- $qout" "$5 $qout"
    [[ -f $out ]] || die "$label: no output file '$out'"
    SIZE[$key]=$(stat -c %s -- "$out")
    CHECK_VERDICTS=
    if [[ -n $check_type ]]; then check_compressed "${label#  }" "$check_type" "$out"; fi
    printf '%-44s%s\n' "" "${SIZE[$key]} bytes ($(mib "${SIZE[$key]}") MiB)${CHECK_VERDICTS:+; $CHECK_VERDICTS}"
    rm -f -- "$out"
}

compress_build() {
    local log=$WORK/mke2fs.log alloc_kib tree_kib t_start t_end cached

    say "== Compressed clusters: the filesystem image"
    t0=$SECONDS
    truncate -s "$FS_SIZE" -- "$FS_IMG" ||
        die "cannot make a $FS_SIZE file in '$WORK' (Q2S_BENCH_FS_SIZE)"
    if ! "$MKE2FS" -q -t ext4 -d "$TREE" -- "$FS_IMG" < /dev/null > "$log" 2>&1; then
        cat -- "$log" >&2
        die "mke2fs could not fill a $FS_SIZE ext4 filesystem from '$TREE'" \
            "(too much data for it? unreadable files? see Q2S_BENCH_TREE and Q2S_BENCH_FS_SIZE)"
    fi
    rm -f -- "$log"
    # Write it back now rather than while the timings run.
    sync -- "$FS_IMG"
    alloc_kib=$(du -k -- "$FS_IMG" | awk '{ print $1 }')
    tree_kib=$(du -sk -- "$TREE" 2> /dev/null | awk '{ print $1 }' || true)
    say "$FS_IMG: $FS_SIZE ext4 filled by mke2fs -d from $TREE" \
        "(${tree_kib:-?} KiB of files by du): $((alloc_kib / 1024)) MiB allocated" \
        "(built in $((SECONDS - t0)) s)"
    if ((alloc_kib < 64 * 1024)); then
        note "less than 64 MiB of data: the numbers will not mean much (Q2S_BENCH_TREE)"
    fi
    # Cache its data: the tool reads only the data extents; cat would also
    # read the holes, 7 GiB of zeros that take 17 s here and are never read
    # by the commands timed.
    t_start=$(date +%s.%N)
    "$PROGRAM" "$FS_IMG" | cat > /dev/null || die "the tool failed on the filesystem image"
    t_end=$(date +%s.%N)
    cached=
    if command -v fincore > /dev/null 2>&1; then
        cached=$(fincore -b -n -o RES -- "$FS_IMG" 2> /dev/null | awk '{ printf "%d", $1 / 1048576 }' || true)
    fi
    say "read once by the tool (uncompressed, to /dev/null) in" \
        "$(awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.2f", b - a }') s" \
        "to warm the page cache${cached:+: $cached MiB of it cached}"
    if ((HAVE_QEMU)); then
        if qemu-img create -q -f qcow2 -o compression_type=zstd -- "$WORK/probe.qcow2" 1M \
            > "$log" 2>&1; then
            QEMU_ZSTD_SKIP=
        else
            QEMU_ZSTD_SKIP="this qemu-img cannot make zstd-compressed images:"
            QEMU_ZSTD_SKIP+=" $(head -c 200 -- "$log" | tr '\n' ' ')"
        fi
        rm -f -- "$WORK/probe.qcow2" "$log"
    fi
    say
}

compress_time() {
    local ref_skip=

    say "== Compressed clusters: timing (mean ± standard deviation), sizes, checks"
    t0=$SECONDS
    if ((!HAVE_REF)); then ref_skip="no reference script or no python3"; fi
    say "zstd"
    time_compressed zstd_tool "  qcow2-to-stdout --compress=zstd" "$COMPRESS_RUNS" zstd \
        "$qPROGRAM --compress=zstd $qFS_IMG >"
    if ((HAVE_BASE)); then
        time_compressed zstd_base "  baseline --compress=zstd" "$COMPRESS_RUNS" zstd \
            "$qBASELINE --compress=zstd $qFS_IMG >"
    fi
    if [[ -z $QEMU_ZSTD_SKIP ]]; then
        time_compressed zstd_qemu "  qemu-img convert -c, zstd" "$COMPRESS_RUNS" "" \
            "qemu-img convert -f raw -c -O qcow2 -o compression_type=zstd $qFS_IMG"
    else
        printf '%-44s%s\n' "  qemu-img convert -c, zstd" "skipped: $QEMU_ZSTD_SKIP"
    fi
    if [[ -n $ref_skip ]]; then
        printf '%-44s%s\n' "  reference | zstd -T0" "skipped: $ref_skip"
    elif ((!HAVE_ZSTD)); then
        printf '%-44s%s\n' "  reference | zstd -T0" "skipped: zstd not found (Debian package zstd)"
    else
        time_compressed zstd_ref "  reference | zstd -T0" "$COMPRESS_RUNS" "" \
            "python3 $qREFERENCE $qFS_IMG | zstd -T0 -q >"
    fi
    say "zlib"
    time_compressed zlib_tool "  qcow2-to-stdout --compress=zlib" "$COMPRESS_SLOW_RUNS" zlib \
        "$qPROGRAM --compress=zlib $qFS_IMG >"
    if ((HAVE_BASE)); then
        time_compressed zlib_base "  baseline --compress=zlib" "$COMPRESS_SLOW_RUNS" zlib \
            "$qBASELINE --compress=zlib $qFS_IMG >"
    fi
    if ((HAVE_QEMU)); then
        time_compressed zlib_qemu "  qemu-img convert -c (zlib)" "$COMPRESS_SLOW_RUNS" "" \
            "qemu-img convert -f raw -c -O qcow2 $qFS_IMG"
    else
        printf '%-44s%s\n' "  qemu-img convert -c (zlib)" "skipped: no qemu-img"
    fi
    if [[ -n $ref_skip ]]; then
        printf '%-44s%s\n' "  reference | gzip" "skipped: $ref_skip"
    elif ((!HAVE_GZIP)); then
        printf '%-44s%s\n' "  reference | gzip" "skipped: gzip not found"
    else
        time_compressed zlib_ref "  reference | gzip" "$SLOW_RUNS" "" \
            "python3 $qREFERENCE $qFS_IMG | gzip >"
    fi
    say "(timed in $((SECONDS - t0)) s)"
    say
}

# crow KEY LABEL: one row of the compressed results, if KEY was measured.
crow() {
    if have "$1"; then
        printf '    %-36s %10s %12s %9s\n' "$2" "$(fmt "${MEAN[$1]}")" "${SIZE[$1]}" "$(mib "${SIZE[$1]}")"
    fi
}

compress_results() {
    local type ref_label r v

    say "== Compressed clusters: results"
    say "Mean times and output sizes; time ratios > 1 mean the tool is faster."
    say "Load average after the timings: $(cut -d ' ' -f 1-3 /proc/loadavg 2> /dev/null || echo '?')"
    say
    printf '    %-36s %10s %12s %9s\n' "" "mean time" "size, bytes" "MiB"
    for type in zstd zlib; do
        if [[ $type == zstd ]]; then ref_label="reference | zstd -T0"; else ref_label="reference | gzip"; fi
        say "  $type"
        crow "${type}_tool" "qcow2-to-stdout --compress=$type"
        crow "${type}_qemu" "qemu-img convert -c ($type)"
        crow "${type}_ref" "$ref_label"
        crow "${type}_base" "baseline --compress=$type"
        base_line "$type"
        if have "${type}_qemu"; then
            r=$(ratio "${MEAN[${type}_qemu]}" "${MEAN[${type}_tool]}")
            printf '    %-56s target >= %-5s %s\n' "qemu-img/tool time: ${r}x faster than qemu-img" \
                "1.5x" "$(verdict "$r" '>=' 1.5)"
            r=$(awk -v a="${SIZE[${type}_tool]}" -v b="${SIZE[${type}_qemu]}" \
                'BEGIN { printf "%.3f", a / b }')
            v=MISSED
            if ((SIZE[${type}_tool] <= SIZE[${type}_qemu])); then v=met; fi
            printf '    %-56s target <= %-5s %s\n' "tool/qemu-img size: ${r}" "1.00" "$v"
        else
            printf '    %-56s target >= %-5s %s\n' "qemu-img/tool time: not measured" "1.5x" "n/a"
            printf '    %-56s target <= %-5s %s\n' "tool/qemu-img size: not measured" "1.00" "n/a"
        fi
        if have "${type}_ref"; then
            r=$(ratio "${MEAN[${type}_ref]}" "${MEAN[${type}_tool]}")
            printf '    %-56s (no target)\n' "($ref_label)/tool time: ${r}x"
            r=$(awk -v a="${SIZE[${type}_tool]}" -v b="${SIZE[${type}_ref]}" \
                'BEGIN { printf "%.3f", a / b }')
            printf '    %-56s (no target)\n' "tool/($ref_label) size: ${r}"
        fi
    done
    say
    say "The tool and qemu-img write a file each; the reference's stream is compressed"
    say "as a whole by zstd or gzip into a file, which is not a qcow2 image."
    say "Compressed section: $((SECONDS - compress_start)) s"
    say
}

if ((RUN_COMPRESS)) && [[ -z $COMPRESS_SKIP ]]; then
    compress_start=$SECONDS
    compress_build
    compress_time
    compress_results
    rm -f -- "$FS_IMG"          # its space and page cache go to cases a to e
elif ((RUN_COMPRESS)); then
    say "== Compressed clusters: skipped: $COMPRESS_SKIP"
    say
fi
if ((RUN_XAPI)); then xapi_section; fi
if ((RUN_INCREMENTAL)); then inc_section; fi
if ((RUN_NBD)); then nbd_section; fi
if ((RUN_IMPORT)); then import_section; fi
if ((!RUN_UNCOMPRESSED)); then
    say "Total bench time: $((SECONDS - bench_start)) s"
    if ((XAPI_MISMATCHES)); then exit 1; fi
    exit 0
fi

# --- Images -----------------------------------------------------------------------

# 64 pieces of 64 MiB; per group of 8: data, zeros, hole, hole, zeros, hole,
# data, hole.  So data next to zeros in one extent, zeros alone and data
# alone, and 16 pieces of each: 1 GiB of data, 1 GiB of zeros, 2 GiB holes.
say "== Building the images"
t0=$SECONDS
truncate -s 4G -- "$IMG"
for ((i = 0; i < 64; i++)); do
    case $((i % 8)) in
        0 | 6) src=/dev/urandom ;;
        1 | 4) src=/dev/zero ;;
        *) continue ;;
    esac
    dd if="$src" of="$IMG" bs=1M count=64 seek=$((i * 64)) conv=notrunc \
        iflag=fullblock status=none
done
# Write it back now rather than while the timings run, then cache it all.
sync -- "$IMG"
cat -- "$IMG" > /dev/null
alloc_kib=$(du -k -- "$IMG" | awk '{ print $1 }')
say "$IMG: 4 GiB virtual, $((alloc_kib / 1024)) MiB allocated" \
    "(1 GiB random data + 1 GiB zeros expected), in the page cache"
if ((alloc_kib > 3 * 1024 * 1024)); then
    note "the filesystem does not seem to keep holes: the numbers will not mean much"
fi
if ((HAVE_SPLICE)); then
    SPLICE_EXTENTS_VERBOSE=1 "$SPLICE" "$IMG" 2> "$WORK/moved.log" | cat > /dev/null ||
        { cat -- "$WORK/moved.log" >&2; die "splice-extents failed"; }
    moved=$(awk '/moved/ { print $3 }' "$WORK/moved.log")
    rm -f -- "$WORK/moved.log"
    say "splice-extents moves $((moved / 1024 / 1024)) MiB of data extents"
fi

HAVE_SPARSE=1
if truncate -s 1T -- "$SPARSE" 2> /dev/null; then
    # 4 x 256 KiB: at the start, near 256 GiB, near 640 GiB and at the end.
    for blk in 0 1048577 2621443 4194303; do
        dd if=/dev/urandom of="$SPARSE" bs=256K count=1 seek=$blk conv=notrunc \
            iflag=fullblock status=none
    done
    sync -- "$SPARSE"
    # Cache the data only: reading the holes would mean reading 1 TiB of zeros.
    for blk in 0 1048577 2621443 4194303; do
        dd if="$SPARSE" of=/dev/null bs=256K count=1 skip=$blk status=none
    done
    say "$SPARSE: 1 TiB virtual, $(du -k -- "$SPARSE" | awk '{ print $1 }') KiB allocated"
else
    HAVE_SPARSE=0
    rm -f -- "$SPARSE"
    note "cannot create a 1 TiB sparse file in '$WORK': skipping case d"
fi

if ((HAVE_FORMATS)); then
    # qemu-img does not allocate the zeros: 1 GiB of data in each.
    qemu-img convert -f raw -O qcow2 -- "$IMG" "$QCOW" ||
        die "qemu-img convert could not make the qcow2 image"
    qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse -- "$IMG" "$VMDK" ||
        die "qemu-img convert could not make the vmdk image"
    sync -- "$QCOW" "$VMDK"
    cat -- "$QCOW" "$VMDK" > /dev/null
    say "$QCOW: $(du -k -- "$QCOW" | awk '{ printf "%d MiB", $1 / 1024 }')," \
        "$VMDK (monolithicSparse): $(du -k -- "$VMDK" | awk '{ printf "%d MiB", $1 / 1024 }')," \
        "made by qemu-img convert from the raw image, in the page cache"
fi
say "(built in $((SECONDS - t0)) s)"
say

# --- Correctness --------------------------------------------------------------------

# check_output LABEL CLUSTER_SIZE INPUT: the tool's output through a pipe,
# saved, must pass qemu-img check, be identical to INPUT for qemu-img
# compare and be the same bytes as the reference's output.
check_output() {
    local label=$1 cs=$2 input=$3 log=$WORK/check.log
    local -a verdicts=()

    if ! "$PROGRAM" -c "$cs" "$input" | cat > "$CHECK"; then
        die "$label: the tool failed"
    fi
    if ((HAVE_QEMU)); then
        if ! qemu-img check -f qcow2 -- "$CHECK" > "$log" 2>&1; then
            cat -- "$log" >&2
            die "$label: qemu-img check failed on the tool's output"
        fi
        verdicts+=("qemu-img check ok")
        if ! qemu-img compare -f raw -F qcow2 -- "$input" "$CHECK" > "$log" 2>&1; then
            cat -- "$log" >&2
            die "$label: qemu-img compare: the tool's output differs from the input"
        fi
        verdicts+=("qemu-img compare identical")
    fi
    if ((HAVE_REF)); then
        if ! python3 "$REFERENCE" -c "$cs" "$input" | cmp -- - "$CHECK" > "$log" 2>&1; then
            cat -- "$log" >&2
            die "$label: the tool's output is not the same as the reference's"
        fi
        verdicts+=("same bytes as the reference")
    fi
    if ((${#verdicts[@]} == 0)); then
        verdicts+=("no oracle available (neither qemu-img nor the reference)")
    fi
    say "$label: $(du -k -- "$CHECK" | awk '{ printf "%d MiB", $1 / 1024 }') output;" \
        "$(IFS=,; printf '%s' "${verdicts[*]}" | sed 's/,/, /g')"
    rm -f -- "$CHECK" "$log"
}

say "== Correctness"
t0=$SECONDS
check_output "64 KiB clusters" 65536 "$IMG"
check_output "4 KiB clusters" 4096 "$IMG"
check_output "512 B clusters" 512 "$IMG"
if ((HAVE_SPARSE)); then check_output "1 TiB sparse, 64 KiB clusters" 65536 "$SPARSE"; fi

# fuse_probe: sets FUSE_SKIP to why the reference cannot read another
# format through FUSE here, or leaves it empty if it can: it must convert
# a 1 MiB qcow2 within 30 s into the same bytes as the tool's.
FUSE_SKIP=
fuse_probe() {
    local tiny_raw=$WORK/tiny.raw tiny=$WORK/tiny.qcow2 log=$WORK/probe.log
    local ref_out=$WORK/tiny-ref.qcow2 tool_out=$WORK/tiny-tool.qcow2 rc=0 t_start t_end

    if ((!HAVE_REF)); then
        FUSE_SKIP="no reference script or no python3"
        return
    fi
    if ! command -v qemu-storage-daemon > /dev/null 2>&1; then
        FUSE_SKIP="qemu-storage-daemon not found (Debian package qemu-system-common)"
        return
    fi
    if [[ ! -e /dev/fuse ]]; then
        FUSE_SKIP="no /dev/fuse on this machine"
        return
    fi
    if [[ ! -r /dev/fuse || ! -w /dev/fuse ]]; then
        FUSE_SKIP="no permission to open /dev/fuse"
        return
    fi
    if ! command -v fusermount3 > /dev/null 2>&1; then
        FUSE_SKIP="fusermount3 not found (Debian package fuse3)"
        return
    fi
    truncate -s 1M -- "$tiny_raw"
    dd if=/dev/urandom of="$tiny_raw" bs=64K count=2 seek=3 conv=notrunc status=none
    qemu-img convert -f raw -O qcow2 -- "$tiny_raw" "$tiny" ||
        die "qemu-img convert could not make the 1 MiB qcow2 image"
    "$PROGRAM" -f qcow2 "$tiny" > "$tool_out" || die "e) the tool failed on a 1 MiB qcow2"
    mkdir -p -- "$FUSE_TMP"
    t_start=$(date +%s.%N)
    TMPDIR=$FUSE_TMP timeout -k 5 30 python3 "$REFERENCE" -f qcow2 "$tiny" \
        > "$ref_out" 2> "$log" || rc=$?
    t_end=$(date +%s.%N)
    fuse_cleanup
    if ((rc == 124 || rc == 137)); then
        FUSE_SKIP="the reference through FUSE did not finish within 30 s on a 1 MiB qcow2"
    elif ((rc != 0)); then
        FUSE_SKIP="the reference through FUSE failed (exit $rc): $(head -c 400 -- "$log" | tr '\n' ' ')"
    elif ! cmp -s -- "$ref_out" "$tool_out"; then
        FUSE_SKIP="the reference through FUSE gave other bytes than the tool on a 1 MiB qcow2"
    else
        FUSE_PROBE_TIME=$(awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.2f", b - a }')
    fi
    rm -f -- "$tiny_raw" "$tiny" "$ref_out" "$tool_out" "$log"
}

# check_format LABEL FORMAT INPUT: the tool's output with -f FORMAT must be
# the same bytes as its output for the raw image, saved in $CHECK.
check_format() {
    local label=$1 fmt=$2 input=$3 log=$WORK/check.log
    if ! "$PROGRAM" -f "$fmt" "$input" | cmp -- - "$CHECK" > "$log" 2>&1; then
        cat -- "$log" >&2
        die "$label: the tool's output with -f $fmt differs from its output for the raw image"
    fi
    rm -f -- "$log"
}

if ((HAVE_FORMATS)); then
    if ! "$PROGRAM" "$IMG" | cat > "$CHECK"; then
        die "e) formats: the tool failed on the raw image"
    fi
    check_format "e) qcow2" qcow2 "$QCOW"
    check_format "e) vmdk" vmdk "$VMDK"
    say "e) -f qcow2, -f vmdk: the same bytes as for the raw image" \
        "($(du -k -- "$CHECK" | awk '{ printf "%d MiB", $1 / 1024 }'))"
    rm -f -- "$CHECK"
    FUSE_PROBE_TIME=
    fuse_probe
    if [[ -z $FUSE_SKIP ]]; then
        say "e) reference -f qcow2 through FUSE: works (1 MiB qcow2 in ${FUSE_PROBE_TIME} s," \
            "the same bytes as the tool's)"
    else
        say "e) reference through FUSE: skipped: $FUSE_SKIP"
    fi
fi
say "(checked in $((SECONDS - t0)) s)"
say

# --- Timing -------------------------------------------------------------------------

# time_case PREFIX CLUSTER_SIZE QUOTED_INPUT SLOW WITH_SPLICE WITH_QEMU: SLOW=1
# gives the reference and qemu-img BENCH_SLOW_RUNS runs and no warm-up.
time_case() {
    local p=$1 cs=$2 qinput=$3 slow=$4 with_splice=$5 with_qemu=$6
    local slow_runs=$REF_RUNS slow_warmup=$WARMUP

    if ((slow)); then
        slow_runs=$SLOW_RUNS
        slow_warmup=0
    fi

    measure "${p}_tool" "  qcow2-to-stdout -c $cs" "$RUNS" "$WARMUP" "" \
        "$qPROGRAM -c $cs $qinput | cat > /dev/null"
    if ((HAVE_BASE)); then
        measure "${p}_base" "  baseline -c $cs" "$RUNS" "$WARMUP" "" \
            "$qBASELINE -c $cs $qinput | cat > /dev/null"
    fi
    # The example uses the library's default, 64 KiB clusters.
    if ((with_splice && HAVE_RANGES && cs == 65536)); then
        measure "${p}_ranges" "  q2s_pread, 1 MiB ranges last first" "$RUNS" "$WARMUP" "" \
            "$qRANGES $qinput /dev/null 1048576 > /dev/null"
    fi
    if ((with_splice && HAVE_SPLICE)); then
        measure "${p}_splice" "  splice-extents (lower bound)" "$RUNS" "$WARMUP" "" \
            "$qSPLICE $qinput | cat > /dev/null"
    fi
    if ((HAVE_REF)); then
        measure "${p}_ref" "  reference -c $cs" "$slow_runs" "$slow_warmup" "" \
            "python3 $qREFERENCE -c $cs $qinput | cat > /dev/null"
    fi
    if ((with_qemu && HAVE_QEMU)); then
        measure "${p}_qemu" "  qemu-img convert (to a file)" "$slow_runs" "$slow_warmup" \
            "rm -f -- $qOUT" \
            "qemu-img convert -f raw -O qcow2 -o cluster_size=$cs $qinput $qOUT"
        rm -f -- "$OUT"
    fi
}

say "== Timing (mean ± standard deviation)"
t0=$SECONDS
say "a) 4 GiB image, 64 KiB clusters"
time_case c64k 65536 "$qIMG" 0 1 1
say "b) 4 GiB image, 4 KiB clusters"
time_case c4k 4096 "$qIMG" 0 0 1
say "c) 4 GiB image, 512 B clusters"
time_case c512 512 "$qIMG" 1 0 1
if ((HAVE_SPARSE)); then
    say "d) 1 TiB sparse file with 1 MiB of data, 64 KiB clusters"
    time_case sparse 65536 "$qSPARSE" 0 0 0
fi

# time_format FORMAT QUOTED_INPUT: case e for one format, default options.
time_format() {
    local fmt=$1 qinput=$2 p=f$1

    measure "${p}_tool" "  qcow2-to-stdout -f $fmt" "$RUNS" "$WARMUP" "" \
        "$qPROGRAM -f $fmt $qinput | cat > /dev/null"
    if ((HAVE_BASE)); then
        measure "${p}_base" "  baseline -f $fmt" "$RUNS" "$WARMUP" "" \
            "$qBASELINE -f $fmt $qinput | cat > /dev/null"
    fi
    if [[ -z $FUSE_SKIP ]]; then
        measure "${p}_ref" "  reference -f $fmt (through FUSE)" "$REF_RUNS" "$WARMUP" "" \
            "TMPDIR=$qFUSE_TMP python3 $qREFERENCE -f $fmt $qinput | cat > /dev/null"
    else
        printf '%-44s%s\n' "  reference -f $fmt (through FUSE)" "skipped: $FUSE_SKIP"
    fi
    measure "${p}_qemu" "  qemu-img convert -f $fmt (to a file)" "$REF_RUNS" "$WARMUP" \
        "rm -f -- $qOUT" "qemu-img convert -f $fmt -O qcow2 $qinput $qOUT"
    rm -f -- "$OUT"
}

if ((HAVE_FORMATS)); then
    say "e) formats through NBD: the 4 GiB image as qcow2 and as vmdk, 64 KiB clusters"
    time_format qcow2 "$qQCOW"
    time_format vmdk "$qVMDK"
fi
say "(timed in $((SECONDS - t0)) s)"
say

# --- Results ------------------------------------------------------------------------

# ref_line PREFIX TARGET: the reference/tool ratio and its target.
ref_line() {
    local p=$1 target=$2 r
    if have "${p}_ref"; then
        r=$(ratio "${MEAN[${p}_ref]}" "${MEAN[${p}_tool]}")
        printf '    %-56s target >= %-5s %s\n' "reference/tool: ${r}x faster than the reference" \
            "${target}x" "$(verdict "$r" '>=' "$target")"
    else
        printf '    %-56s target >= %-5s %s\n' "reference/tool: not measured (no reference)" \
            "${target}x" "n/a"
    fi
}
qemu_line() {
    local p=$1 r
    if have "${p}_qemu"; then
        r=$(ratio "${MEAN[${p}_qemu]}" "${MEAN[${p}_tool]}")
        printf '    %-56s (no target)\n' "qemu-img/tool: ${r}x faster than qemu-img convert"
    else
        printf '    %s\n' "qemu-img/tool: not measured (no qemu-img)"
    fi
}
# row PREFIX LABEL KEY [WIDTH]: one mean time, its label WIDTH wide (32).
row() {
    local p=$1 label=$2 key=$3 width=${4:-32}
    if have "${p}_$key"; then
        printf '    %-*s %10s\n' "$width" "$label" "$(fmt "${MEAN[${p}_$key]}")"
    fi
}

say "== Results"
printf '%s\n' "Mean times; ratios > 1 mean the tool is faster."
say
say "a) 64 KiB clusters (4 GiB image, 2 GiB allocated)"
row c64k "qcow2-to-stdout" tool
row c64k "splice-extents (lower bound)" splice
row c64k "reference" ref
row c64k "qemu-img convert (to a file)" qemu
row c64k "baseline (Q2S_BENCH_BASELINE)" base
row c64k "q2s_pread, 1 MiB ranges" ranges
ref_line c64k 1.25
qemu_line c64k
base_line c64k
if have c64k_ranges; then
    r=$(ratio "${MEAN[c64k_ranges]}" "${MEAN[c64k_tool]}")
    printf '    %-56s target <= %-5s %s\n' "ranges/stream: random access takes ${r}x the stream's time" \
        "1.2x" "$(verdict "$r" '<=' 1.2)"
fi
if have c64k_splice; then
    r=$(ratio "${MEAN[c64k_tool]}" "${MEAN[c64k_splice]}")
    printf '    %-56s target <= %-5s %s\n' "tool/splice: tool time is ${r}x the splice-only time" \
        "1.4x" "$(verdict "$r" '<=' 1.4)"
else
    printf '    %-56s target <= %-5s %s\n' "tool/splice: not measured (no splice-extents)" "1.4x" "n/a"
fi
say
say "b) 4 KiB clusters"
row c4k "qcow2-to-stdout" tool
row c4k "reference" ref
row c4k "qemu-img convert (to a file)" qemu
row c4k "baseline (Q2S_BENCH_BASELINE)" base
ref_line c4k 3
qemu_line c4k
base_line c4k
say
say "c) 512 B clusters"
row c512 "qcow2-to-stdout" tool
row c512 "reference" ref
row c512 "qemu-img convert (to a file)" qemu
row c512 "baseline (Q2S_BENCH_BASELINE)" base
ref_line c512 10
qemu_line c512
base_line c512
say
if ((HAVE_SPARSE)); then
    say "d) 1 TiB sparse file with 1 MiB of data, 64 KiB clusters"
    row sparse "qcow2-to-stdout" tool
    row sparse "reference" ref
    row sparse "baseline (Q2S_BENCH_BASELINE)" base
    base_line sparse
    if have sparse_ref; then
        r=$(ratio "${MEAN[sparse_ref]}" "${MEAN[sparse_tool]}")
        printf '    %s\n' "reference/tool: ${r}x faster than the reference"
    fi
    ms=$(awk -v v="${MEAN[sparse_tool]}" 'BEGIN { printf "%.1f", v * 1000 }')
    printf '    %-56s target <  %-5s %s\n' "tool: ${ms} ms" "100ms" \
        "$(awk -v v="${MEAN[sparse_tool]}" 'BEGIN { print ((v < 0.1) ? "met" : "MISSED") }')"
else
    say "d) 1 TiB sparse file: skipped (cannot create it here)"
fi
say
if ((HAVE_FORMATS)); then
    say "e) formats through NBD (the 4 GiB image as qcow2 and as vmdk, 1 GiB of data)"
    for fmt in qcow2 vmdk; do
        p=f$fmt
        say "  $fmt"
        row "$p" "qcow2-to-stdout -f $fmt" tool 40
        row "$p" "reference -f $fmt (through FUSE)" ref 40
        row "$p" "qemu-img convert -f $fmt (to a file)" qemu 40
        row "$p" "baseline -f $fmt (Q2S_BENCH_BASELINE)" base 40
        base_line "$p"
        if have "${p}_ref"; then
            r=$(ratio "${MEAN[${p}_ref]}" "${MEAN[${p}_tool]}")
            printf '    %-36s %-53s %s\n' "reference-through-FUSE/tool: ${r}x" \
                "target >= 2x faster than the reference through FUSE" "$(verdict "$r" '>=' 2)"
        else
            printf '    %-36s %-53s %s\n' "reference-through-FUSE/tool: n/a" \
                "target >= 2x faster than the reference through FUSE" "n/a"
            printf '      %s\n' "(reference through FUSE skipped: $FUSE_SKIP)"
        fi
        r=$(ratio "${MEAN[${p}_tool]}" "${MEAN[${p}_qemu]}")
        printf '    %-36s %-53s %s\n' "tool/qemu-img: ${r}x" \
            "target: within 1.5x of qemu-img convert" "$(verdict "$r" '<=' 1.5)"
    done
else
    say "e) formats through NBD: skipped (no qemu-img or no qemu-nbd)"
fi
say
if ((HAVE_QEMU)); then
    say "qemu-img writes a file (it cannot write to a pipe), the others a pipe read by cat."
fi
say "Total bench time: $((SECONDS - bench_start)) s"
# A mismatch with the fork fails the bench, after all its numbers.
if ((XAPI_MISMATCHES)); then exit 1; fi
