# The files an image names, in images that qemu-img makes: checked by
# q2s_check_image_references() through tests/helpers/check-refs.
. "$(dirname "$0")/lib.sh"

CHECK_REFS=${Q2S_BUILD:-$top/build}/tests/helpers/check-refs
if ! have qemu-img; then
    skip "image references" "qemu-img is not installed (Debian package qemu-utils)"
    finish; exit 0
fi
if [ ! -x "$CHECK_REFS" ]; then
    skip "image references" "$CHECK_REFS is not built"
    finish; exit 0
fi

# allowed [--untrusted] FORMAT IMAGE
allowed() { timeout 10 "$CHECK_REFS" "$@"; }
# refused PATTERN [--untrusted] FORMAT IMAGE: exit 1, one line matching.
refused() {
    local pattern=$1 status; shift
    timeout 10 "$CHECK_REFS" "$@" 2> refs.err
    status=$?
    [ "$status" = 1 ] || { echo "exit status $status"; cat refs.err; return 1; }
    [ "$(wc -l < refs.err)" = 1 ] || { echo "not one line:"; cat refs.err; return 1; }
    grep -q -- "$pattern" refs.err || { echo "no '$pattern' in:"; cat refs.err; return 1; }
}
create() { qemu-img create -q "$@" > /dev/null; }

truncate -s 1M base.raw
mkfifo base.fifo

create -f qcow2 plain.qcow2 1M
check "qcow2 without references: allowed untrusted" allowed --untrusted qcow2 plain.qcow2

create -f qcow2 -u -b base.raw -F raw over.qcow2 1M
check "qcow2 backing file: allowed trusted" allowed qcow2 over.qcow2
check "qcow2 backing file: refused untrusted" \
    refused 'untrusted: the image names a backing file "base.raw"' --untrusted qcow2 over.qcow2

create -f qcow2 -u -b base.fifo -F raw on-fifo.qcow2 1M
check "qcow2 backing FIFO: refused" refused '"base.fifo" is a FIFO' qcow2 on-fifo.qcow2
create -f qcow2 -u -b /dev/zero -F raw on-zero.qcow2 1M
check "qcow2 backing character device: refused" refused 'character device' qcow2 on-zero.qcow2

create -f qcow2 -o data_file=data.raw with-data.qcow2 1M
check "qcow2 external data file: allowed trusted" allowed qcow2 with-data.qcow2
check "qcow2 external data file: refused untrusted" \
    refused 'names a data file "data.raw"' --untrusted qcow2 with-data.qcow2
rm data.raw && mkfifo data.raw
check "qcow2 external data file that is a FIFO: refused" \
    refused '"data.raw" is a FIFO' qcow2 with-data.qcow2

# A chain with relative names, checked from another directory.
mkdir chain
create -f qcow2 chain/base.qcow2 1M
create -f qcow2 -b base.qcow2 -F qcow2 chain/mid.qcow2
create -f qcow2 -b mid.qcow2 -F qcow2 chain/top.qcow2
check "qcow2 chain: allowed trusted" allowed qcow2 chain/top.qcow2
check "qcow2 chain: refused untrusted" refused '"mid.qcow2"' --untrusted qcow2 chain/top.qcow2
rm chain/base.qcow2 && mkfifo chain/base.qcow2
check "qcow2 chain ending in a FIFO: refused" \
    refused 'backing file "mid.qcow2": its backing file "base.qcow2" is a FIFO' qcow2 chain/top.qcow2
create -f qcow2 -u -b loop-b.qcow2 -F qcow2 loop-a.qcow2 1M
create -f qcow2 -u -b loop-a.qcow2 -F qcow2 loop-b.qcow2 1M
check "qcow2 chain loop: refused" refused 'loops back' qcow2 loop-a.qcow2

# QEMU's "file:" prefix names a local file all the same: an image named
# that way is opened, and what it names in turn, so it must be followed.
create -f qcow2 -u -b base.fifo -F raw prefixed-mid.qcow2 1M
create -f qcow2 -u -b file:prefixed-mid.qcow2 -F qcow2 prefixed-top.qcow2 1M
check "qcow2 backing named file:..., whose own backing is a FIFO: refused" \
    refused '"base.fifo" is a FIFO' qcow2 prefixed-top.qcow2
create -f qcow2 -u -b file:prefixed-loop.qcow2 -F qcow2 prefixed-loop.qcow2 1M
check "qcow2 backing named file:itself: the loop is refused" \
    refused 'loops back' qcow2 prefixed-loop.qcow2
# Through the tool: qemu-nbd blocks on the FIFO, or opens the loop until
# it runs out of descriptors; the tool must refuse before it starts.
check "-f qcow2 with a file:-named backing whose backing is a FIFO: refused at once" \
    fails 1 'is a FIFO' timeout 10 "$Q2S" -f qcow2 prefixed-top.qcow2
check "-f qcow2 whose backing is file:itself: refused at once" \
    fails 1 'loops back' timeout 10 "$Q2S" -f qcow2 prefixed-loop.qcow2

create -f qcow -u -b base.fifo -F raw old.qcow 1M
check "qcow backing FIFO: refused" refused 'is a FIFO' qcow old.qcow
create -f qed -u -b base.raw -F raw over.qed 1M
check "qed backing file: allowed trusted" allowed qed over.qed
check "qed backing file: refused untrusted" refused 'backing file "base.raw"' --untrusted qed over.qed

create -f vmdk -o subformat=monolithicSparse sparse.vmdk 1M
check "vmdk monolithicSparse: allowed untrusted" allowed --untrusted vmdk sparse.vmdk
create -f vmdk -b sparse.vmdk -F vmdk child.vmdk
check "vmdk with a parent: allowed trusted" allowed vmdk child.vmdk
check "vmdk with a parent: refused untrusted" \
    refused 'names a parent file "sparse.vmdk"' --untrusted vmdk child.vmdk
create -f vmdk -o subformat=twoGbMaxExtentFlat flat.vmdk 1M
check "vmdk descriptor: allowed trusted" allowed vmdk flat.vmdk
check "vmdk descriptor: refused untrusted" refused 'vmdk descriptor' --untrusted vmdk flat.vmdk
rm flat-f001.vmdk && mkfifo flat-f001.vmdk
check "vmdk extent that is a FIFO: refused" refused 'extent "flat-f001.vmdk" is a FIFO' vmdk flat.vmdk

for format in vhdx vpc vdi parallels; do
    if create -f "$format" "self.$format" 1M 2> /dev/null; then
        check "$format: allowed untrusted" allowed --untrusted "$format" "self.$format"
    else
        skip "$format" "qemu-img cannot write it here"
    fi
done
check "a format not inspected: refused untrusted" \
    refused 'format luks is not inspected' --untrusted luks plain.qcow2
finish
