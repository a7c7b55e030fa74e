# Makefile: the commands people type; CMake does the building.
# make deps | make | make run | make test | make check-includes | make format | make check-format
# | make fuzz | make bench | make bench-compare | make install [PREFIX=/usr/local] [DESTDIR=]
SHELL := /bin/bash
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS ?= $(shell nproc)
PY := /usr/bin/python3
ARGS ?=

DEB_PACKAGES := build-essential cmake pkg-config clang libclang-rt-14-dev \
	libsqlite3-dev libssl-dev libsodium-dev libinih-dev libc-ares-dev sqlite3 \
	clang-format python3 python3-pytest sip-tester sipsak baresip-core sox iproute2 util-linux dnsmasq-base \
	kamailio kamailio-sqlite-modules kamailio-tls-modules valgrind nftables rtpengine-daemon stunnel4 openssl \
	libwslay-dev chromium nodejs sngrep libsystemd-dev groff-base man-db libmicrohttpd-dev libjansson-dev prometheus strace

FORMAT_FILES = $(shell git ls-files 'src/*.c' 'src/*.h' 'tests/unit/*.c' 'tests/unit/*.h' 'tests/fuzz/*.c' 2>/dev/null)

# make install: the binary, the systemd unit (with the binary's path in it), the sysusers.d
# entry, the man pages, and an example /etc/parley/parley.conf if there is none.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
SYSCONFDIR ?= /etc

.PHONY: all deps build run test install check-includes format check-format unit integration fuzz fuzz-build asan bench bench-compare clean

all: build

deps:
	@bash scripts/deps.sh $(DEB_PACKAGES)
	@bash scripts/npm-deps.sh tests/browser

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

asan:
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPARLEY_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

run: deps build
	./$(BUILD)/parley serve $(ARGS)

# Which way the includes run (DESIGN §3), first and in well under a second: the checker's
# self-test, then the tree against the tables at the top of scripts/check_includes.py.
check-includes:
	@$(PY) scripts/check_includes.py --self-test
	@$(PY) scripts/check_includes.py

# .clang-format is the tree's style: format applies it, check-format fails on any file it
# would change (part of make test, after deps has installed clang-format).
format:
	@clang-format -i $(FORMAT_FILES)

check-format:
	@clang-format --dry-run -Werror $(FORMAT_FILES) && echo "format check: $(words $(FORMAT_FILES)) files as .clang-format says"

# The include check comes first (it needs no build). Unit tests and the fuzz-corpus replay
# run under ASan/UBSan; the integration tests drive the sanitized binary too, so a leak or
# overflow anywhere fails the run.
test: check-includes deps check-format build asan
	@cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)
	@PARLEY_BIN=$(CURDIR)/$(ASAN_BUILD)/parley $(PY) -m pytest -q tests/integration

unit: asan
	@cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)

integration: asan
	@PARLEY_BIN=$(CURDIR)/$(ASAN_BUILD)/parley $(PY) -m pytest -q tests/integration $(ARGS)

fuzz-build:
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPARLEY_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)

# make fuzz FUZZ_SECONDS=1800 runs the fuzzers on scratch corpus copies, sharing the time;
# FUZZ_TARGETS="fuzz_server" picks which (default: every tests/fuzz/fuzz_*.c).
FUZZ_SECONDS ?= 600
fuzz: fuzz-build
	@bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

bench: deps build
	@bash bench/bench.sh parley

bench-compare: deps build
	@bash bench/bench.sh parley kamailio

install: build
	install -D -m 0755 $(BUILD)/parley $(DESTDIR)$(BINDIR)/parley
	install -d $(DESTDIR)$(UNITDIR)
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' packaging/parley.service.in > $(DESTDIR)$(UNITDIR)/parley.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/parley.service
	install -D -m 0644 packaging/parley.sysusers $(DESTDIR)$(SYSUSERSDIR)/parley.conf
	install -D -m 0644 packaging/man/parley.1 $(DESTDIR)$(MANDIR)/man1/parley.1
	install -D -m 0644 packaging/man/parley.conf.5 $(DESTDIR)$(MANDIR)/man5/parley.conf.5
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/parley/parley.conf ]; then \
		echo "kept $(DESTDIR)$(SYSCONFDIR)/parley/parley.conf"; \
	else \
		install -D -m 0644 packaging/parley.conf $(DESTDIR)$(SYSCONFDIR)/parley/parley.conf; \
	fi

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
