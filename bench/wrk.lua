-- wrk.lua: the benchmark's wrk script (make bench, make soak). With
-- BENCH_BODY_FILE set, every request POSTs that file as application/json
-- (events); otherwise a plain GET (snapshot). With BENCH_DELAY_MS set (the
-- soak), each connection waits that long after a response before its next
-- request, which bounds the rate (about connections * 1000 / (delay +
-- latency) per second), and every answer that is not 2xx is counted
-- ("non2xx"; wrk's own "status" counts only 4xx and 5xx). When the run ends
-- it prints one line, "JSON {...}": requests, errors, bytes and latency
-- percentiles in microseconds, which bench/load.py reads.

-- With BENCH_SPREAD=N (the console's row), the URL's path is a flows base
-- and each connection asks for the snapshots of dep-00 .. dep-(N-1) in
-- turn.

local spread = tonumber(os.getenv("BENCH_SPREAD") or "")
if spread then
   local next_id = 0
   request = function()
      local path = string.format("%sdep-%02d/snapshot", wrk.path, next_id)
      next_id = (next_id + 1) % spread
      return wrk.format("GET", path)
   end
end

local body_file = os.getenv("BENCH_BODY_FILE")
if body_file and body_file ~= "" then
   local f = assert(io.open(body_file, "rb"))
   wrk.method = "POST"
   wrk.body = f:read("*a")
   f:close()
   wrk.headers["Content-Type"] = "application/json"
end

-- Counting answers makes wrk parse each one, which would slow the
-- benchmark's unbounded runs: only with the bounded rate.
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")
local threads = {}
if delay_ms then
   non2xx = 0
   setup = function(thread)
      table.insert(threads, thread)
   end
   delay = function()
      return delay_ms
   end
   response = function(status, headers, body)
      if status < 200 or status > 299 then
         non2xx = non2xx + 1
      end
   end
end

local function counted_non2xx()
   if not delay_ms then
      return ""
   end
   local n = 0
   for _, thread in ipairs(threads) do
      n = n + thread:get("non2xx")
   end
   return string.format(',"non2xx":%d', n)
end

done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}%s}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean, counted_non2xx()))
end
