#!/bin/sh
# Runs the program under valgrind for `make check-valgrind`: any memory
# error or leak turns into exit status 99, which the tests see as a failure.
# A test may start the program with stderr closed: valgrind, which cannot
# start without somewhere to report, then reports to /dev/null (the exit
# status still says it found something), and the program still starts
# with descriptor 2 closed.
log=--log-fd=2
if [ ! -e "/proc/$$/fd/2" ]; then
    log=--log-file=/dev/null
fi
exec "${Q2S_VALGRIND:-valgrind}" -q "$log" --error-exitcode=99 --leak-check=full \
    --read-inline-info=no --vgdb=no \
    --errors-for-leak-kinds=definite,indirect,possible \
    "$Q2S_VALGRIND_PROGRAM" "$@"
