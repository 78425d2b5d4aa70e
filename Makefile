# Makefile: openova-flow-fcgi. Targets: all check run install uninstall clean,
# plus check-asan, check-valgrind. V=1 shows the commands.

PREFIX ?= /usr/local
DESTDIR ?=
BUILD ?= build
VERSION := 0.1.0

CC ?= cc
PKGS := fcgi libcurl json-c
WARNINGS := -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wwrite-strings -Wconversion -Wno-sign-conversion -Werror
OPT ?= -O2 -g
CPPFLAGS += -I. -D_GNU_SOURCE -DOPENOVA_VERSION='"$(VERSION)"' -MMD -MP
CFLAGS += $(OPT) $(WARNINGS) -pthread
# libfcgi ships no .pc file on Debian: fall back to -lfcgi.
# Debian's cjose.pc requires jansson.pc, which libcjose-dev does not pull in
# (cjose's headers never include jansson): fall back to -lcjose.
PKG_CFLAGS := $(shell pkg-config --cflags libcurl json-c 2>/dev/null) $(shell pkg-config --cflags libmicrohttpd 2>/dev/null) \
	$(shell pkg-config --cflags cjose libcrypto 2>/dev/null || pkg-config --cflags libcrypto)
PKG_LIBS := $(shell pkg-config --libs libcurl json-c 2>/dev/null) $(shell pkg-config --libs fcgi 2>/dev/null || echo -lfcgi) \
	$(shell pkg-config --libs cjose libcrypto 2>/dev/null || echo -lcjose $$(pkg-config --libs libcrypto))
CFLAGS += $(PKG_CFLAGS)
LDLIBS += $(PKG_LIBS) -pthread
SAN ?=
CFLAGS += $(SAN)
LDFLAGS += $(SAN)

ifeq ($(V),1)
Q :=
else
Q := @
endif

BIN := $(BUILD)/openova-flow-fcgi

CORE_OBJS := \
	$(BUILD)/core/buf.o \
	$(BUILD)/core/cidr.o \
	$(BUILD)/core/clock.o \
	$(BUILD)/core/config.o \
	$(BUILD)/core/duration.o \
	$(BUILD)/core/error.o \
	$(BUILD)/core/http.o \
	$(BUILD)/core/log.o \
	$(BUILD)/core/metrics.o \
	$(BUILD)/fcgi/listen.o \
	$(BUILD)/fcgi/lobby.o \
	$(BUILD)/fcgi/record.o \
	$(BUILD)/fcgi/request.o \
	$(BUILD)/fcgi/response.o \
	$(BUILD)/fcgi/server.o \
	$(BUILD)/auth/auth.o \
	$(BUILD)/auth/jwt.o \
	$(BUILD)/auth/tokens.o \
	$(BUILD)/auth/watched_file.o \
	$(BUILD)/handlers/dispatch.o \
	$(BUILD)/handlers/events.o \
	$(BUILD)/handlers/ops.o \
	$(BUILD)/handlers/request_log.o \
	$(BUILD)/handlers/route.o \
	$(BUILD)/handlers/snapshot.o \
	$(BUILD)/handlers/sse.o \
	$(BUILD)/handlers/stream.o \
	$(BUILD)/handlers/stream_loop.o \
	$(BUILD)/handlers/upstream.o

MAIN_OBJ := $(BUILD)/main.o

# The local flow server (issue 3): a development and test upstream.
DEV_BIN := $(BUILD)/openova-flow-devserver
DEV_OBJS := \
	$(BUILD)/core/duration.o \
	$(BUILD)/devserver/config.o \
	$(BUILD)/devserver/error.o \
	$(BUILD)/devserver/flow.o \
	$(BUILD)/devserver/fold.o \
	$(BUILD)/devserver/http.o \
	$(BUILD)/devserver/message.o \
	$(BUILD)/devserver/ring.o \
	$(BUILD)/devserver/route.o
DEV_MAIN_OBJ := $(BUILD)/devserver/main.o
DEV_UNIT_TESTS := \
	$(BUILD)/tests/unit/test_devserver_config \
	$(BUILD)/tests/unit/test_devserver_flow \
	$(BUILD)/tests/unit/test_devserver_message \
	$(BUILD)/tests/unit/test_devserver_ring \
	$(BUILD)/tests/unit/test_devserver_route

UNIT_TESTS := \
	$(BUILD)/tests/unit/test_auth \
	$(BUILD)/tests/unit/test_config \
	$(BUILD)/tests/unit/test_duration \
	$(BUILD)/tests/unit/test_route \
	$(BUILD)/tests/unit/test_buf \
	$(BUILD)/tests/unit/test_cidr \
	$(BUILD)/tests/unit/test_dispatch \
	$(BUILD)/tests/unit/test_error \
	$(BUILD)/tests/unit/test_http \
	$(BUILD)/tests/unit/test_log \
	$(BUILD)/tests/unit/test_metrics \
	$(BUILD)/tests/unit/test_ops \
	$(BUILD)/tests/unit/test_sse \
	$(BUILD)/tests/unit/test_record \
	$(BUILD)/tests/unit/test_request \
	$(BUILD)/tests/unit/test_response \
	$(BUILD)/tests/unit/test_upstream \
	$(BUILD)/tests/unit/test_tokens \
	$(BUILD)/tests/unit/test_watched_file \
	$(BUILD)/tests/unit/test_jwt

PYTEST ?= /usr/bin/python3 -m pytest
# The Python suites run the binaries of this build tree (check-asan's too).
TEST_ENV = OPENOVA_FLOW_FCGI_BIN=$(abspath $(BIN)) OPENOVA_FLOW_DEVSERVER_BIN=$(abspath $(DEV_BIN)) $(SAN_ENV)
# A sanitized app keeps freed memory in ASan's quarantine (256 MiB by
# default), which tests that compare the app's memory before and after a
# load would read as growth: a small quarantine, and the tests are told.
# Options set by the caller come after ours and win.
SAN_ENV = $(if $(SAN),OPENOVA_TEST_SANITIZED=1 ASAN_OPTIONS=quarantine_size_mb=8$${ASAN_OPTIONS:+:$$ASAN_OPTIONS})

.PHONY: all check layout unit contract integration browser run demo-events install uninstall clean check-asan check-valgrind integration-valgrind

all: $(BIN) $(DEV_BIN)

$(BIN): $(MAIN_OBJ) $(BUILD)/libproxy.a
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libproxy.a: $(CORE_OBJS)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(DEV_BIN): $(DEV_MAIN_OBJ) $(BUILD)/libdevserver.a
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs libmicrohttpd) $(LDLIBS)

$(BUILD)/libdevserver.a: $(DEV_OBJS)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/tests/unit/test_devserver_%: tests/unit/test_devserver_%.c $(BUILD)/libdevserver.a
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(shell pkg-config --cflags cmocka libmicrohttpd) -o $@ $< $(BUILD)/libdevserver.a \
		$(LDFLAGS) $(shell pkg-config --libs libmicrohttpd) $(LDLIBS) $(shell pkg-config --libs cmocka)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/unit/%: tests/unit/%.c $(BUILD)/libproxy.a
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(shell pkg-config --cflags cmocka) -o $@ $< $(BUILD)/libproxy.a \
		$(LDFLAGS) $(LDLIBS) $(shell pkg-config --libs cmocka)

unit: $(UNIT_TESTS) $(DEV_UNIT_TESTS)
	$(Q)set -e; for t in $(UNIT_TESTS) $(DEV_UNIT_TESTS); do echo "== $$t"; $$t; done

integration: all
	$(Q)$(TEST_ENV) $(PYTEST) -q tests/integration

contract: all
	$(Q)$(TEST_ENV) $(PYTEST) -q tests/contract

# The live page in headless Chromium through lighttpd, the proxy and the
# devserver (tools/install-deps.sh installs chromium and playwright-core).
browser: all
	$(Q)$(TEST_ENV) $(PYTEST) -q tests/browser

# What the tests need is installed first when missing (Debian 12; sudo when
# not root), so that the README's test command works on a fresh machine.
check:
	$(Q)tools/install-deps.sh --tests-if-missing
	$(Q)$(MAKE) --no-print-directory layout unit contract integration browser

# The rules of ARCHITECTURE.md a machine can check: includes only point down
# (core < fcgi, auth < handlers < main.c), no function over 80 lines.
layout:
	$(Q)tools/check-layout

# The same tests with AddressSanitizer and UndefinedBehaviorSanitizer, in a
# build tree of their own.
check-asan:
	$(MAKE) BUILD=build/asan OPT="-O1 -g -fno-omit-frame-pointer" \
		SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" check

check-valgrind: $(UNIT_TESTS) $(DEV_UNIT_TESTS)
	$(Q)set -e; for t in $(UNIT_TESTS) $(DEV_UNIT_TESTS); do \
		valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite $$t; done

# The integration suite once with the app under valgrind, wherever the harness
# starts it (tests/integration/harness/wrapper.py). A web server does not pass
# valgrind's exit status on, so the logs in $(BUILD)/valgrind/ decide: any
# error or definite leak fails the run. Every time bound of the suite is
# OPENOVA_TEST_TIME_SCALE times looser.
integration-valgrind: all
	$(Q)rm -rf $(abspath $(BUILD))/valgrind && mkdir -p $(abspath $(BUILD))/valgrind
	$(Q)$(TEST_ENV) OPENOVA_TEST_TIME_SCALE=10 OPENOVA_FLOW_FCGI_WRAPPER="valgrind --error-exitcode=1 \
		--leak-check=full --errors-for-leak-kinds=definite --vgdb=no --log-file=$(abspath $(BUILD))/valgrind/app.%p.log" \
		$(PYTEST) -q --durations=10 tests/integration

# Installs what is missing, builds, and serves devserver + proxy + lighttpd on :8080.
run:
	$(Q)tools/run.sh

# Plays a realistic two-region deployment through the proxy of `make run`.
demo-events:
	$(Q)tools/demo-events $(DEMO_ARGS)

install: $(BIN) $(DEV_BIN)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/openova-flow-fcgi

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/openova-flow-fcgi

clean:
	rm -rf $(BUILD)

# Fuzzing (issue 5) and the benchmark (issue 6) keep their rules apart.
include fuzz/fuzz.mk
include bench/bench.mk

-include $(CORE_OBJS:.o=.d) $(MAIN_OBJ:.o=.d) $(DEV_OBJS:.o=.d) $(DEV_MAIN_OBJ:.o=.d) $(UNIT_TESTS:=.d) $(DEV_UNIT_TESTS:=.d)
