# Failures: the exit status, one clear line on stderr, and never a stream
# that looks complete.
. "$(dirname "$0")/lib.sh"

make_image disk.raw $((3 * 1024 * 1024))

check "missing input" fails 1 "nope.raw: No such file or directory" "$Q2S" nope.raw
mkdir dir
check "directory input" fails 1 "dir: is a directory" "$Q2S" dir
check "character device input" fails 1 "not a regular file or a block device" "$Q2S" /dev/null
mkfifo fifo
check "FIFO input is refused without blocking" fails 1 "not a regular file or a block device" "$Q2S" fifo
check "cluster size not a power of two" fails 2 "invalid cluster size 1000: must be a power of two" "$Q2S" -c 1000 disk.raw
check "cluster size too large" fails 2 "invalid cluster size 4194304: must be" "$Q2S" -c 4M disk.raw
check "cluster size too small" fails 2 "invalid cluster size 256: must be" "$Q2S" -c 256 disk.raw
check "cluster size not a number" fails 2 "invalid cluster size 'big'" "$Q2S" -c big disk.raw
check "refcount width not a power of two" fails 2 "invalid refcount width 3: must be 1, 2" "$Q2S" -r 3 disk.raw
check "refcount width too large" fails 2 "invalid refcount width 128: must be" "$Q2S" -r 128 disk.raw
check "unknown option" fails 2 "unknown option '--frobnicate'" "$Q2S" --frobnicate disk.raw
check "option without its value" fails 2 "needs a value" "$Q2S" disk.raw -c
check "no input" fails 2 "no input given" "$Q2S"
check "two inputs" fails 2 "more than one input" "$Q2S" disk.raw disk.raw
# The program refuses --timeout=0, so its message for a timeout too long
# names the range it takes, not the library's "0 waits for ever".
check "timeout too long: the program's range" fails 2 "invalid timeout '86401': must be a whole number of seconds from 1 to 86400" "$Q2S" --timeout=86401 disk.raw
check "timeout 0" fails 2 "invalid timeout '0': must be a whole number of seconds from 1 to 86400" "$Q2S" --timeout=0 disk.raw
check "--json without --measure" fails 2 "--json goes with --measure" "$Q2S" --json disk.raw
check "--measure with a range" fails 2 "--measure" "$Q2S" --measure --offset=1 disk.raw
check "bad offset" fails 2 "invalid offset" "$Q2S" --offset=-1 disk.raw
check "a format that smuggles options" fails 1 "unknown input format 'qcow2,file.driver=nbd'" "$Q2S" -f qcow2,file.driver=nbd disk.raw
check "-d with another format: a usage error" fails 2 "an external data file must be a raw file that the image can name" "$Q2S" -d -f vmdk disk.raw
check "-d with 512-byte clusters: a usage error" fails 2 "larger cluster size" "$Q2S" -d -c 512 disk.raw
# 112 header bytes, 8 + 700 for the name, 392 for the feature table.
long=$(printf 'sub/%.0s' $(seq 1 175))disk.raw
check "-d with a name too long for the header: a usage error" fails 2 "too long" "$Q2S" -d -c 1024 "$long"

if have script; then
    tty_test() {
        script -qec "'$Q2S' disk.raw" /dev/null > tty.txt 2>&1
        local status=$?
        [ "$status" = 1 ] && grep -q "refusing to write to a terminal" tty.txt
    }
    check "a terminal on stdout is refused" tty_test
    measure_tty() {
        script -qec "'$Q2S' --measure disk.raw" /dev/null > tty.txt 2>&1 &&
            grep -q '^[0-9]' tty.txt
    }
    check "--measure may print to a terminal" measure_tty
else
    skip "a terminal on stdout is refused" "no script(1) (util-linux) to make a terminal"
fi

# The L1 limit: 128 GiB + 512 bytes at 512-byte clusters.
rm -f huge.raw; truncate -s $((128 * 1024 * 1024 * 1024 + 512)) huge.raw
check "an image too large for the L1 limit is refused" fails 1 "too large" "$Q2S" -c 512 huge.raw
check "nothing written for a too-large image" test ! -s out.bin
rm -f huge.raw

# A reader that goes away: the stream is incomplete, so the status is 1.
rm -f big.raw; truncate -s 64M big.raw
head -c $((16 * 1024 * 1024)) /dev/urandom | write_at big.raw 1048576
early_reader() {
    "$Q2S" big.raw 2> epipe.err | head -c 100 > /dev/null
    local status=${PIPESTATUS[0]}
    [ "$status" = 1 ] && grep -q "^qcow2-to-stdout: write error: Broken pipe$" epipe.err ||
        { echo "status $status"; cat epipe.err; return 1; }
}
check "a reader that goes away: status 1, broken pipe" early_reader
check "output device full" fails 1 "No space left on device" bash -c "'$Q2S' big.raw > /dev/full"

# An input that shrinks while the stream is written: the reader blocks
# the tool mid-data, the input is cut, then the reader drains the pipe.
shrinking() {
    "$Q2S" big.raw 2> shrink.err |
        { head -c 1 > /dev/null; truncate -s 2M big.raw; cat > /dev/null; }
    local status=${PIPESTATUS[0]}
    [ "$status" = 1 ] && grep -q "did it shrink" shrink.err ||
        { echo "status $status"; cat shrink.err; return 1; }
}
check "an input that shrinks during the writing: status 1" shrinking
finish
