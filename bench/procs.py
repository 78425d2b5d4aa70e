"""procs.py: the processes the bench starts itself, what /proc says they
cost (CPU of whole process trees, size), and waiting for readiness or quiet."""
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

from integration import checks, servers

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Proc:
    """A process in its own process group, its output in a log file; the run
    stops it at the end if nothing did before."""

    def __init__(self, run, name, argv, env=None, cwd=None, log_path=None):
        self.run = run
        self.name = name
        self.log_path = log_path or os.path.join(run.dir, f"{name}.log")
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        full = servers.base_env()
        full.update(env or {})
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(argv, env=full, cwd=cwd or run.dir, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=out, start_new_session=True)
        run.track(self)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def log_tail(self, n=20):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        # Taken first: once the leader is gone its descendants are no longer
        # findable by parentage, and one that left the group would survive.
        tree = tree_pids([self.pid])
        servers.kill_group(self.proc, grace=6)
        for pid in tree:
            if pid == self.pid:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc = None
        self.run.forget(self)


def http_get(url, timeout=2.0):
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_until(what, check, timeout=15.0, procs=(), logs=None):
    """Until check() is true; raises with the logs when one of procs (Procs)
    exits first or timeout passes. logs: more to show then."""
    errors = []

    def ready():
        for p in procs:
            if not p.alive():
                raise RuntimeError(f"{what}: {p.name} exited:\n{p.log_tail()}")
        try:
            return check()
        except OSError as exc:
            errors[:] = [exc]
            return False

    if checks.wait_for(ready, timeout, interval=0.05):
        return
    tails = "\n".join(f"--- {p.name}\n{p.log_tail()}" for p in procs) + (logs() if logs else "")
    raise RuntimeError(f"{what}: not ready after {timeout}s ({errors[-1] if errors else None!r})\n{tails}")


def _stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text.rsplit(")", 1)[1].split()


def tree_pids(roots):
    """roots and every descendant."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(_stat(entry)[1])
            except (OSError, IndexError):
                pass
    out, todo = [], [r for r in roots if r in parents]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return out


def cpu_ticks(roots):
    """utime+stime of the trees under roots; the roots' waited-for children
    (cutime, cstime) too, so a worker that exits mid-run still counts."""
    total = {}
    for pid in tree_pids(roots):
        try:
            f = _stat(pid)
        except (OSError, IndexError):
            continue
        ticks = int(f[11]) + int(f[12])
        if pid in roots:
            ticks += int(f[13]) + int(f[14])
        total[pid] = ticks
    return total


def cpu_delta(before, after):
    return sum(t - before.get(pid, 0) for pid, t in after.items()) / CLK_TCK


def system_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / CLK_TCK


def wait_quiet(run, threshold=0.3, window=0.5):
    """Waits (within run.quiet_budget) until the machine's busy CPU, with
    nothing of ours running, drops below threshold cores: other people's
    jobs skew a measurement more than anything we do."""
    while True:
        s0 = system_busy()
        time.sleep(window)
        busy = (system_busy() - s0) / window
        if busy < threshold or run.quiet_budget <= 0:
            return busy
        run.quiet_budget -= window


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "Threads", "VmHWM"):
                out[k] = int(v.split()[0])
    try:
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        out["fds"] = -1
    return out


def proc_environ(pid):
    """The environment pid was started with (/proc/PID/environ), as a dict."""
    with open(f"/proc/{pid}/environ", "rb") as f:
        entries = f.read().split(b"\0")
    return dict(e.decode("utf-8", "replace").partition("=")[::2] for e in entries if e)
