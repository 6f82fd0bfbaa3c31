# Images from someone else (README, "Images you did not make"): what an
# image names can neither block the tool nor leak another file into the
# stream, and --untrusted refuses every such name and bounds QEMU.
. "$(dirname "$0")/lib.sh"

make_image disk.raw $((3 * 1024 * 1024))
qemu-img convert -O qcow2 disk.raw plain.qcow2
mkfifo fifo
secret=$scratch/secret.raw
head -c 1048576 /dev/urandom > "$secret"

# --- Without --untrusted: as qemu-img, but never blocked ------------------
qemu-img create -q -f qcow2 -u -b fifo -F raw fifo-backing.qcow2 3M
check "a backing file that is a FIFO: refused at once, not a hang" \
    fails 1 'its backing file "fifo" is a FIFO' "$Q2S" -f qcow2 fifo-backing.qcow2
qemu-img create -q -f qcow2 -u -b /dev/zero -F raw chardev-backing.qcow2 3M
check "a backing file that is a character device: refused" \
    fails 1 "/dev/zero" "$Q2S" -f qcow2 chardev-backing.qcow2
# qemu-img creates the data file; it then becomes a FIFO.
qemu-img create -q -f qcow2 -o data_file=data-fifo fifo-data.qcow2 3M
rm data-fifo && mkfifo data-fifo
check "an external data file that is a FIFO: refused at once" \
    fails 1 '"data-fifo" is a FIFO' "$Q2S" -f qcow2 fifo-data.qcow2
# A name no check can see through (a json: filename) still cannot hang
# the tool: a signal ends it at once, and --timeout fails it.
qemu-img create -q -f qcow2 -u -F raw \
    -b "json:{\"driver\": \"raw\", \"file\": {\"driver\": \"file\", \"filename\": \"$scratch/fifo\"}}" \
    json-backing.qcow2 3M
sigterm_blocked() {
    local tool
    "$Q2S" -f qcow2 json-backing.qcow2 > /dev/null 2> blocked.err &
    tool=$!
    sleep 1
    dies_of TERM "$tool" blocked.err
}
check "qemu-nbd blocked on a FIFO behind a json: name: SIGTERM ends the tool at once" sigterm_blocked
check "the same with --timeout=1: one line, status 1" \
    fails 1 "did not answer for 1 s during the handshake" "$Q2S" --timeout=1 -f qcow2 json-backing.qcow2
sleep 0.2
check "no qemu-nbd left behind" test -z "$(pgrep -x qemu-nbd -a | grep -F "$scratch")"

# A backing chain that is an ordinary file still works without --untrusted.
qemu-img create -q -f qcow2 -b "$secret" -F raw overlay.qcow2
trusted_chain() {
    "$Q2S" -f qcow2 overlay.qcow2 > overlay-out.qcow2 &&
        valid_image overlay-out.qcow2 "$secret"
}
check "without --untrusted a backing file is read, as qemu-img would" trusted_chain

# --- With --untrusted ------------------------------------------------------
# untrusted_converts FORMAT IMAGE: a valid image of disk.raw's content.
untrusted_converts() {
    "$Q2S" --untrusted -f "$1" "$2" > untrusted-out.qcow2 &&
        valid_image untrusted-out.qcow2 disk.raw
}
check "--untrusted: a self-contained qcow2 converts" untrusted_converts qcow2 plain.qcow2
check "--untrusted: a backing file is refused" \
    fails 1 "untrusted: the image names a backing file" "$Q2S" --untrusted -f qcow2 overlay.qcow2
check "--untrusted: nothing of the backing file reaches stdout" test ! -s out.bin
qemu-img create -q -f qcow2 -o data_file="$secret" data-file.qcow2 1M
check "--untrusted: an external data file is refused" \
    fails 1 "untrusted: the image names a data file" "$Q2S" --untrusted -f qcow2 data-file.qcow2
qemu-img create -q -f vmdk -o subformat=monolithicFlat flat.vmdk 1M
check "--untrusted: a vmdk descriptor naming extents is refused" \
    fails 1 "untrusted: the image is a vmdk descriptor" "$Q2S" --untrusted -f vmdk flat.vmdk
qemu-img convert -O vmdk disk.raw sparse.vmdk
check "--untrusted: a monolithic sparse vmdk converts" untrusted_converts vmdk sparse.vmdk
check "--untrusted: a format that is not inspected is refused" \
    fails 1 "not inspected" "$Q2S" --untrusted -f luks disk.raw
# qemu-nbd runs within the limits: its address space is bounded.
limits_seen() {
    local tool pid limit
    rm -f fifo.out && mkfifo fifo.out
    "$Q2S" --untrusted -f qcow2 plain.qcow2 > fifo.out 2> limits.err &
    tool=$!
    exec 7< fifo.out
    head -c 1 <&7 > /dev/null
    for pid in $(pgrep -x qemu-nbd); do
        [ "$(ps -o ppid= -p "$pid" | tr -d ' ')" = "$tool" ] || continue
        limit=$(awk '/^Max address space/ { print $4 }' "/proc/$pid/limits")
    done
    cat <&7 > /dev/null
    exec 7<&-
    wait "$tool" || return 1
    echo "qemu-nbd's address space limit: ${limit:-none}"
    [ "$limit" = 1073741824 ]
}
check "--untrusted: qemu-nbd runs with 1 GiB of address space at most" limits_seen
finish
