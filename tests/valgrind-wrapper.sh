#!/bin/sh
# Runs the program under valgrind for `make check-valgrind`: any memory
# error or leak turns into exit status 99, which the tests see as a failure.
exec "${Q2S_VALGRIND:-valgrind}" -q --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite,indirect,possible \
    "$Q2S_VALGRIND_PROGRAM" "$@"
