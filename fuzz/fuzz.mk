# fuzz.mk: libFuzzer harnesses: make fuzz-build, make fuzz [FUZZ_SECONDS=60]
# [FUZZ_TARGETS="route sse"]. Included by the Makefile; fuzz/README.md.

# The core sources again, built by clang with the sanitizers in a tree of
# their own: the normal objects, and $(SAN), stay as they are.
FUZZ_CC ?= clang
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_SECONDS ?= 60
FUZZ_LEAKS ?= 1
# More libFuzzer options for every harness, e.g. -seed=1 or -dict=FILE.
FUZZ_ARGS ?=
# Every fuzz/fuzz_<name>.c, so a new harness needs no edit here.
FUZZ_NAMES := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_CORE_OBJS := $(CORE_OBJS:$(BUILD)/%=$(FUZZ_DIR)/%)

# UBSan findings must stop the run like ASan's do, or libFuzzer would log
# them and carry on with a zero exit.
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS = -g -O1 -fno-omit-frame-pointer $(WARNINGS) -pthread $(PKG_CFLAGS)
FUZZ_ENV := UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

.PHONY: fuzz fuzz-build

fuzz-build: $(FUZZ_BINS)

# The more specific pattern wins over the Makefile's $(BUILD)/%.o (GNU make
# picks the shortest stem), so these objects never mix with the normal ones.
$(FUZZ_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -c -o $@ $<

$(FUZZ_DIR)/libproxy.a: $(FUZZ_CORE_OBJS)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.c $(FUZZ_DIR)/libproxy.a
	@mkdir -p $(dir $@)
	@echo "  FUZZLD  $@"
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $< $(FUZZ_DIR)/libproxy.a \
		$(LDLIBS)

# One harness after another (parallel runs would share two cores badly),
# each on a scratch corpus seeded from fuzz/corpus/<name> so the new inputs
# stay out of the repository. Every harness runs even after one fails; the
# target fails when any found a crash, leak, timeout or sanitizer report.
fuzz: fuzz-build
	$(Q)failed=; \
	for name in $(FUZZ_TARGETS); do \
		corpus=$(FUZZ_DIR)/corpus/$$name; artifacts=$(FUZZ_DIR)/artifacts/$$name; log=$(FUZZ_DIR)/logs/$$name.log; \
		mkdir -p $$corpus $$artifacts $(FUZZ_DIR)/logs; \
		if [ -d fuzz/corpus/$$name ]; then cp -R fuzz/corpus/$$name/. $$corpus/; fi; \
		start=$$(date +%s); \
		if $(FUZZ_ENV) $(FUZZ_DIR)/fuzz_$$name -max_total_time=$(FUZZ_SECONDS) -detect_leaks=$(FUZZ_LEAKS) \
			-rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix=$$artifacts/ \
			$(FUZZ_ARGS) $$corpus >$$log 2>&1; then result=ok; else result=FAILED; failed="$$failed $$name"; fi; \
		secs=$$(( $$(date +%s) - start )); \
		runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log | tail -n 1); \
		rate=$$(sed -n 's/^stat::average_exec_per_sec: *//p' $$log | tail -n 1); \
		printf '  FUZZ    %-10s %-6s %10s runs in %3ss, %7s exec/s, corpus %s\n' $$name $$result \
			"$${runs:-?}" $$secs "$${rate:-?}" "$$(ls $$corpus | wc -l)"; \
		if [ $$result = FAILED ]; then tail -n 60 $$log; echo "  log: $$log"; fi; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed" >&2; exit 1; fi

-include $(FUZZ_CORE_OBJS:.o=.d) $(FUZZ_BINS:=.d)
