# Makefile: openova-flow-fcgi. Targets: all check run install uninstall clean,
# plus man, check-asan, check-valgrind. V=1 shows the commands.

PREFIX ?= /usr/local
DESTDIR ?=
BUILD ?= build
# The version, from one place: VERSION (debian/changelog says the same,
# tests/integration/test_install.py checks it).
VERSION := $(strip $(file < VERSION))

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
	$(BUILD)/core/rcbuf.o \
	$(BUILD)/core/cidr.o \
	$(BUILD)/core/clock.o \
	$(BUILD)/core/config.o \
	$(BUILD)/core/duration.o \
	$(BUILD)/core/error.o \
	$(BUILD)/core/http.o \
	$(BUILD)/core/url_template.o \
	$(BUILD)/core/log.o \
	$(BUILD)/core/metrics.o \
	$(BUILD)/fcgi/listen.o \
	$(BUILD)/fcgi/lobby.o \
	$(BUILD)/fcgi/queue.o \
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
	$(BUILD)/handlers/fanout.o \
	$(BUILD)/handlers/ops.o \
	$(BUILD)/handlers/purge.o \
	$(BUILD)/handlers/records.o \
	$(BUILD)/handlers/request_log.o \
	$(BUILD)/handlers/route.o \
	$(BUILD)/handlers/snapshot.o \
	$(BUILD)/handlers/sse.o \
	$(BUILD)/handlers/stream.o \
	$(BUILD)/handlers/stream_loop.o \
	$(BUILD)/handlers/upstream.o \
	$(BUILD)/handlers/upstreams.o

MAIN_OBJ := $(BUILD)/main.o

# The local flow server (issue 3): a development and test upstream.
DEV_BIN := $(BUILD)/openova-flow-devserver
DEV_OBJS := \
	$(BUILD)/core/duration.o \
	$(BUILD)/devserver/config.o \
	$(BUILD)/devserver/error.o \
	$(BUILD)/devserver/flow.o \
	$(BUILD)/devserver/fold.o \
	$(BUILD)/devserver/gojson.o \
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
	$(BUILD)/tests/unit/test_records \
	$(BUILD)/tests/unit/test_request \
	$(BUILD)/tests/unit/test_response \
	$(BUILD)/tests/unit/test_queue \
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

.PHONY: all man check layout unit contract integration browser run demo-events install uninstall clean check-asan check-valgrind integration-valgrind

# The man pages need scdoc (tools/install-deps.sh installs it); without it
# `make` builds the programs alone, and `make install` says what is missing.
MAN_PAGES := $(BUILD)/openova-flow-fcgi.8 $(BUILD)/openova-flow-devserver.1 $(BUILD)/openova-flow-verify.1
SCDOC := $(shell command -v scdoc 2>/dev/null)

all: $(BIN) $(DEV_BIN) $(if $(SCDOC),$(MAN_PAGES))

man: $(MAN_PAGES)

# @VERSION@ in the source is VERSION; SOURCE_DATE_EPOCH (set by
# dpkg-buildpackage) fixes the page's date.
$(MAN_PAGES): $(BUILD)/%: doc/%.scd VERSION
	@mkdir -p $(dir $@)
	@echo "  SCDOC   $<"
	$(Q)command -v scdoc >/dev/null || { echo "$@: scdoc is missing (apt-get install scdoc, or tools/install-deps.sh)" >&2; exit 1; }
	$(Q)sed 's/@VERSION@/$(VERSION)/g' $< | scdoc > $@.tmp && mv $@.tmp $@

# Both programs print the version (--version, the status page, the log).
$(MAIN_OBJ) $(DEV_MAIN_OBJ): VERSION

$(BIN): $(MAIN_OBJ) $(BUILD)/libproxy.a
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libproxy.a: $(CORE_OBJS)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(DEV_BIN): $(DEV_MAIN_OBJ) $(BUILD)/libdevserver.a
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs libmicrohttpd gnutls) $(LDLIBS)

$(BUILD)/libdevserver.a: $(DEV_OBJS)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/tests/unit/test_devserver_%: tests/unit/test_devserver_%.c $(BUILD)/libdevserver.a
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(shell pkg-config --cflags cmocka libmicrohttpd) -o $@ $< $(BUILD)/libdevserver.a \
		$(LDFLAGS) $(shell pkg-config --libs libmicrohttpd gnutls) $(LDLIBS) $(shell pkg-config --libs cmocka)

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

# FLOW_SERVER_URL=http://host:port: the suite against that running server
# (nothing built or started; the devserver's own tests are deselected).
contract: $(if $(FLOW_SERVER_URL),,all)
	$(Q)$(if $(FLOW_SERVER_URL),FLOW_SERVER_URL='$(FLOW_SERVER_URL)') $(TEST_ENV) $(PYTEST) -q tests/contract

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

# Installation directories (GNU names). sysconfdir and unitdir follow the
# prefix, except that PREFIX=/usr (a distribution's packages) gets /etc and
# systemd's own unit directory (/lib/systemd/system on Debian 12) instead
# of /usr/etc and /usr/lib/systemd/system. Any of them can be given on the
# command line; paths must not contain spaces or commas.
bindir ?= $(PREFIX)/bin
datadir ?= $(PREFIX)/share
mandir ?= $(datadir)/man
docdir ?= $(datadir)/doc/openova-flow-fcgi
pkgdatadir ?= $(datadir)/openova-flow-fcgi
sysconfdir ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
unitdir ?= $(if $(filter /usr,$(PREFIX)),$(or $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null),/lib/systemd/system),$(PREFIX)/lib/systemd/system)

# What `make install` installs, one file per entry: MODE,HOW,SOURCE,TARGET,
# where HOW is "cp" (as it is) or "sub" (the paths of a /usr/local install
# written in conf/ and doc/ replaced by the directories above, below).
# `make uninstall` removes exactly this list, then the directories of our
# own that it leaves empty (INSTALL_DIRS, deepest first).
WWW_FILES := $(sort $(wildcard www/*))
DOC_FILES := README.md INSTALL SECURITY.md LICENSE CHANGELOG.md
INSTALL_FILES = \
	0755,cp,$(BIN),$(bindir)/openova-flow-fcgi \
	0755,cp,$(DEV_BIN),$(bindir)/openova-flow-devserver \
	0755,cp,tools/openova-flow-verify,$(bindir)/openova-flow-verify \
	0644,cp,docs/runbooks/multi-region-verify.md,$(docdir)/runbooks/multi-region-verify.md \
	0644,sub,$(BUILD)/openova-flow-fcgi.8,$(mandir)/man8/openova-flow-fcgi.8 \
	0644,sub,$(BUILD)/openova-flow-devserver.1,$(mandir)/man1/openova-flow-devserver.1 \
	0644,sub,$(BUILD)/openova-flow-verify.1,$(mandir)/man1/openova-flow-verify.1 \
	0644,sub,conf/systemd/openova-flow-fcgi.socket,$(unitdir)/openova-flow-fcgi.socket \
	0644,sub,conf/systemd/openova-flow-fcgi.service,$(unitdir)/openova-flow-fcgi.service \
	0644,cp,conf/systemd/openova-flow-fcgi.env,$(pkgdatadir)/systemd/openova-flow-fcgi.env \
	0755,sub,conf/spawn-fcgi/openova-flow-fcgi-spawn,$(pkgdatadir)/spawn-fcgi/openova-flow-fcgi-spawn \
	0644,sub,conf/lighttpd/openova-flow-fcgi.conf,$(pkgdatadir)/lighttpd/openova-flow-fcgi.conf \
	0644,sub,conf/apache2/openova-flow-fcgi.conf,$(pkgdatadir)/apache2/openova-flow-fcgi.conf \
	0644,sub,conf/nginx/openova-flow-fcgi.conf,$(pkgdatadir)/nginx/openova-flow-fcgi.conf \
	0644,sub,conf/nginx/openova-flow-www.conf,$(pkgdatadir)/nginx/openova-flow-www.conf \
	$(foreach f,$(WWW_FILES),0644,cp,$(f),$(pkgdatadir)/$(f)) \
	$(foreach f,$(DOC_FILES),0644,cp,$(f),$(docdir)/$(f))
INSTALL_DIRS = $(pkgdatadir)/www $(pkgdatadir)/systemd $(pkgdatadir)/spawn-fcgi $(pkgdatadir)/lighttpd \
	$(pkgdatadir)/apache2 $(pkgdatadir)/nginx $(pkgdatadir) $(docdir)/runbooks $(docdir)
# conf/ and doc/ name the paths of the default PREFIX=/usr/local (and
# /etc/default for the service's settings, where conf/systemd's units and
# INSTALL have it): the installed copies name the real ones. The units'
# ExecStart= and Documentation= above all: systemd-analyze verify fails on
# an ExecStart that does not exist. The most specific paths go first.
SUBST = sed -e 's|/usr/local/lib/systemd/system|$(unitdir)|g' \
	-e 's|/usr/local/share/doc/openova-flow-fcgi|$(docdir)|g' \
	-e 's|/usr/local/share/openova-flow-fcgi|$(pkgdatadir)|g' \
	-e 's|/usr/local/bin/|$(bindir)/|g' \
	-e 's|/etc/default/openova-flow-fcgi|$(sysconfdir)/default/openova-flow-fcgi|g'

install: $(BIN) $(DEV_BIN) $(MAN_PAGES)
	$(Q)set -e; for entry in $(INSTALL_FILES); do \
		mode=$${entry%%,*}; rest=$${entry#*,}; how=$${rest%%,*}; rest=$${rest#*,}; \
		src=$${rest%%,*}; dst=$${rest#*,}; \
		echo "  INSTALL $(DESTDIR)$$dst"; \
		install -d "$(DESTDIR)$${dst%/*}"; \
		if [ "$$how" = sub ]; then $(SUBST) "$$src" > "$(DESTDIR)$$dst"; chmod "$$mode" "$(DESTDIR)$$dst"; \
		else install -m "$$mode" "$$src" "$(DESTDIR)$$dst"; fi; \
	done

uninstall:
	$(Q)set -e; for entry in $(INSTALL_FILES); do \
		dst=$${entry#*,*,*,}; echo "  RM      $(DESTDIR)$$dst"; rm -f "$(DESTDIR)$$dst"; \
	done
	$(Q)for dir in $(INSTALL_DIRS); do rmdir "$(DESTDIR)$$dir" 2>/dev/null || true; done

clean:
	rm -rf $(BUILD)

# Fuzzing (issue 5) and the benchmark (issue 6) keep their rules apart.
include fuzz/fuzz.mk
include bench/bench.mk

-include $(CORE_OBJS:.o=.d) $(MAIN_OBJ:.o=.d) $(DEV_OBJS:.o=.d) $(DEV_MAIN_OBJ:.o=.d) $(UNIT_TESTS:=.d) $(DEV_UNIT_TESTS:=.d)
