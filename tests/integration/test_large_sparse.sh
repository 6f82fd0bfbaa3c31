# Memory grows with the data, not the virtual size: a 1 PiB sparse file.
. "$(dirname "$0")/lib.sh"

# tmpfs holds a sparse 1 PiB file; ext4 stops at 16 TiB.
dir=""
for candidate in /dev/shm "${TMPDIR:-/tmp}"; do
    if [ -d "$candidate" ] && [ -w "$candidate" ] &&
        truncate -s 1P "$candidate/q2s-probe.$$" 2>/dev/null; then
        rm -f "$candidate/q2s-probe.$$"
        dir=$candidate
        break
    fi
    rm -f "$candidate/q2s-probe.$$"
done
if [ -z "$dir" ]; then
    skip "1 PiB sparse input" "no filesystem here takes a 1 PiB sparse file"
    finish; exit 0
fi
big="$dir/q2s-petabyte.$$"
cleanup_hooks+=("rm -f '$big'")
truncate -s 1P "$big"
printf 'start' | write_at "$big" 0
head -c 1048576 /dev/zero | tr '\0' '\253' | write_at "$big" $((1 << 40))
printf 'end' | write_at "$big" $(((1 << 50) - 3))

if [ -n "${Q2S_VALGRIND_PROGRAM:-}" ]; then
    "$Q2S" "$big" > big.qcow2
    skip "1 PiB: peak RSS under 64 MiB" "the program runs under valgrind"
elif have /usr/bin/time; then
    /usr/bin/time -f %M -o rss.txt "$Q2S" "$big" > big.qcow2
    rss_kib=$(tail -n 1 rss.txt)
    check "1 PiB: peak RSS under 64 MiB (was ${rss_kib} KiB)" test "$rss_kib" -lt 65536
else
    "$Q2S" "$big" > big.qcow2
    skip "1 PiB: peak RSS under 64 MiB" "no /usr/bin/time (Debian package time)"
fi
check "1 PiB: stream size is what --measure says" \
    test "$(stat -c %s big.qcow2)" = "$("$Q2S" --measure "$big")"
if have qemu-img; then
    check "1 PiB: qemu-img check" qemu-img check -f qcow2 big.qcow2
    check "1 PiB: virtual size" \
        bash -c 'qemu-img info --output=json big.qcow2 | grep -q "\"virtual-size\": 1125899906842624"'
    if have qemu-io; then
        # pattern_at BYTE OFFSET LENGTH: the guest reads BYTE there.
        pattern_at() {
            local out
            out=$(qemu-io -f qcow2 -c "read -P $1 $2 $3" big.qcow2) &&
                grep -q "^read $3/$3 bytes" <<<"$out" &&
                ! grep -q "verification failed" <<<"$out"
        }
        check "1 PiB: the last byte reads back" pattern_at 0x64 $(((1 << 50) - 1)) 1
        check "1 PiB: the data at 1 TiB reads back" pattern_at 0xab $((1 << 40)) 1048576
        check "1 PiB: a hole reads as zeros" pattern_at 0 $(((1 << 40) - 65536)) 65536
    fi
else
    skip "1 PiB: qemu-img check" "qemu-img is not installed"
fi
finish
