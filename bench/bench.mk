# bench.mk: the side-by-side benchmark (make bench).
#
#   make bench                 installs what is missing (wrk, gnuplot-nox,
#                              nginx, lighttpd, apache2, spawn-fcgi), builds,
#                              runs every path against the same upstream
#                              (about 20 minutes) and writes bench/RESULTS.md,
#                              bench/results.json and bench/results.png
#   make bench BENCH_QUICK=1   a smoke run of about three minutes (short
#                              measurements, one pass, every stream run but
#                              the nginx proxy_pass and direct comparisons);
#                              its results go to build/bench/ (not for
#                              committing)
#   make bench-tools           only the SSE upstream and client
#   make soak                  10 minutes of 1,000 streams (with churn),
#                              snapshots and events through nginx + app,
#                              watching the app's RSS, descriptors and
#                              threads; writes bench/SOAK.md, soak.json and
#                              soak.png; fails on growth, a lost frame or a
#                              failed request. Not part of make check.
#   make soak SOAK_SECONDS=90  a smoke run; its results go to
#                              build/bench/soak/ (not for committing)
#
# bench/run.py says what is measured and how; bench/soak.py the soak.

BENCH_DIR := $(BUILD)/bench
BENCH_TOOLS := $(BENCH_DIR)/sse-upstream $(BENCH_DIR)/sse-client
BENCH_QUICK ?=
SOAK_SECONDS ?= 600

.PHONY: bench bench-tools bench-ready soak

bench-tools: $(BENCH_TOOLS)

# What is missing is installed first (the build's packages, then the
# benchmark's), so it runs from a fresh clone; then the normal build.
bench-ready:
	$(Q)tools/install-deps.sh --if-missing
	$(Q)bench/deps.sh
	$(Q)$(MAKE) --no-print-directory all bench-tools

bench: bench-ready
	$(Q)BENCH_QUICK=$(BENCH_QUICK) BENCH_BUILD=$(abspath $(BENCH_DIR)) OPENOVA_FLOW_FCGI_BIN=$(abspath $(BIN)) \
		python3 bench/run.py

soak: bench-ready
	$(Q)SOAK_SECONDS=$(SOAK_SECONDS) BENCH_BUILD=$(abspath $(BENCH_DIR)) OPENOVA_FLOW_FCGI_BIN=$(abspath $(BIN)) \
		python3 bench/soak.py

# Standalone programs: the project's warnings, no libraries but pthreads.
$(BENCH_DIR)/sse-upstream: bench/sse_upstream.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(OPT) $(WARNINGS) -pthread -o $@ $< -pthread

$(BENCH_DIR)/sse-client: bench/sse_client.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(OPT) $(WARNINGS) -o $@ $<

-include $(BENCH_TOOLS:=.d)
