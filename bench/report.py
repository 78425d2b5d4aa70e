"""report.py: what a run leaves: the machine it ran on, the tables (printed
and in RESULTS.md), results.json and the chart (results.png)."""
import datetime
import json
import os
import platform
import shutil
import subprocess

from context import HERE, REPO, SCALE_TARGET, WRK, log
from integration import servers
from console import console_section
from summary import fanout_shapes, mean


def _out(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip()
    except OSError:
        return ""


def _first_line(text):
    return text.splitlines()[0] if text else ""


def machine():
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    git = _out(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    # The binary is built from the working tree: say when it differs.
    if git and _out(["git", "-C", REPO, "status", "--porcelain", "--", "fcgi", "handlers", "Makefile"]):
        git += " + uncommitted changes in fcgi/, handlers/ or the Makefile"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "os": _out(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "nginx": _out([servers.NGINX, "-v"]).replace("nginx version: ", ""),
        "lighttpd": _out([servers.LIGHTTPD, "-v"]).split(" - ")[0],
        "apache": _first_line(_out([servers.APACHE, "-v"])).replace("Server version: ", ""),
        "app": _out([servers.BINARY, "--version"]),
        "wrk": _first_line(_out([WRK, "-v"])).split(" Copyright")[0],
        "commit": git,
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
    }


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def fmt_pct(v):
    return "-" if v is None else f"{v:.1f} %"


def main_table(rows, paths):
    out = ["| path | snapshot req/s | x nginx | p99 ms | proxy CPU us/req (app's part) | x nginx | "
           "events 256 KiB req/s | x nginx | SSE p50 / p99 us | added p99 us |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for cls in paths:
        r = rows[cls.name]
        out.append(f"| {cls.label} | {r['snapshot_rps']:.0f} | {r['ratio']['snapshot_rps']:.2f} | "
                   f"{r['snapshot_p99_ms']:.2f} | {fmt(r['proxy_cpu_us'], '.0f')}"
                   f"{' (' + format(r['app_cpu_us'], '.0f') + ')' if r.get('app_cpu_us') is not None else ''} | "
                   f"{fmt(r['ratio']['proxy_cpu_us'], '.2f')} | {r['events_rps']:.0f} | {r['ratio']['events_rps']:.2f} | "
                   f"{r['sse_p50_us']:.0f} / {r['sse_p99_us']:.0f} | {r['sse_added_p99_us']:+.0f} |")
    return "\n".join(out)


def scale_table(scale):
    out = ["| run | streams open | delivery p50 / p99 / max ms | frames | lost | proxy CPU us/frame (app's part) | "
           "app RSS per stream | app threads | app fds |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, r in scale.items():
        # Fan-out's runs and the many flows have a table of their own.
        if "/" not in key or r.get("fanout") or r.get("flows", 1) > 1:
            continue
        app = (r.get("app") or {}).get("ready") or {}
        lat = r["latency_us"]
        cpu = r.get("cpu") or {}
        cpu_text = fmt(cpu.get("proxy_us_per_frame"), ".1f")
        if cpu.get("app_us_per_frame") is not None:
            cpu_text += f" ({cpu['app_us_per_frame']:.1f})"
        rss = r.get("rss_per_stream_kib")
        out.append(f"| {key} | {r['ready']} | {lat['p50'] / 1000:.2f} / {lat['p99'] / 1000:.2f} / {lat['max'] / 1000:.2f} | "
                   f"{r['frames']} | {r['lost']} | {cpu_text} | {fmt(rss, '.1f')}{' KiB' if rss is not None else ''} | "
                   f"{app.get('Threads', '-')} | {app.get('fds', '-')} |")
        if "snapshot_during" in r:
            d, alone = r["snapshot_during"], scale["snapshot_alone"]
            lat2 = r.get("latency_after_split_us") or {}
            out.append(f"| {key} + wrk snapshots | {r['ready']} | "
                       f"{lat2.get('p50', -1000) / 1000:.2f} / {lat2.get('p99', -1000) / 1000:.2f} / "
                       f"{lat2.get('max', -1000) / 1000:.2f} | | | snapshots: {d['rps']:.0f} req/s, p99 {d['p99_ms']:.2f} ms "
                       f"(alone: {alone['rps']:.0f} req/s, p99 {alone['p99_ms']:.2f} ms) | | | |")
    return "\n".join(out)


def fanout_rows(scale, settings):
    """(label, run) of issue 18's table, in its order."""
    out = []
    for suffix, flows, shape in fanout_shapes(settings):
        for key, label in ((f"nginx+app/{suffix}", "nginx + app, fan-out off"),
                           (f"nginx+app fanout/{suffix}", "nginx + app, fan-out on"),
                           (f"nginx-proxy/{suffix}", "nginx proxy_pass")):
            if key in scale:
                out.append((f"{shape}: {label}", scale[key]))
    return out


def fanout_table(scale, settings):
    out = ["| run | streams open | upstream streams held / accepted | delivery p50 / p99 / max ms | "
           "from broadcast start p99 / max ms | frames | lost | cut / failed | proxy CPU us/frame (app's part) | "
           "app RSS per client | app threads / fds |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, r in fanout_rows(scale, settings):
        lat, lb = r["latency_us"], r.get("from_broadcast_us") or {}
        up = r.get("upstream") or {}
        cpu = r.get("cpu") or {}
        cpu_text = fmt(cpu.get("proxy_us_per_frame"), ".1f")
        if cpu.get("app_us_per_frame") is not None:
            cpu_text += f" ({cpu['app_us_per_frame']:.2f})"
        app = (r.get("app") or {}).get("ready") or {}
        rss = r.get("rss_per_stream_kib")
        out.append(f"| {label} | {r['ready']} | {up.get('held')} for {up.get('flows_held')} flow{'' if up.get('flows_held') == 1 else 's'} / {up.get('accepted')} | "
                   f"{lat['p50'] / 1000:.2f} / {lat['p99'] / 1000:.2f} / {lat['max'] / 1000:.2f} | "
                   f"{lb.get('p99', -1000) / 1000:.2f} / {lb.get('max', -1000) / 1000:.2f} | {r['frames']} | "
                   f"{r['lost']} | {r['closed_early']} / {r['failed']} | {cpu_text} | "
                   f"{fmt(rss, '.1f')}{' KiB' if rss is not None else ''} | "
                   f"{app.get('Threads', '-')} / {app.get('fds', '-')} |")
    return "\n".join(out)


def fanout_notes(scale, settings):
    """Lines under the fan-out table: the app's own view (its gauges, how
    its streams ended, what it warned about) and snapshots during the run."""
    out = []
    for label, r in fanout_rows(scale, settings):
        parts = []
        g = r.get("fanout_gauges")
        if r.get("fanout"):
            parts.append("fan-out gauges " + (", ".join(f"{k.replace('openova_flow_fanout_', '')} {v:.0f}"
                                                       for k, v in g.items()) if g else
                                              "absent (the app has no fan-out)" if g == {} else "not read"))
        log_ = r.get("app_log")
        if log_:
            ends = ", ".join(f"{k} {v}" for k, v in sorted(log_["ends"].items())) or "none"
            parts.append(f"stream ends logged: {ends}; {log_['warn']} warnings, {log_['error']} errors")
        if "snapshot_during" in r:
            d = r["snapshot_during"]
            alone = scale.get("snapshot_alone_fanout" if r.get("fanout") else "snapshot_alone") or {}
            parts.append(f"snapshots during the run {d['rps']:.0f} req/s, p99 {d['p99_ms']:.2f} ms "
                         f"(alone {alone.get('rps', 0):.0f} req/s, p99 {alone.get('p99_ms', 0):.2f} ms)")
        if r.get("out_of_order"):
            parts.append(f"{r['out_of_order']} frames out of order")
        if parts:
            out.append(f"- {label}: " + "; ".join(parts) + ".")
    return "\n".join(out)


def fanout_section(scale, s):
    if not fanout_rows(scale, s):
        return []
    return [
        "## Fan-out (issue 18)",
        "",
        f"Through nginx + app with the app's OPENOVA_FLOW_FANOUT off (one upstream stream per client) and on (one "
        f"per flow; its other settings at their defaults), and through nginx proxy_pass, in the same run: "
        f"{max(s.scale_ns)} clients on one flow, and {s.fanout_flows} flows of {s.fanout_per_flow} clients; a frame a "
        f"second to every upstream stream, {s.scale_seconds} s (the one-flow runs through nginx + app add wrk "
        "snapshots in their second half, whose frames are timed apart, as in the table above). Upstream streams: "
        "what build/bench/sse-upstream held 2 s after every client had its head (and for how many flows), and the "
        "stream connections it accepted during the run. Delivery: arrival minus the upstream's write of that frame "
        "to that connection (the upstream's own fan-out not counted); from broadcast start: arrival minus the "
        "start of the upstream's broadcast of that frame (every fan-out counted, wherever it happens). App CPU per "
        "delivered frame: the app's utime+stime over a window, divided by frames times clients. RSS per client: as "
        "above. Cut: streams that ended before the run did; failed: streams that never got a 200.",
        "",
        fanout_table(scale, s),
        "",
        fanout_notes(scale, s),
        "",
    ]


def metrics_table(cost):
    """Issue 14's comparison: a row per setting, then the difference and the verdict."""
    out = ["| nginx + app, metrics | runs | snapshot req/s (each) | spread (max-min)/mean | p99 ms | "
           "proxy CPU us/req (app's part) | errors |", "|---|---:|---:|---:|---:|---:|---:|"]
    for setting, label in (("on", "on (the app's defaults)"), ("off", "off (both endpoints empty)")):
        r = cost[setting]
        each = ", ".join(f"{v:.0f}" for v in r["rps_each"])
        out.append(f"| {label} | {r['runs']} | {r['rps']:.0f} ({each}) | {fmt_pct(r['spread_pct'])} | "
                   f"{r['p99_ms']:.2f} | {r['proxy_cpu_us']:.0f} ({r['app_cpu_us']:.0f}) | {r['errors']} |")
    out += ["", f"On against off: {cost['diff_pct']:+.1f} % req/s; run-to-run noise (spread of off): "
            f"{fmt_pct(cost['noise_pct'])}. Verdict: {cost['verdict']}."]
    return "\n".join(out)


def target_table(targets):
    out = ["| target | path | value | goal | |", "|---|---|---|---|---|"]
    for t in targets:
        out.append(f"| {t['target']} | {t['path']} | {t['value']} | {t['goal']} | {'PASS' if t['pass'] else 'FAIL'} |")
    return "\n".join(out)


def gnuplot(script, data, png, **values):
    """Runs bench/<script> on the data file into png; values become more
    gnuplot variables (numbers as they are, strings quoted). False, said,
    when gnuplot is missing or fails."""
    binary = shutil.which("gnuplot")
    if not binary:
        log("gnuplot not found: no chart")
        return False
    assigns = [f"datafile='{data}'", f"outfile='{png}'"]
    assigns += [f"{k}='{v}'" if isinstance(v, str) else f"{k}={v}" for k, v in values.items()]
    r = subprocess.run([binary, "-e", "; ".join(assigns), os.path.join(HERE, script)], capture_output=True, text=True)
    if r.returncode != 0:
        log(f"gnuplot failed: {r.stderr.strip()}")
        return False
    return True


def write_chart(run, rows, paths, png):
    data = os.path.join(run.build, "chart.dat")
    with open(data, "w") as f:
        f.write("# label snapshot_rps proxy_cpu_us events_rps sse_added_p99_us\n")
        for cls in paths:
            r = rows[cls.name]
            f.write(f"\"{cls.label}\" {r['snapshot_rps']:.0f} {r['proxy_cpu_us'] or 0:.1f} {r['events_rps']:.0f} "
                    f"{r['sse_added_p99_us']:.0f}\n")
    return gnuplot("chart.gp", data, png)


def how_measured(info, rows, s):
    """The paragraphs above the main table: the machine and the method."""
    foreign = mean([r["foreign_cores"] for r in rows.values()])
    return [
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM, Linux {info['kernel']}, "
        f"{info['os']}. Date: {info['date']}. Commit: {info['commit']}.",
        f"Servers: nginx {info['nginx']}, {info['lighttpd']}, {info['apache']}; "
        f"{info['app']}; {info['wrk']}. Load average at start: {' '.join(info['loadavg_start'])}; "
        f"other load during the wrk runs: {foreign:.2f} cores on average.",
        "",
        f"Everything runs on this one machine: wrk (1 thread, {s.connections} connections, {s.measure} s after "
        f"{s.warmup} s of warm-up, {s.passes} interleaved passes, mean shown), the proxies and the upstream. Upstream "
        "for snapshot and events: nginx serving a 34 KB snapshot (120 nodes, two regions; bench/fixtures.py) and "
        "reading 256 KiB events bodies; both nginx kinds keep a body up to 1 MiB in memory "
        "(client_body_buffer_size 1m). nginx + app is conf/nginx as shipped (fastcgi_keep_conn on, upstream "
        "keepalive 16); its variants change only the pool (keepalive 64, as the proxy_pass reference's) or turn "
        "kept connections off. Proxy CPU: utime+stime of every process of the web server and the app "
        "during the run, per request. SSE: "
        f"{s.sse_streams} streams per path, a frame every {s.sse_interval_ms} ms for {s.sse_seconds} s from "
        "build/bench/sse-upstream, which stamps each frame just before writing it; latency = arrival - stamp, "
        "added = path minus direct. `x nginx` = ratio to nginx proxy_pass in this run.",
    ]


def metrics_section(table, cost, s):
    """RESULTS.md's "Metrics cost": what was measured, then the table."""
    return [
        "## Metrics cost (issue 14)",
        "",
        "Snapshot throughput through nginx + app, wrk as above, with the app's metrics on (its defaults: the "
        "metrics and status endpoints on, so it counts) and off (OPENOVA_FLOW_METRICS_PATH and "
        "OPENOVA_FLOW_STATUS_PATH empty: no endpoint reads the counters, so nothing is counted); "
        f"{s.metrics_repeats} run{'s' if s.metrics_repeats > 1 else ''} of each, in the order "
        f"{' '.join(cost['order'])}, each in a freshly started nginx and app. Issue 14 asks that throughput with "
        "metrics on stay within the run-to-run noise of the runs without them: the difference of the means is "
        "judged against the spread of the off runs.",
        "",
        table,
        "",
    ]


def write_markdown(path, info, tables, targets, rows, s, cost, console, scale):
    main, metrics_t, scale_t, target_t = tables
    passed = sum(t["pass"] for t in targets)
    lines = [
        "# Benchmark results",
        "",
        "Generated by `make bench` (bench/run.py); do not edit by hand. "
        + ("**BENCH_QUICK smoke run: short measurements, not for comparison.**" if s.quick else ""),
        "",
    ] + how_measured(info, rows, s) + [
        "",
        main,
        "",
        "![chart](results.png)",
        "",
    ] + metrics_section(metrics_t, cost, s) + console_section(console, s) + [
        f"## Streams at scale (nginx + app, one frame per second to every stream, {s.scale_seconds} s)",
        "",
        scale_t,
        "",
        (f"This machine's hard open-file limit is {s.fd_limited[0]} and cannot be raised without CAP_SYS_RESOURCE; "
         f"{SCALE_TARGET} streams need about {2 * SCALE_TARGET + 64} descriptors in nginx and in the app, so the "
         f"large runs hold {s.fd_limited[1]} streams.\n\n" if s.fd_limited else "")
        + "App RSS per stream = (app RSS with the streams open - RSS after the snapshot runs, before any stream) / "
        "streams. Delivery latency is measured per stream from the upstream's write of that frame to that stream, "
        "so the upstream's own fan-out time is not counted; the single-threaded client reading every stream "
        "is, as the direct row shows.",
        "",
    ] + fanout_section(scale, s) + [
        f"## Targets: {passed} of {len(targets)} pass",
        "",
        target_t,
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def write_results(run, info, seconds, rows, targets, scale, cost, raw, paths, console):
    """Prints the tables; writes results.json, results.png and RESULTS.md to
    run.out_dir. cost: summary.metrics_cost's."""
    tables = (main_table(rows, paths), metrics_table(cost), scale_table(scale), target_table(targets))
    print()
    for table in tables[:3] + (fanout_table(scale, run.settings), fanout_notes(scale, run.settings), tables[3]):
        print(table)
        print()
    out_dir = run.out_dir
    result = {"machine": info, "quick": run.settings.quick, "seconds": seconds,
              "settings": run.settings.as_json(), "paths": rows, "targets": targets, "scale": scale,
              "metrics_cost": cost, "console": console, "runs": raw}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    write_chart(run, rows, paths, os.path.join(out_dir, "results.png"))
    write_markdown(os.path.join(out_dir, "RESULTS.md"), info, tables, targets, rows, run.settings, cost, console,
                   scale)
    return result
