# The library as a program outside the tree sees it: installed with
# `make install DESTDIR=...` (the Makefile's check targets stage it in
# Q2S_STAGE), found with pkg-config alone, exporting its interface and
# nothing else.
source "$(dirname "$0")/lib.sh"

stage=${Q2S_STAGE:-}
if [ -z "$stage" ] || [ ! -e "$stage/.installed" ]; then
    skip "the installed library" "no staged install (run through make check)"
    finish
    exit 0
fi
cc=${Q2S_CC:-cc}
# A sanitizer build's flags, which a program linked with its library needs.
read -r -a build_flags <<<"${Q2S_CFLAGS:-} ${Q2S_LDFLAGS:-}"
export PKG_CONFIG_PATH=$stage/usr/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$stage
export LD_LIBRARY_PATH=$stage/usr/lib
header=$stage/usr/include/qcow2-to-stdout.h
version=$(sed -n 's/^#define Q2S_VERSION "\(.*\)"$/\1/p' "$top/include/qcow2-to-stdout.h")

check "make install put the program, libraries, header, .pc file and man pages in place" \
    bash -c "cd '$stage/usr' && ls bin/qcow2-to-stdout lib/libqcow2-to-stdout.so.$version \
        lib/libqcow2-to-stdout.so.0 lib/libqcow2-to-stdout.so lib/libqcow2-to-stdout.a \
        include/qcow2-to-stdout.h lib/pkgconfig/qcow2-to-stdout.pc \
        share/man/man1/qcow2-to-stdout.1 share/man/man3/libqcow2-to-stdout.3"
check "the shared library's SONAME is libqcow2-to-stdout.so.0" \
    bash -c "readelf -d '$stage/usr/lib/libqcow2-to-stdout.so.0' | grep -q 'SONAME.*\[libqcow2-to-stdout.so.0\]'"
check "pkg-config gives the header's version" \
    test "$(pkg-config --modversion qcow2-to-stdout)" = "$version"
check "pkg-config lists libnbd, zlib, libzstd and json-c as private requirements" \
    bash -c "pkg-config --print-requires-private qcow2-to-stdout | tr '\n' ' ' | grep -q 'libnbd zlib libzstd json-c'"

# The functions the header declares, the version script's list and the
# dynamic symbols the library defines: one list three times.
# Every function declaration, found without trusting the Q2S_API marks:
# comments out, one declaration a line, typedefs of callbacks left out.
cpp -P -fpreprocessed "$header" 2>/dev/null | tr '\n' ' ' | sed 's/;/;\n/g' |
    grep -v typedef | grep -o 'q2s_[a-z0-9_]*[[:space:]]*(' | sed 's/[[:space:](]//g' |
    sort -u > declared
grep -o '^Q2S_API [^(]*(' "$header" | sed 's/($//; s/.*[ *]//' | sort > marked
sed -n 's/^    \(q2s_[a-z0-9_]*\);$/\1/p' "$top/lib/qcow2-to-stdout.map" | sort > listed
nm -D --defined-only "$stage/usr/lib/libqcow2-to-stdout.so.0" |
    awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' | sort > exported
check "the library exports exactly the functions the header declares" \
    diff declared exported
check "the version script lists exactly those functions" diff declared listed
check "every function the header declares is marked Q2S_API" diff declared marked
check "the header declares dozens of functions (the lists are not empty)" \
    test "$(wc -l < declared)" -ge 40

cat > alone.c <<'C'
#include <qcow2-to-stdout.h>
#if Q2S_VERSION_NUMBER < 200
#error "Q2S_VERSION_NUMBER"
#endif
int main(void) { return q2s_version_number() == Q2S_VERSION_NUMBER ? 0 : 1; }
C
check "the header compiles on its own as C11 with -Wall -Wextra -Werror -pedantic" \
    "$cc" -std=c11 -pedantic -Wall -Wextra -Werror $(pkg-config --cflags qcow2-to-stdout) \
        -fsyntax-only alone.c
check "the header compiles after <stdio.h> as strict POSIX C99 with -pedantic" \
    bash -c "printf '#include <stdio.h>\\n' | cat - alone.c > alone-c99.c &&
        '$cc' -std=c99 -D_POSIX_C_SOURCE=200112L -pedantic -Wall -Wextra -Werror \
            $(pkg-config --cflags qcow2-to-stdout) -fsyntax-only alone-c99.c"
if have g++; then
    cp alone.c alone.cpp
    check "the header compiles as C++98 with -pedantic -Werror" \
        g++ -std=c++98 -pedantic -Wall -Wextra -Werror $(pkg-config --cflags qcow2-to-stdout) \
            -fsyntax-only alone.cpp
    check "the header compiles on its own as C++ with -Wall -Wextra -Werror" \
        g++ -std=c++11 -Wall -Wextra -Werror $(pkg-config --cflags qcow2-to-stdout) \
            -fsyntax-only alone.cpp
    check "a C++ program links against the library (extern \"C\")" \
        g++ -std=c++11 -Wall -Wextra -Werror "${build_flags[@]}" -o alone-cpp alone.cpp \
            $(pkg-config --cflags --libs qcow2-to-stdout)
    check "the C++ program runs and the runtime version is the header's" ./alone-cpp
else
    skip "the header as C++" "g++ is not installed"
fi
check "a program links against the static library with pkg-config --static" \
    "$cc" -std=c11 -Wall -Wextra -Werror "${build_flags[@]}" -o alone-static alone.c \
        $(pkg-config --cflags qcow2-to-stdout) "$stage/usr/lib/libqcow2-to-stdout.a" \
        $(pkg-config --libs-only-other --libs-only-l --static qcow2-to-stdout | sed 's/-lqcow2-to-stdout//')

# What the README shows a program writing compiles as it is.
sed -n '/^```c$/,/^```$/p' "$top/README.md" | sed '1d;$d' > readme.c
check "the README's C example compiles against the installed header" \
    "$cc" -std=c11 -Wall -Wextra -Werror $(pkg-config --cflags qcow2-to-stdout) -c \
        -o readme.o readme.c

# The example, built out of the tree with pkg-config alone.
mkdir example
cp "$top/examples/qcow2-ranges.c" example/
check "examples/qcow2-ranges.c builds out of the tree with pkg-config alone" \
    "$cc" -std=c11 -Wall -Wextra -Werror "${build_flags[@]}" -o example/qcow2-ranges \
        example/qcow2-ranges.c $(pkg-config --cflags --libs qcow2-to-stdout)
make_image disk.raw $((5 * 1024 * 1024 + 1536))
"$Q2S" disk.raw > streamed.qcow2
check "the example's image, read in 1 MiB ranges last first, is the stream's bytes" \
    bash -c './example/qcow2-ranges disk.raw ranges.qcow2 >/dev/null && cmp streamed.qcow2 ranges.qcow2'
check "in 4093-byte ranges too" \
    bash -c './example/qcow2-ranges disk.raw odd.qcow2 4093 >/dev/null && cmp streamed.qcow2 odd.qcow2'
if have qemu-img; then
    check "the example's image is valid and holds the disk" valid_image ranges.qcow2 disk.raw
else
    skip "the example's image checked by qemu-img" "qemu-img is not installed"
fi
check "the example reports a missing input with the library's message and code" \
    bash -c '! ./example/qcow2-ranges missing.raw out.qcow2 2> err.txt &&
        grep -qx "qcow2-ranges: missing.raw: missing.raw: No such file or directory (errno 2)" err.txt'


finish
