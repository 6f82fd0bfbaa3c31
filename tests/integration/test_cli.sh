# The command line: help, version, progress, drop-in option forms.
. "$(dirname "$0")/lib.sh"

check "--help exits 0 and shows usage" bash -c "'$Q2S' --help | grep -q '^Usage: qcow2-to-stdout'"
check "-h is --help" bash -c "'$Q2S' -h | grep -q -- '--measure'"
check "--version" bash -c "'$Q2S' --version | grep -Eq '^qcow2-to-stdout [0-9]+\.[0-9]+'"

make_image disk.raw $((2 * 1024 * 1024 + 100))
"$Q2S" -c 4096 disk.raw > plain.qcow2
"$Q2S" -c 4096 -p disk.raw > progress.qcow2 2> progress.err
check "-p: same stream" cmp plain.qcow2 progress.qcow2
check "-p: scanning reaches 100%" grep -q "scanning (100.00/100%)" progress.err
check "-p: writing reaches 100%" grep -q "writing (100.00/100%)" progress.err
"$Q2S" -c 4096 --progress --offset=1000 --length=5000 disk.raw > part.bin 2> part.err
check "--progress with a range: counts the range" grep -q "writing (100.00/100%)" part.err
check "--progress with a range: the range" cmp part.bin <(tail -c +1001 plain.qcow2 | head -c 5000)
"$Q2S" -c 4096 disk.raw > quiet.qcow2 2> quiet.err
check "no progress unless asked" test ! -s quiet.err

# The reference's option forms: attached values, options after the input.
"$Q2S" -c4096 disk.raw > attached.qcow2
check "attached option values (-c4096)" cmp plain.qcow2 attached.qcow2
"$Q2S" disk.raw -c 4096 > after.qcow2
check "options after the input" cmp plain.qcow2 after.qcow2
"$Q2S" -f raw -c 4K disk.raw > suffix.qcow2
check "-f raw and -c 4K" cmp plain.qcow2 suffix.qcow2
"$Q2S" -c 4096 -- disk.raw > dashdash.qcow2
check "-- ends the options" cmp plain.qcow2 dashdash.qcow2

# Numbers are digits (and a suffix, or a sign where one is taken), nothing
# around them: fuzz findings, "0 " was taken as 0 and " 3" as 3.
check "a size followed by a space is a usage error" fails 2 "offset" "$Q2S" --offset='0 ' disk.raw
check "a size of spaces and a suffix is a usage error" fails 2 "offset" "$Q2S" --offset='0 K' disk.raw
check "a number after a space is a usage error" fails 2 "compress" "$Q2S" --compress --compress-level=' 3' disk.raw
check "a descriptor after a space is a usage error" fails 2 "invalid descriptor" "$Q2S" --json-header-map ' 5' --json-header-info 6 disk.raw
"$Q2S" -c 4096 --offset=+0 disk.raw > signed.qcow2 2> signed.err
check "a size takes no sign" test "$(cat signed.err | head -c 16)" = "qcow2-to-stdout:"
"$Q2S" -c 4096 --compress --compress-level=+3 disk.raw > level.qcow2
"$Q2S" -c 4096 --compress --compress-level=3 disk.raw > level3.qcow2
check "a level may take a + sign" cmp level.qcow2 level3.qcow2
finish
