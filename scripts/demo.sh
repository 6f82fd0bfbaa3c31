#!/usr/bin/env bash
# `make demo`: the tool at work on a small sparse image, checked by QEMU.
set -euo pipefail
q2s=${Q2S_PROGRAM:-$(cd "$(dirname "$0")/.." && pwd)/qcow2-to-stdout}
q2f=${Q2S_IMPORTER:-$(cd "$(dirname "$0")/.." && pwd)/qcow2-from-stdin}
dir=$(mktemp -d "${TMPDIR:-/tmp}/q2s-demo.XXXXXX")
trap 'rm -rf "$dir"' EXIT
cd "$dir"

run() { printf '$ %s\n' "$*"; bash -c "$*"; }

truncate -s 1G disk.raw
head -c 8M /dev/urandom | dd of=disk.raw bs=1M seek=100 conv=notrunc status=none
# Text, which compresses, further on.
seq 1000000 | dd of=disk.raw bs=1M seek=500 iflag=fullblock conv=notrunc status=none
echo "A 1 GiB sparse raw disk with 8 MiB of random data and 6.6 MiB of text:"
run "du -h --apparent-size disk.raw; du -h disk.raw"
run "'$q2s' --measure disk.raw"
run "'$q2s' -p disk.raw | cat > disk.qcow2"
run "ls -l disk.qcow2"
run "qemu-img check disk.qcow2"
run "qemu-img compare disk.raw disk.qcow2"
echo
echo "The same with compressed clusters (zstd), on every core:"
run "'$q2s' --compress=zstd disk.raw > small.qcow2"
run "ls -l small.qcow2"
run "qemu-img check small.qcow2"
run "qemu-img compare disk.raw small.qcow2"
echo
echo "And back: the compressed image read as a stream, written as the disk:"
run "cat small.qcow2 | '$q2f' restored.raw"
run "cmp disk.raw restored.raw && echo identical"
