# bench.mk: the side-by-side benchmark (make bench).
#
#   make bench                 installs what is missing (wrk, gnuplot-nox,
#                              nginx, lighttpd, apache2, spawn-fcgi), builds,
#                              runs every path against the same upstream
#                              (about 10 minutes) and writes bench/RESULTS.md,
#                              bench/results.json and bench/results.png
#   make bench BENCH_QUICK=1   a smoke run of about a minute; its results go
#                              to build/bench/ (not for committing)
#   make bench-tools           only the SSE upstream and client
#
# bench/run.py says what is measured and how.

BENCH_DIR := $(BUILD)/bench
BENCH_TOOLS := $(BENCH_DIR)/sse-upstream $(BENCH_DIR)/sse-client
BENCH_QUICK ?=

.PHONY: bench bench-tools

bench-tools: $(BENCH_TOOLS)

# What is missing is installed first (the build's packages, then the
# benchmark's), so it runs from a fresh clone; then the normal build.
bench:
	$(Q)tools/install-deps.sh --if-missing
	$(Q)bench/deps.sh
	$(Q)$(MAKE) --no-print-directory all bench-tools
	$(Q)BENCH_QUICK=$(BENCH_QUICK) BENCH_BUILD=$(abspath $(BENCH_DIR)) OPENOVA_FLOW_FCGI_BIN=$(abspath $(BIN)) \
		python3 bench/run.py

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
