# qcow2-to-stdout: `make deps` installs what the build and the tests need on
# Debian, `make` builds, `make check` runs every test.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=
BUILD ?= build

CC ?= cc
CFLAGS ?= -O2 -g
WERROR ?= -Werror
Q2S_CFLAGS = -std=gnu11 -Wall -Wextra $(WERROR) -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wformat=2 -Iinclude -Ilib -I.
# libnbd for NBD, zlib and libzstd for compressed clusters.
LIB_PACKAGES = libnbd zlib libzstd
LIB_CFLAGS = $(shell pkg-config --cflags $(LIB_PACKAGES) 2>/dev/null) -pthread
LIB_LIBS = $(shell pkg-config --libs $(LIB_PACKAGES) 2>/dev/null) -pthread
CMOCKA_CFLAGS = $(shell pkg-config --cflags cmocka 2>/dev/null)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null)

LIB_SOURCES = $(wildcard lib/*.c lib/*/*.c common/*.c)
LIB_HEADERS = $(wildcard include/*.h lib/*.h lib/*/*.h common/*.h)
LIB_OBJECTS = $(LIB_SOURCES:%.c=$(BUILD)/%.o)
LIBRARY = $(BUILD)/libqcow2-to-stdout.a
PROGRAM = $(BUILD)/qcow2-to-stdout
UNIT_SOURCES = $(wildcard tests/unit/test_*.c)
UNIT_TESTS = $(UNIT_SOURCES:%.c=$(BUILD)/%)
# Small programs that integration tests run to reach the library directly.
HELPER_SOURCES = $(wildcard tests/helpers/*.c)
HELPERS = $(HELPER_SOURCES:%.c=$(BUILD)/%)

# Debian packages: the build, the unit tests and the QEMU oracles.
DEPS = gcc make pkg-config libcmocka-dev libnbd-dev zlib1g-dev libzstd-dev nbdkit qemu-utils \
	python3 util-linux mount bsdutils time valgrind hyperfine

.PHONY: all deps bench-deps survey-deps demo check check-asan check-valgrind unit-tests bench \
	deflate-survey install uninstall clean

all: qcow2-to-stdout

qcow2-to-stdout: $(PROGRAM)
	cp $(PROGRAM) $@

deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEPS)

$(BUILD)/%.o: %.c $(LIB_HEADERS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(Q2S_CFLAGS) $(LIB_CFLAGS) $(CFLAGS) $(CPPFLAGS) -MMD -c -o $@ $<

$(LIBRARY): $(LIB_OBJECTS)
	$(AR) rcs $@ $^

$(PROGRAM): $(BUILD)/programs/qcow2-to-stdout.o $(LIBRARY)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIB_LIBS)

$(BUILD)/tests/unit/%: tests/unit/%.c $(LIBRARY) $(LIB_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(Q2S_CFLAGS) $(CMOCKA_CFLAGS) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) \
		-o $@ $< $(LIBRARY) $(CMOCKA_LIBS) $(LIB_LIBS)

$(BUILD)/tests/helpers/%: tests/helpers/%.c $(LIBRARY) $(LIB_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(Q2S_CFLAGS) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ $< $(LIBRARY) $(LIB_LIBS)

unit-tests: $(UNIT_TESTS) $(HELPERS)

# A conversion of a small generated image, checked by qemu-img.
demo: qcow2-to-stdout
	scripts/demo.sh

# Every test, unit and integration; the last line counts them.
check: $(PROGRAM) unit-tests
	@Q2S_PROGRAM=$(abspath $(PROGRAM)) Q2S_BUILD=$(abspath $(BUILD)) \
		tests/run-tests.sh

# The same suite, built with AddressSanitizer and UndefinedBehaviorSanitizer.
check-asan:
	$(MAKE) BUILD=build-asan \
		CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		LDFLAGS="-fsanitize=address,undefined" check

# The integration tests with the program under valgrind.
check-valgrind: $(PROGRAM) unit-tests
	@Q2S_VALGRIND_PROGRAM=$(abspath $(PROGRAM)) \
		Q2S_VALGRIND=$$(command -v valgrind) \
		Q2S_PROGRAM=$(abspath tests/valgrind-wrapper.sh) \
		Q2S_BUILD=$(abspath $(BUILD)) tests/run-tests.sh

# What make bench needs besides deps to compare with the reference script
# on other formats: qemu-storage-daemon and FUSE; for the compressed
# section, mke2fs to build its filesystem image and zstd to compress the
# reference's stream.
bench-deps:
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		qemu-system-common fuse3 e2fsprogs zstd

bench: $(PROGRAM)
	Q2S_PROGRAM=$(abspath $(PROGRAM)) Q2S_BUILD=$(abspath $(BUILD)) bench/bench.sh

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

install: $(PROGRAM)
	install -D -m 755 $(PROGRAM) $(DESTDIR)$(BINDIR)/qcow2-to-stdout
	install -D -m 644 man/qcow2-to-stdout.1 \
		$(DESTDIR)$(MANDIR)/man1/qcow2-to-stdout.1

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/qcow2-to-stdout \
		$(DESTDIR)$(MANDIR)/man1/qcow2-to-stdout.1

clean:
	rm -rf build build-asan qcow2-to-stdout

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
