# qcow2-to-stdout: `make deps` installs what the build and the tests need on
# Debian, `make` builds, `make check` runs every test.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=
BUILD ?= build

# The version is the public header's, stated there once.
VERSION := $(shell sed -n 's/^\#define Q2S_VERSION "\(.*\)"$$/\1/p' \
	include/qcow2-to-stdout.h)
SONAME = libqcow2-to-stdout.so.0

CC ?= cc
CFLAGS ?= -O2 -g
WERROR ?= -Werror
WARNINGS = -Wall -Wextra $(WERROR) -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wformat=2
# The library sees its own headers; the program only the public one.  Only
# what the public header marks Q2S_API is visible outside the library.
Q2S_CFLAGS = -std=gnu11 $(WARNINGS) -Iinclude -Ilib -I. -fPIC \
	-fvisibility=hidden
PROGRAM_CFLAGS = -std=gnu11 $(WARNINGS) -Iinclude
# libnbd for NBD, zlib and libzstd for compressed clusters, json-c for
# allocation maps.
LIB_PACKAGES = libnbd zlib libzstd json-c
LIB_CFLAGS = $(shell pkg-config --cflags $(LIB_PACKAGES) 2>/dev/null) -pthread
LIB_LIBS = $(shell pkg-config --libs $(LIB_PACKAGES) 2>/dev/null) -pthread
CMOCKA_CFLAGS = $(shell pkg-config --cflags cmocka 2>/dev/null)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null)

LIB_SOURCES = $(wildcard lib/*.c lib/*/*.c lib/*/*/*.c common/*.c)
LIB_HEADERS = $(wildcard include/*.h lib/*.h lib/*/*.h lib/*/*/*.h common/*.h)
LIB_OBJECTS = $(LIB_SOURCES:%.c=$(BUILD)/%.o)
LIBRARY = $(BUILD)/libqcow2-to-stdout.a
SHARED_LIBRARY = $(BUILD)/libqcow2-to-stdout.so.$(VERSION)
# Which symbols the shared library exports: the public header's functions.
EXPORTS = lib/qcow2-to-stdout.map
PROGRAM = $(BUILD)/qcow2-to-stdout
IMPORTER = $(BUILD)/qcow2-from-stdin
# What the two programs share (the command line's pieces), and each main.
PROGRAM_MAINS = programs/qcow2-to-stdout.c programs/qcow2-from-stdin.c
PROGRAM_SHARED_OBJECTS = $(patsubst %.c,$(BUILD)/%.o,\
	$(filter-out $(PROGRAM_MAINS),$(wildcard programs/*.c)))
PROGRAM_OBJECTS = $(BUILD)/programs/qcow2-to-stdout.o $(PROGRAM_SHARED_OBJECTS)
IMPORTER_OBJECTS = $(BUILD)/programs/qcow2-from-stdin.o $(PROGRAM_SHARED_OBJECTS)
UNIT_SOURCES = $(wildcard tests/unit/test_*.c)
UNIT_TESTS = $(UNIT_SOURCES:%.c=$(BUILD)/%)
# Small programs that integration tests run to reach the library directly.
HELPER_SOURCES = $(wildcard tests/helpers/*.c)
HELPERS = $(HELPER_SOURCES:%.c=$(BUILD)/%)
# Fuzz targets, one per parser of untrusted bytes: each built for libFuzzer
# (make fuzz, clang) and as a replay of its corpus (make check, $(CC)).
FUZZ_SOURCES = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES = $(FUZZ_SOURCES:tests/fuzz/fuzz_%.c=%)
FUZZ_REPLAYS = $(FUZZ_NAMES:%=$(BUILD)/tests/fuzz/replay_%)
FUZZ_TARGETS = $(FUZZ_NAMES:%=$(BUILD)/tests/fuzz/fuzz_%)
# What the targets reach besides the library: the programs' shared parsing.
FUZZ_EXTRA_SOURCES = programs/cli.c
FUZZ_BUILD = build-fuzz
FUZZ_SECONDS ?= 60
# Tests of the public interface, built like a program outside the tree:
# against the library and header installed into STAGE, found with
# pkg-config alone.
API_TEST_SOURCES = $(wildcard tests/api/test_*.c)
API_TESTS = $(API_TEST_SOURCES:%.c=$(BUILD)/%)
STAGE = $(abspath $(BUILD))/stage
STAGED_PKG_CONFIG = PKG_CONFIG_PATH=$(STAGE)/usr/lib/pkgconfig \
	PKG_CONFIG_SYSROOT_DIR=$(STAGE) pkg-config

# Debian packages: the build, the unit tests and the QEMU oracles;
# gnutls-bin for the keys and certificates of the NBD TLS tests; clang and
# its runtime (libFuzzer, the sanitizers) for make fuzz.
DEPS = gcc make pkg-config clang libclang-rt-14-dev libcmocka-dev libnbd-dev zlib1g-dev libzstd-dev libjson-c-dev \
	nbdkit gnutls-bin qemu-utils \
	python3 util-linux mount bsdutils time valgrind hyperfine

.PHONY: all deps bench-deps survey-deps demo check check-asan check-valgrind unit-tests bench \
	fuzz fuzz-targets \
	deflate-survey install uninstall clean

all: qcow2-to-stdout qcow2-from-stdin $(SHARED_LIBRARY) $(BUILD)/qcow2-to-stdout.pc

qcow2-to-stdout: $(PROGRAM)
	cp $(PROGRAM) $@

qcow2-from-stdin: $(IMPORTER)
	cp $(IMPORTER) $@

deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEPS)

$(BUILD)/%.o: %.c $(LIB_HEADERS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(Q2S_CFLAGS) $(LIB_CFLAGS) $(CFLAGS) $(CPPFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/programs/%.o: programs/%.c $(wildcard programs/*.h) \
		include/qcow2-to-stdout.h Makefile
	@mkdir -p $(dir $@)
	$(CC) $(PROGRAM_CFLAGS) $(CFLAGS) $(CPPFLAGS) -MMD -MP -c -o $@ $<

$(LIBRARY): $(LIB_OBJECTS)
	rm -f $@
	$(AR) rcs $@ $^

# The program links the library's objects in: no search path to set, and
# the same speed as before the library was shared.
$(PROGRAM): $(PROGRAM_OBJECTS) $(LIBRARY)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIB_LIBS)

$(IMPORTER): $(IMPORTER_OBJECTS) $(LIBRARY)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIB_LIBS)

$(SHARED_LIBRARY): $(LIB_OBJECTS) $(EXPORTS)
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-soname,$(SONAME) \
		-Wl,--version-script=$(EXPORTS) -Wl,--no-undefined \
		-o $@ $(LIB_OBJECTS) $(LIB_LIBS)
	ln -sf $(notdir $@) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $(BUILD)/libqcow2-to-stdout.so

# The .pc file for PREFIX and LIBDIR as they are set (make install writes
# its own, for the PREFIX it installs to).
MAKE_PC = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	-e 's|@REQUIRES_PRIVATE@|$(LIB_PACKAGES)|' lib/qcow2-to-stdout.pc.in

$(BUILD)/qcow2-to-stdout.pc: lib/qcow2-to-stdout.pc.in Makefile
	@mkdir -p $(dir $@)
	$(MAKE_PC) > $@

$(BUILD)/tests/unit/%: tests/unit/%.c $(LIBRARY) $(LIB_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(Q2S_CFLAGS) $(CMOCKA_CFLAGS) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) \
		-o $@ $< $(LIBRARY) $(CMOCKA_LIBS) $(LIB_LIBS)

$(BUILD)/tests/helpers/%: tests/helpers/%.c $(LIBRARY) $(LIB_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(Q2S_CFLAGS) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ $< $(LIBRARY) $(LIB_LIBS)

# A fuzz target's replay of its corpus files, for make check.
$(BUILD)/tests/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c \
		tests/fuzz/fuzz.h $(FUZZ_EXTRA_SOURCES) $(LIBRARY) $(LIB_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(Q2S_CFLAGS) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ $< \
		tests/fuzz/replay.c $(FUZZ_EXTRA_SOURCES) $(LIBRARY) $(LIB_LIBS)

# A fuzz target for libFuzzer: built by make fuzz, with clang, in
# $(FUZZ_BUILD), where the library is built with the fuzzer's coverage.
$(BUILD)/tests/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h \
		$(FUZZ_EXTRA_SOURCES) $(LIBRARY) $(LIB_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(Q2S_CFLAGS) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -fsanitize=fuzzer \
		-o $@ $< $(FUZZ_EXTRA_SOURCES) $(LIBRARY) $(LIB_LIBS)

fuzz-targets: $(FUZZ_TARGETS)

# Every fuzz target for FUZZ_SECONDS each, with ASan and UBSan; fails on
# any finding and names the file that reproduces it.  FUZZ_MERGE=1 also
# adds the inputs that reached new code to tests/fuzz/corpus/.
fuzz:
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=clang \
		CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		LDFLAGS="-fsanitize=address,undefined" fuzz-targets
	Q2S_FUZZ_BUILD=$(abspath $(FUZZ_BUILD)) FUZZ_SECONDS=$(FUZZ_SECONDS) \
		tests/fuzz/run-fuzzers.sh $(FUZZ_NAMES)

# The library, header, .pc file and man pages as `make install` puts them,
# under STAGE with PREFIX=/usr: what the interface tests build against.
$(STAGE)/.installed: $(SHARED_LIBRARY) $(LIBRARY) $(PROGRAM) \
		include/qcow2-to-stdout.h lib/qcow2-to-stdout.pc.in $(wildcard man/*)
	rm -rf $(STAGE)
	$(MAKE) --no-print-directory install DESTDIR=$(STAGE) PREFIX=/usr \
		BUILD=$(BUILD)
	touch $@

$(BUILD)/tests/api/%: tests/api/%.c tests/api/api_test.h $(STAGE)/.installed
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra $(WERROR) $(CFLAGS) $(CPPFLAGS) \
		$$($(STAGED_PKG_CONFIG) --cflags qcow2-to-stdout) $(CMOCKA_CFLAGS) \
		$(LDFLAGS) -o $@ $< \
		$$($(STAGED_PKG_CONFIG) --libs qcow2-to-stdout) $(CMOCKA_LIBS) -pthread

unit-tests: $(UNIT_TESTS) $(HELPERS) $(STAGE)/.installed $(API_TESTS) \
	$(FUZZ_REPLAYS)

# A conversion of a small generated image, checked by qemu-img.
demo: qcow2-to-stdout qcow2-from-stdin
	scripts/demo.sh

# Every test, unit and integration; the last line counts them.
check: $(PROGRAM) $(IMPORTER) unit-tests
	@Q2S_PROGRAM=$(abspath $(PROGRAM)) Q2S_IMPORTER=$(abspath $(IMPORTER)) \
		Q2S_BUILD=$(abspath $(BUILD)) \
		Q2S_STAGE=$(STAGE) Q2S_CC="$(CC)" Q2S_CFLAGS="$(CFLAGS)" \
		Q2S_LDFLAGS="$(LDFLAGS)" tests/run-tests.sh

# The same suite, built with AddressSanitizer and UndefinedBehaviorSanitizer.
check-asan:
	$(MAKE) BUILD=build-asan \
		CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		LDFLAGS="-fsanitize=address,undefined" check

# The integration tests with the program under valgrind.
check-valgrind: $(PROGRAM) $(IMPORTER) unit-tests
	@Q2S_VALGRIND_PROGRAM=$(abspath $(PROGRAM)) \
		Q2S_VALGRIND_IMPORTER=$(abspath $(IMPORTER)) \
		Q2S_VALGRIND=$$(command -v valgrind) \
		Q2S_PROGRAM=$(abspath tests/valgrind-wrapper.sh) \
		Q2S_BUILD=$(abspath $(BUILD)) Q2S_STAGE=$(STAGE) Q2S_CC="$(CC)" \
		Q2S_CFLAGS="$(CFLAGS)" Q2S_LDFLAGS="$(LDFLAGS)" tests/run-tests.sh

# What make bench needs besides deps to compare with the reference script
# on other formats: qemu-storage-daemon and FUSE; for the compressed
# section, mke2fs to build its filesystem image and zstd to compress the
# reference's stream; for the nbd section, nbdcopy (libnbd-bin), which the
# tool is timed against.  The xapi section's losetup (mount) and qemu-img
# (qemu-utils), and the nbd section's nbdkit, are in deps too, and listed
# here so that this target alone is enough for them.
bench-deps:
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		qemu-system-common fuse3 e2fsprogs zstd mount qemu-utils libnbd-bin nbdkit

# The example that reads an image by ranges, for the bench: linked with the
# shared library of this build.
$(BUILD)/examples/%: examples/%.c $(SHARED_LIBRARY)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(WARNINGS) -Iinclude $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) \
		-o $@ $< -L$(BUILD) -lqcow2-to-stdout -Wl,-rpath,$(abspath $(BUILD))

# The import section's floor: standard input spliced into a file.
$(BUILD)/bench/pipe-floor: bench/pipe-floor.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARNINGS) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ $<

bench: $(PROGRAM) $(IMPORTER) $(BUILD)/examples/qcow2-ranges $(BUILD)/bench/pipe-floor
	Q2S_PROGRAM=$(abspath $(PROGRAM)) Q2S_BUILD=$(abspath $(BUILD)) \
		Q2S_RANGES=$(abspath $(BUILD)/examples/qcow2-ranges) \
		Q2S_PIPE_FLOOR=$(abspath $(BUILD)/bench/pipe-floor) bench/bench.sh

# What make deflate-survey needs besides deps: the other deflate libraries
# it compares with zlib and zstd.
survey-deps:
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		libisal-dev libdeflate-dev

# The survey of compressors for qcow2 clusters behind the zlib choice; built
# only on request, as neither the program nor the tests need ISA-L or libdeflate.
SURVEY_PACKAGES = zlib libzstd libisal libdeflate
deflate-survey:
	@mkdir -p $(BUILD)
	$(CC) $(Q2S_CFLAGS) $(shell pkg-config --cflags $(SURVEY_PACKAGES)) $(CFLAGS) \
		$(CPPFLAGS) $(LDFLAGS) -o $(BUILD)/deflate-survey bench/deflate-survey.c \
		$(shell pkg-config --libs $(SURVEY_PACKAGES))
	@echo "run: $(BUILD)/deflate-survey [--limit=MiB] IMAGE CLUSTER_SIZE" \
		"zlib:6 isal:1 zstd:3 libdeflate:6 ..."

# The program, the shared and static libraries, the header, the .pc file
# and the man pages; PREFIX, LIBDIR, ... and DESTDIR as usual.  The .pc
# file is made for this PREFIX and LIBDIR.
install: $(PROGRAM) $(IMPORTER) $(SHARED_LIBRARY) $(LIBRARY)
	install -D -m 755 $(PROGRAM) $(DESTDIR)$(BINDIR)/qcow2-to-stdout
	install -D -m 755 $(IMPORTER) $(DESTDIR)$(BINDIR)/qcow2-from-stdin
	install -D -m 755 $(SHARED_LIBRARY) \
		$(DESTDIR)$(LIBDIR)/$(notdir $(SHARED_LIBRARY))
	ln -sf $(notdir $(SHARED_LIBRARY)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libqcow2-to-stdout.so
	install -D -m 644 $(LIBRARY) $(DESTDIR)$(LIBDIR)/libqcow2-to-stdout.a
	install -D -m 644 include/qcow2-to-stdout.h \
		$(DESTDIR)$(INCLUDEDIR)/qcow2-to-stdout.h
	install -d $(DESTDIR)$(PKGCONFIGDIR)
	$(MAKE_PC) > $(DESTDIR)$(PKGCONFIGDIR)/qcow2-to-stdout.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/qcow2-to-stdout.pc
	install -D -m 644 man/qcow2-to-stdout.1 \
		$(DESTDIR)$(MANDIR)/man1/qcow2-to-stdout.1
	install -D -m 644 man/qcow2-from-stdin.1 \
		$(DESTDIR)$(MANDIR)/man1/qcow2-from-stdin.1
	install -D -m 644 man/libqcow2-to-stdout.3 \
		$(DESTDIR)$(MANDIR)/man3/libqcow2-to-stdout.3

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/qcow2-to-stdout \
		$(DESTDIR)$(BINDIR)/qcow2-from-stdin \
		$(DESTDIR)$(LIBDIR)/$(notdir $(SHARED_LIBRARY)) \
		$(DESTDIR)$(LIBDIR)/$(SONAME) \
		$(DESTDIR)$(LIBDIR)/libqcow2-to-stdout.so \
		$(DESTDIR)$(LIBDIR)/libqcow2-to-stdout.a \
		$(DESTDIR)$(INCLUDEDIR)/qcow2-to-stdout.h \
		$(DESTDIR)$(PKGCONFIGDIR)/qcow2-to-stdout.pc \
		$(DESTDIR)$(MANDIR)/man1/qcow2-to-stdout.1 \
		$(DESTDIR)$(MANDIR)/man1/qcow2-from-stdin.1 \
		$(DESTDIR)$(MANDIR)/man3/libqcow2-to-stdout.3

clean:
	rm -rf build build-asan $(FUZZ_BUILD) $(BUILD) qcow2-to-stdout qcow2-from-stdin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
