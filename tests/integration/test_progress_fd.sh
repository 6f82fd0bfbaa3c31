# --progress-fd=N: progress for a calling program, read here as XAPI reads
# vhd-tool --progress --machine.
. "$(dirname "$0")/lib.sh"

# xapi_read [FILE]: reads FILE (default: standard input) as XAPI's
# run_vhd_tool reads vhd-tool's progress pipe (xapi-project/xen-api,
# ocaml/xapi/vhd_tool_wrapper.ml):
#     let buf = Bytes.make 3 '\000' in
#     while true do
#       Xapi_stdext_unix.Unixext.really_read pipe_read buf 0
#         (Bytes.length buf) ;
#       progress_cb (int_of_string (Bytes.to_string buf))
#     done
# with End_of_file -> () and any other exception a warning that ends the
# reading.  really_read reads until it has the 3 bytes, one read(2) at a
# time (short reads included), and raises End_of_file on an end of file
# before that, losing the bytes read.  Prints one value a line, then
# "end of file" or "error: ..." as XAPI would end.
xapi_read() {
    python3 - "$@" <<'PY'
import os, re, sys
fd = os.open(sys.argv[1], os.O_RDONLY) if len(sys.argv) > 1 else 0

def really_read(n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf

# OCaml's int_of_string on 3 bytes: an optional sign, an optional 0x/0o/0b/
# 0u prefix, then digits and underscores; anything else is Failure.
def int_of_string(s):
    m = re.fullmatch(r"([-+]?)(0[xXoObBuU])?([0-9a-fA-F_]+)", s)
    if not m or m.group(3).startswith("_"):
        raise ValueError("int_of_string %r" % s)
    base = {"x": 16, "o": 8, "b": 2, "u": 10}.get((m.group(2) or "0u")[1].lower())
    value = int(m.group(3).replace("_", ""), base)
    return -value if m.group(1) == "-" else value

try:
    while True:
        print(int_of_string(really_read(3).decode("latin-1")), flush=True)
except EOFError:
    print("end of file")
except Exception as e:
    print("error: %s" % e)
PY
}

# good_progress VALUES: what xapi_read printed for a run that succeeded:
# no error, strictly increasing, from 0 to 100.
good_progress() {
    python3 - "$1" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")[:-1]
if not lines or lines[-1] != "end of file":
    sys.exit("not ended by the end of file: %r" % lines[-1:])
values = [int(v) for v in lines[:-1]]
if not values or values[0] != 0 or values[-1] != 100:
    sys.exit("not from 0 to 100: %r" % values)
if any(b <= a for a, b in zip(values, values[1:])):
    sys.exit("not strictly increasing: %r" % values)
PY
}

# intermediate_values VALUES MIN: at least MIN values between 0 and 100.
intermediate_values() {
    local n
    n=$(grep -Ec '^([1-9]|[1-9][0-9])$' "$1")
    [ "$n" -ge "$2" ] || { echo "$n values between 0 and 100:"; cat "$1"; return 1; }
}

make_image disk.raw $((4 * 1024 * 1024 + 100))
"$Q2S" -c 4096 disk.raw > plain.qcow2

# To a file.
"$Q2S" -c 4096 --progress-fd=3 disk.raw 3> progress.out > file.qcow2
check "to a file: the same stream" cmp plain.qcow2 file.qcow2
check "to a file: only three-digit values" grep -Eqx '([0-9]{3})+' progress.out
xapi_read progress.out > file.values
check "to a file: XAPI reads 000 ... 100, going up" good_progress file.values
"$Q2S" -c 4096 --progress-fd 3 disk.raw 3> separate.out > separate.qcow2
check "--progress-fd N, the value as the next argument" cmp progress.out separate.out

# Through a pipe, read as the run goes, by a reader that reads like XAPI.
mkfifo progress.fifo
xapi_read progress.fifo > pipe.values &
reader=$!
"$Q2S" -c 4096 --progress-fd=3 disk.raw 3> progress.fifo > pipe.qcow2
status=$?
wait "$reader"
check "through a pipe: exit 0, the same stream" bash -c "[ $status = 0 ] && cmp plain.qcow2 pipe.qcow2"
check "through a pipe: XAPI reads 000 ... 100, going up" good_progress pipe.values

# A larger sparse input: values come along the way in both passes.
truncate -s 1G big.raw
for at in 100 400 700; do
    yes 'some data' | head -c $((64 * 1024 * 1024)) | write_at big.raw $((at * 1024 * 1024))
done
"$Q2S" --progress-fd=3 big.raw 3> big.out > big.qcow2
xapi_read big.out > big.values
check "large input: XAPI reads 000 ... 100, going up" good_progress big.values
check "large input: several values between" intermediate_values big.values 6
check "large input: the image is valid" valid_image big.qcow2 big.raw
rm -f big.qcow2
# One pass reads nothing before writing: the writing is 0 to 100.
"$Q2S" --one-pass --progress-fd=3 big.raw 3> one.out > big.qcow2
xapi_read one.out > one.values
check "--one-pass: XAPI reads 000 ... 100, going up" good_progress one.values
below_half() { [ "$(grep -Ec '^([1-9]|[1-4][0-9])$' "$1")" -ge 1 ] || { cat "$1"; return 1; }; }
check "--one-pass: values below 50 too (the writing is all of it)" below_half one.values
rm -f big.qcow2

# With -p: both.
"$Q2S" -c 4096 -p --progress-fd=3 disk.raw 3> both.out 2> both.err > both.qcow2
check "with -p: the same values" cmp progress.out both.out
check "with -p: the display on stderr too" grep -q "writing (100.00/100%)" both.err
check "with -p: the same stream" cmp plain.qcow2 both.qcow2

# With --measure: pass 1 is the whole run.
"$Q2S" -c 4096 --measure --progress-fd=3 disk.raw 3> measure.out > measure.txt
xapi_read measure.out > measure.values
check "--measure: XAPI reads 000 ... 100, going up" good_progress measure.values
check "--measure: the size on stdout" test "$(cat measure.txt)" = "$(stat -c %s plain.qcow2)"

# Failures do not end with 100.
"$Q2S" -c 4096 --progress-fd=3 --offset=1G disk.raw 3> offset.out > /dev/null 2> offset.err
check "a failure after pass 1: no 100" bash -c "[ -s offset.out ] && ! grep -q '100\$' offset.out"
"$Q2S" -c 4096 --progress-fd=3 disk.raw 3> epipe.out 2> epipe.err | head -c 1000 > /dev/null
check "a reader of the image that goes: no 100" bash -c "grep -q '^000' epipe.out && ! grep -q '100\$' epipe.out"
"$Q2S" -c 4096 --progress-fd=3 missing.raw 3> missing.out > /dev/null 2> missing.err
check "an input that cannot be opened: 000 only" test "$(cat missing.out)" = 000

# A progress reader that is gone: the conversion goes on, with a warning.
python3 -c '
import os, sys
r, w = os.pipe()
os.close(r)
os.dup2(w, 3)
os.execv(sys.argv[1], sys.argv[1:])' "$Q2S" -c 4096 --progress-fd=3 disk.raw > gone.qcow2 2> gone.err
status=$?
check "progress reader gone: exit 0, the same stream" bash -c "[ $status = 0 ] && cmp plain.qcow2 gone.qcow2"
check "progress reader gone: the image is valid" valid_image gone.qcow2 disk.raw
check "progress reader gone: one warning" bash -c "[ \$(wc -l < gone.err) = 1 ] && grep -q '^qcow2-to-stdout: warning: cannot write progress to descriptor 3: Broken pipe' gone.err"
# One that reads a value and closes: whatever it missed, the run succeeds.
rm -f early.fifo && mkfifo early.fifo
head -c 3 early.fifo > early.out &
reader=$!
"$Q2S" -c 4096 --progress-fd=3 disk.raw 3> early.fifo > early.qcow2 2> early.err
status=$?
wait "$reader"
check "progress reader closes early: exit 0" test "$status" = 0
check "progress reader closes early: the image is valid" valid_image early.qcow2 disk.raw

# Descriptors that cannot take the progress: before any output.
check "--progress-fd=57 not open: exit 1, one line" fails 1 'descriptor 57 is not open$' "$Q2S" --progress-fd=57 disk.raw 57>&-
check "--progress-fd read-only: exit 1" fails 1 'descriptor 3 is not open for writing' "$Q2S" --progress-fd=3 disk.raw 3< disk.raw
check "--progress-fd=1 (the image): usage error" fails 2 'descriptor 1 is standard output' "$Q2S" --progress-fd=1 disk.raw
check "--progress-fd=2 (messages): usage error" fails 2 'descriptor 2 is standard error' "$Q2S" --progress-fd=2 disk.raw
check "--progress-fd=0: usage error" fails 2 'descriptor 0 is standard input' "$Q2S" --progress-fd=0 disk.raw
check "--progress-fd=-3: usage error" fails 2 "invalid progress descriptor '-3'" "$Q2S" --progress-fd=-3 disk.raw
check "--progress-fd=3x: usage error" fails 2 "invalid progress descriptor '3x'" "$Q2S" --progress-fd=3x disk.raw
check "a refused descriptor gets nothing" bash -c "'$Q2S' --progress-fd=3 --json disk.raw 3> refused.out 2>/dev/null; [ ! -s refused.out ]"
check "--help names --progress-fd" bash -c "'$Q2S' --help | grep -q -- '--progress-fd=N'"
finish
