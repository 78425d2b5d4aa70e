"""soak_report.py: what `make soak` leaves: the verdict (the checks of
bench/soak.py's pass rule), soak.json, SOAK.md and the chart soak.png."""
import json
import os

from report import fmt, gnuplot
from summary import mean

# The samples that are watched for growth: (key, label, how to show a value).
WATCHED = [("rss_kib", "app RSS (VmRSS)", lambda v: f"{v / 1024:.1f} MiB"),
           ("fds", "app open descriptors", lambda v: f"{round(v, 1):g}"),
           ("threads", "app threads", lambda v: f"{round(v, 1):g}")]
STREAM_FAULTS = ("failed", "closed_early", "lost", "out_of_order")


def growth_checks(samples, soak, limit):
    """End (the last sample) against the baseline (the mean of the samples
    in the window after the warm-up), per watched quantity."""
    lo, hi = soak["baseline_s"]
    window = [s for s in samples if lo <= s["t"] <= hi and not s.get("app_gone")]
    last = samples[-1] if samples else {}
    checks = []
    for key, label, show in WATCHED:
        base = mean([s[key] for s in window])
        end = last.get(key)
        if base is None or end is None:
            checks.append({"check": f"{label}: end within {limit:.0%} of the baseline", "pass": False, "key": key,
                           "value": "no sample (the app is gone)", "limit": "-", "baseline": base, "end": end})
            continue
        growth = end / base - 1
        checks.append({"check": f"{label}: end within {limit:.0%} of the baseline", "pass": growth <= limit, "key": key,
                       "value": f"{show(end)} at {last['t']} s, baseline {show(base)} ({growth:+.2%})",
                       "limit": f"<= {show(base * (1 + limit))} (+{limit:.0%})", "baseline": base,
                       "end": end, "growth": growth})
    return checks


def churn_totals(runs, size):
    """The churn clients summed: runs, streams, frames, and every fault."""
    ok = [r for r in runs if "error" not in r]
    t = {"runs": len(runs), "runs_failed_to_report": len(runs) - len(ok),
         "runs_without_window": sum(1 for r in ok if not r.get("expected")),
         "streams": size * len(runs), "ready": sum(r["ready"] for r in ok),
         "frames": sum(r["frames"] for r in ok), "expected": sum(r["expected"] for r in ok)}
    for key in STREAM_FAULTS:
        t[key] = sum(r[key] for r in ok)
    t["not_ready"] = t["streams"] - t["ready"]
    t["first_error"] = next((r["error"] for r in runs if "error" in r), None) or next(
        (r["first_failure"] for r in ok if r.get("first_failure")), None)
    return t


def stream_checks(result, soak):
    st, ch = result["stable"], churn_totals(result["churn"], soak["churn_size"])
    result["churn_totals"] = ch
    up = result["upstream"]
    stable_faults = {k: st[k] for k in STREAM_FAULTS if st[k]}
    churn_faults = {k: ch[k] for k in STREAM_FAULTS + ("not_ready", "runs_failed_to_report", "runs_without_window")
                    if ch[k]}
    return [
        {"check": f"stable streams: all {soak['stable_streams']} open, every frame, in order", "limit": "0 faults",
         "pass": st["ready"] == soak["stable_streams"] and not stable_faults and st["frames"] > 0,
         "value": f"{st['ready']} open, {st['frames']} of {st['expected']} frames"
                  + (f"; {stable_faults}" + (f", first: {st['first_failure']}" if st["first_failure"] else "")
                     if stable_faults else "; 0 lost, 0 out of order")},
        {"check": "churn clients: every stream opens, every frame of its life, in order", "limit": "0 faults",
         "pass": ch["runs"] > 0 and not churn_faults,
         "value": f"{ch['runs']} clients, {ch['ready']} of {ch['streams']} streams open, {ch['frames']} of "
                  f"{ch['expected']} frames" + (f"; {churn_faults}" + (f", first: {ch['first_error']}" if ch[
                      "first_error"] else "") if churn_faults else "; 0 lost, 0 out of order")},
        {"check": "the upstream dropped no stream as too slow", "pass": up["dropped"] == 0,
         "value": str(up["dropped"]), "limit": "0"},
        {"check": "every stream closed upstream after the clients left", "pass": bool(result["streams_closed_after"]),
         "value": "yes" if result["streams_closed_after"] else f"{up['streams']} still open after 30 s",
         "limit": "within 30 s"},
    ]


def request_checks(requests):
    checks = []
    for kind in ("snapshot", "events"):
        w = requests.get(kind) or {"error": "wrk did not report"}
        if "error" in w:
            checks.append({"check": f"{kind}: every request 2xx", "pass": False, "value": w["error"], "limit": "0"})
            continue
        errors = {k: v for k, v in w["errors"].items() if v}
        bad = sum(errors.values()) + w.get("non2xx", 0)
        checks.append({"check": f"{kind}: every request 2xx, no connection error or timeout",
                       "pass": w["requests"] > 0 and bad == 0 and "non2xx" in w, "limit": "0 failed",
                       "value": f"{w['requests']} requests, {w.get('non2xx', '?')} not 2xx, "
                                f"errors {errors or 'none'}"})
    return checks


def verdict(result, soak):
    samples = result["samples"]
    checks = growth_checks(samples, soak, soak["growth_limit"])
    gone = [s["t"] for s in samples if s.get("app_gone")]
    checks.append({"check": "the app stayed up", "pass": not gone,
                   "value": f"gone from {gone[0]} s" if gone else "yes", "limit": "-"})
    checks += stream_checks(result, soak)
    checks += request_checks(result["requests"])
    return checks


def rate(w):
    return w["requests"] / (w["duration_us"] / 1e6) if w and "requests" in w else None


def write_chart(out_dir, build, samples, soak, checks):
    data = os.path.join(build, "soak-chart.dat")
    with open(data, "w") as f:
        f.write("# t rss_mib fds threads upstream_streams\n")
        for s in samples:
            if not s.get("app_gone"):
                f.write(f"{s['t']} {s['rss_kib'] / 1024:.2f} {s['fds']} {s['threads']} "
                        f"{s['upstream_streams'] if s['upstream_streams'] is not None else '?'}\n")
    base = {c["key"]: c["baseline"] or 0 for c in checks if "key" in c}
    lo, hi = soak["baseline_s"]
    return gnuplot("soak.gp", data, os.path.join(out_dir, "soak.png"), base_lo=lo, base_hi=hi,
                   limit=1 + soak["growth_limit"], rss_base=base["rss_kib"] / 1024, fds_base=base["fds"],
                   threads_base=base["threads"], seconds=soak["seconds"], streams=soak["streams"])


def samples_table(samples, soak):
    lo, hi = soak["baseline_s"]
    out = ["| t (s) | | app RSS (MiB) | app descriptors | app threads | streams open (upstream) | "
           "app CPU (cores) | nginx + app CPU | machine CPU |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in samples:
        mark = "warm-up" if s["t"] < lo else "baseline" if s["t"] <= hi else ""
        if s is samples[-1]:
            mark = "end"
        if s.get("app_gone"):
            out.append(f"| {s['t']} | {mark} | app gone | | | | | | |")
            continue
        out.append(f"| {s['t']} | {mark} | {s['rss_kib'] / 1024:.1f} | {s['fds']} | {s['threads']} | "
                   f"{fmt(s['upstream_streams'], 'd')} | {fmt(s['app_cores'], '.2f')} | "
                   f"{fmt(s['proxy_cores'], '.2f')} | {fmt(s['machine_cores'], '.2f')} |")
    return "\n".join(out)


def settings_lines(soak, result):
    req = result["requests"]
    snap, ev = req.get("snapshot"), req.get("events")
    lo, hi = soak["baseline_s"]
    ch = result["churn_totals"]
    return [
        f"- **Duration**: {soak['seconds']} s from the moment the stable streams were open, sampled every "
        f"{soak['sample_every_s']} s.",
        f"- **Path**: nginx (conf/nginx/nginx-noauth.conf, with the bench's scale-run worker_connections) in front of "
        "the app under conf/spawn-fcgi/openova-flow-fcgi-spawn, on a unix socket, `OPENOVA_FLOW_AUTH=none`; "
        "upstream build/bench/sse-upstream. Everything on loopback.",
        f"- **Streams**: {soak['streams']}: {soak['stable_streams']} held for the whole run by one build/bench/"
        f"sse-client, and {soak['churn_groups']} clients of {soak['churn_size']} streams that each stay "
        f"{soak['churn_life_s'][0]:.0f} to {soak['churn_life_s'][1]:.0f} s, leave and are replaced at once: "
        f"{ch['runs']} churn clients, {ch['streams']} streams opened and closed on purpose. "
        f"One frame every {soak['frame_interval_ms']} ms to every stream, stamped with a sequence number.",
        f"- **Requests**: wrk at a bounded rate: snapshot (34 KB) on {soak['snapshot_load']['connections']} "
        f"connections with {soak['snapshot_load']['pause_ms']} ms between answer and next request "
        f"({fmt(rate(snap), '.1f')} req/s, p99 "
        f"{fmt(snap['latency_us']['p99'] / 1000 if snap and 'latency_us' in snap else None, '.2f')} ms); events "
        f"(256 KiB POST) on {soak['events_load']['connections']} with {soak['events_load']['pause_ms']} ms "
        f"({fmt(rate(ev), '.1f')} req/s, p99 "
        f"{fmt(ev['latency_us']['p99'] / 1000 if ev and 'latency_us' in ev else None, '.2f')} ms).",
        f"- **Pass rule**: the baseline of RSS, descriptors and threads is the **mean of the samples from {lo} to "
        f"{hi} s** (after {soak['warmup_s']} s of warm-up); the run FAILS if the **last sample** (at "
        f"{soak['seconds']} s) is more than {soak['growth_limit']:.0%} above it, if any stream that was not closed on "
        "purpose misses a frame, gets one out of order, is refused or is ended by the other side (the churn "
        "clients are checked for their own lives), or if any snapshot or events request is not 2xx or fails to "
        "connect, read, write or answer within 5 s.",
    ]


def check_table(checks):
    out = ["| check | value | limit | |", "|---|---|---|---|"]
    for c in checks:
        out.append(f"| {c['check']} | {c['value']} | {c['limit']} | {'PASS' if c['pass'] else 'FAIL'} |")
    return "\n".join(out)


def idle_line(result):
    b, a = result["idle_before"], result.get("idle_after")
    after = (f"{a['VmRSS'] / 1024:.1f} MiB, {a['fds']} descriptors, {a['Threads']} threads" if a
             else "the app was gone")
    return (f"The app before the first stream: {b['VmRSS'] / 1024:.1f} MiB, {b['fds']} descriptors, "
            f"{b['Threads']} threads; a few seconds after the last client left: {after} (not part of the rule: "
            "the workers keep their upstream connections alive).")


def slope_per_minute(points):
    """The least-squares slope of (t seconds, value) points, per minute."""
    if len(points) < 2:
        return None
    mt, mv = mean([t for t, _ in points]), mean([v for _, v in points])
    var = sum((t - mt) ** 2 for t, _ in points)
    return 60 * sum((t - mt) * (v - mv) for t, v in points) / var if var else None


def trend_line(samples, soak):
    """How fast each watched quantity still moves after the warm-up: not
    part of the rule, but a creep too slow to fail ten minutes shows here."""
    lo = soak["baseline_s"][0]
    parts = []
    for key, label, show in WATCHED:
        slope = slope_per_minute([(s["t"], s[key]) for s in samples if s["t"] >= lo and not s.get("app_gone")])
        if slope is not None:
            text = f"{slope:+.1f} KiB" if key == "rss_kib" else f"{slope:+.2f}"
            parts.append(f"{label} {text} per minute")
    return (f"Trend from {lo} s to the end (least squares over the samples; not part of the rule): "
            + ", ".join(parts) + ".") if parts else ""


def cpu_line(samples):
    busy = [s for s in samples if s["app_cores"] is not None and not s.get("app_gone")]
    return (f"CPU over the run (mean of the samples): the app {mean([s['app_cores'] for s in busy]) or 0:.2f} "
            f"cores, nginx + app {mean([s['proxy_cores'] for s in busy]) or 0:.2f}, the whole machine "
            f"{mean([s['machine_cores'] for s in busy]) or 0:.2f} of {os.cpu_count()} (load, clients and "
            "upstream included).")


def write_markdown(path, info, soak, result, checks, passed, chart):
    title = "PASS" if passed else "FAIL"
    failed = [c["check"] for c in checks if not c["pass"]]
    lines = [
        "# Soak results",
        "",
        "Generated by `make soak` (bench/soak.py); do not edit by hand."
        + ("" if soak["full"] else " **Smoke run shorter than 10 minutes: not for committing.**"),
        "",
        f"**Verdict: {title}**" + (f" ({'; '.join(failed)})" if failed else
                                   f": {len(checks)} of {len(checks)} checks pass."),
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM, Linux {info['kernel']}, "
        f"{info['os']}. Date: {info['date']}. Commit: {info['commit']}. nginx {info['nginx']}; {info['app']}; "
        f"{info['wrk']}. Load average at start: {' '.join(info['loadavg_start'])}.",
        "",
        "## Settings",
        "",
    ] + settings_lines(soak, result) + [
        "",
        "## Checks",
        "",
        check_table(checks),
        "",
        trend_line(result["samples"], soak),
        "",
        idle_line(result),
        "",
        cpu_line(result["samples"]),
        "",
    ] + (["![chart](soak.png)", ""] if chart else []) + [
        "## Samples",
        "",
        samples_table(result["samples"], soak),
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def compact_run(r):
    """One churn client as soak.json keeps it (without its latency spread)."""
    keep = ("life_s", "ready", "frames", "expected", "error", "first_failure") + STREAM_FAULTS
    out = {k: r[k] for k in keep if r.get(k) not in (None, "")}
    if "latency_us" in r:
        out["latency_p99_us"] = r["latency_us"]["p99"]
    return out


def write(out_dir, build, info, soak_settings, result, seconds):
    """The verdict; soak.json, soak.png and SOAK.md in out_dir. Returns the
    report (its "pass", "verdict" and "checks")."""
    soak = dict(soak_settings.as_json(), full=soak_settings.full)
    checks = verdict(result, soak)
    passed = all(c["pass"] for c in checks)
    result = dict(result, churn=[compact_run(r) for r in result["churn"]])
    report = {"verdict": "PASS" if passed else "FAIL", "pass": passed, "checks": checks, "machine": info,
              "settings": soak, "seconds": seconds, "result": result}
    with open(os.path.join(out_dir, "soak.json"), "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
        f.write("\n")
    chart = write_chart(out_dir, build, result["samples"], soak, checks)
    write_markdown(os.path.join(out_dir, "SOAK.md"), info, soak, result, checks, passed, chart)
    return report
