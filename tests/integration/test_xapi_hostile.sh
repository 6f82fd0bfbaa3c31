# The XAPI fork's options given by a careless or lying caller: descriptors
# that clash with each other or with the standard ones, and options that
# cannot go together.  Each is one clear line before any output.
. "$(dirname "$0")/lib.sh"

if ! have qemu-img; then
    skip "the XAPI fork's options, misused" "needs qemu-img (qemu-utils)"
    finish; exit 0
fi

truncate -s 8M in.raw base.raw
printf 'data' | dd of=in.raw bs=1 seek=5M conv=notrunc status=none
qemu-img convert -O qcow2 in.raw in.qcow2
qemu-img map --output=json in.qcow2 > in.map
qemu-img info --output=json in.qcow2 > in.info

# The same descriptor for two options: the first to reach its end closes
# it, and the second read would fail as a "Bad file descriptor".
check "one descriptor for two JSON options" \
    fails 2 "descriptor 3 is given to both --json-header-map and --json-header-info" \
    "$Q2S" --json-header-map 3 --json-header-info 3 in.raw 3<in.map
check "one descriptor for a JSON option and --map" \
    fails 2 "descriptor 3 is given to both --json-header-diff-map and --map" \
    "$Q2S" --diff in.raw --json-header-diff-map 3 --json-header-diff-info 4 \
    --map fd:3 in.raw 3<in.map 4<in.info
# (A copy: the progress would be written into the info.)
cp in.info rw.info
check "one descriptor for a JSON option and --progress-fd" \
    fails 2 "descriptor 4 is given to both --json-header-info and --progress-fd" \
    "$Q2S" --json-header-map 3 --json-header-info 4 --progress-fd 4 in.raw \
    3<in.map 4<>rw.info

# Standard input is the input (or the base) when it is "-".
check "--json-header-map 0 with the input -" \
    fails 2 "--json-header-map 0 and the input - would both read standard input" \
    "$Q2S" --json-header-map 0 --json-header-info 4 - <in.raw 4<in.info
check "--json-header-diff-info 0 with --diff -" \
    fails 2 "--json-header-diff-info 0 and the base - would both read standard input" \
    "$Q2S" --diff - --json-header-map 3 --json-header-info 4 \
    --json-header-diff-map 5 --json-header-diff-info 0 in.raw \
    <base.raw 3<in.map 4<in.info 5<in.map

# Standard error carries the messages: reading it would fail, and closing
# it, as the reader does, would lose the message that says so.
check "--json-header-map 2" \
    fails 2 "descriptor 2 is standard error" \
    "$Q2S" --json-header-map 2 --json-header-info 4 in.raw 4<in.info

# A descriptor open for writing only reads as EBADF: say what is wrong.
check "a write-only descriptor" \
    fails 1 "--json-header-map 3: not open for reading" \
    "$Q2S" --json-header-map 3 --json-header-info 4 in.raw 3>w.tmp 4<in.info

# -R allocates every cluster of the input: a delta would be a full image.
check "--diff with -R" fails 2 "--diff has no use with -R" \
    "$Q2S" -R --diff base.raw in.raw

finish
