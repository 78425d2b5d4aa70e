"""launchers.py: the app started as a process of its own, the way a file in
conf/ says, for the web servers that do not start it themselves (Apache,
nginx): spawn-fcgi (conf/spawn-fcgi/), systemd socket activation
(conf/systemd/, run with systemd-socket-activate since no systemd runs
here) and the container's entrypoint (conf/container/, run as the image
would, without a container engine).

Each reads its file and fills in only ports and paths: the program becomes
the built binary, the socket a path in the instance's shared directory,
settings come from the test. Every launcher ends in an exec of the app, so
the process the test started is the app (same pid) once it serves; SIGTERM
to it is SIGTERM to the app.
"""
import grp
import json
import os
import re
import resource
import shlex
import socket
import subprocess
import time

from . import servers, wrapper
from .timing import scaled

CONF = os.path.join(servers.REPO, "conf")
SPAWN_SCRIPT = os.path.join(CONF, "spawn-fcgi", "openova-flow-fcgi-spawn")
SYSTEMD_DIR = os.path.join(CONF, "systemd")
CONTAINER_DIR = os.path.join(CONF, "container")
SOCKET_ACTIVATE = "/usr/bin/systemd-socket-activate"
SPAWN_FCGI_BIN = "/usr/bin/spawn-fcgi"
SETPRIV = "/usr/bin/setpriv"
# Where the shipped files install the program.
INSTALLED_BIN = "/usr/local/bin/openova-flow-fcgi"

# The sanitizer settings of `make check-asan` reach the app whichever way it
# is started.
PASS_THROUGH = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")


def is_root():
    return os.getuid() == 0


class Launcher:
    """Starts, watches and stops the app. address: a unix socket path, or
    (host, port) for TCP. Subclasses say how (command())."""

    name = None

    def __init__(self, app_env, workdir, address):
        self.app_env = dict(app_env)
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.address = address
        self.proc = None
        self.log_path = os.path.join(self.dir, "app.log")
        self.starts = 0

    def command(self):
        """(argv, env, preexec) for one start."""
        raise NotImplementedError

    def prepare(self):
        """Before each start (the socket file of a stopped app stays)."""

    def after_spawn(self):
        """After Popen, before waiting for the socket."""

    def start(self, wait=True):
        self.prepare()
        argv, env, preexec = self.command()
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts + 1}: {shlex.join(argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(argv, env=env, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, start_new_session=True, preexec_fn=preexec)
        self.starts += 1
        self.after_spawn()
        if wait:
            self.wait_ready()
        return self

    def _connect(self):
        family = socket.AF_UNIX if isinstance(self.address, str) else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.settimeout(0.5)
            s.connect(self.address)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def wait_ready(self, timeout=None):
        """Until the socket takes a connection and the process is the app
        (socket activation execs it on the first connection)."""
        deadline = time.monotonic() + (scaled(10) if timeout is None else timeout)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            if self._connect() and self.is_app():
                return
            time.sleep(0.02)
        raise RuntimeError(f"{self.name}: app not serving on {self.address}:\n{self.log()}")

    def is_app(self):
        return wrapper.is_app(self.proc.pid)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def log(self):
        return servers.read_log(self.log_path)

    def stop(self):
        if self.proc:
            servers.kill_group(self.proc)
            self.proc = None

    def _passed_env(self):
        return {n: os.environ[n] for n in PASS_THROUGH if n in os.environ}


class SpawnFcgi(Launcher):
    """conf/spawn-fcgi/openova-flow-fcgi-spawn, with the program and the
    socket filled in. As root it drops the app to nobody and gives the
    socket to www-data's group, as the script does by default."""

    name = "spawn-fcgi"

    def command(self):
        env = servers.base_env()
        env.update(self._passed_env())
        env.update(self.app_env)
        env.update({"OPENOVA_FLOW_BIN": wrapper.program(), "OPENOVA_FLOW_SOCKET": self.address})
        return [SPAWN_SCRIPT], env, None


def parse_unit(path):
    """A systemd unit file as {section: [(key, value), ...]}."""
    sections, current = {}, None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                current = sections.setdefault(line[1:-1], [])
                continue
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def unit_value(sections, section, key):
    values = [v for k, v in sections.get(section, []) if k == key]
    assert len(values) == 1, f"{key}= in [{section}]: {values}"
    return values[0]


def parse_env_file(path):
    """systemd EnvironmentFile= syntax as far as the shipped file uses it:
    NAME=value lines, # comments."""
    env = {}
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


class SocketActivated(Launcher):
    """conf/systemd/openova-flow-fcgi.socket + .service under
    systemd-socket-activate: it binds ListenStream (the path filled in),
    waits for the first connection and execs ExecStart (the program filled
    in) with LISTEN_FDS=1 and the socket on fd 3, as systemd does. The
    harness applies what systemd-socket-activate cannot: SocketMode and
    SocketGroup, LimitNOFILE, the EnvironmentFile (conf/systemd/
    openova-flow-fcgi.env, then the test's settings over it) and, as root,
    an unprivileged user standing in for DynamicUser (nobody, via setpriv)."""

    name = "systemd"

    def __init__(self, app_env, workdir, address):
        super().__init__(app_env, workdir, address)
        self.socket_unit = parse_unit(os.path.join(SYSTEMD_DIR, "openova-flow-fcgi.socket"))
        self.service_unit = parse_unit(os.path.join(SYSTEMD_DIR, "openova-flow-fcgi.service"))

    def prepare(self):
        # systemd removes a stale socket file before binding; so do we.
        if os.path.exists(self.address):
            os.unlink(self.address)

    def command(self):
        listen = unit_value(self.socket_unit, "Socket", "ListenStream")
        assert listen.startswith("/"), f"ListenStream={listen}: a unix socket path is expected"
        exec_start = shlex.split(unit_value(self.service_unit, "Service", "ExecStart"))
        assert exec_start[0] == INSTALLED_BIN, exec_start
        program = [wrapper.program()] + exec_start[1:]
        if unit_value(self.service_unit, "Service", "DynamicUser") == "yes" and is_root():
            program = [SETPRIV, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"] + program

        env_file = unit_value(self.service_unit, "Service", "EnvironmentFile").lstrip("-")
        assert env_file == "/etc/default/openova-flow-fcgi", env_file
        app_env = parse_env_file(os.path.join(SYSTEMD_DIR, "openova-flow-fcgi.env"))
        app_env.update(self._passed_env())
        app_env.update(self.app_env)
        argv = [SOCKET_ACTIVATE, "-l", self.address]
        for name, value in app_env.items():
            argv += ["-E", f"{name}={value}"]
        argv += program

        nofile = int(unit_value(self.service_unit, "Service", "LimitNOFILE"))

        def preexec():
            # As far as this machine's hard limit allows (systemd would
            # raise it; a sandbox may not let us).
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            limit = nofile if hard == resource.RLIM_INFINITY else min(nofile, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
        return argv, servers.base_env(), preexec

    def after_spawn(self):
        deadline = time.monotonic() + scaled(5)
        while not os.path.exists(self.address):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"systemd-socket-activate did not bind {self.address}:\n{self.log()}")
            time.sleep(0.01)
        mode = int(unit_value(self.socket_unit, "Socket", "SocketMode"), 8)
        os.chmod(self.address, mode)
        if is_root():
            os.chown(self.address, 0, grp.getgrnam(unit_value(self.socket_unit, "Socket", "SocketGroup")).gr_gid)


def parse_containerfile(path):
    """The runtime stage of the Containerfile: its ENV settings, COPY
    destinations (source or stage path), USER, ENTRYPOINT and HEALTHCHECK
    command (exec form), with continuation lines joined."""
    with open(path) as f:
        text = f.read()
    text = re.sub(r"\\\n", " ", text)
    stages = re.split(r"^FROM ", text, flags=re.M)
    runtime = stages[-1]
    out = {"env": {}, "copy": {}, "user": None, "entrypoint": None, "healthcheck": None}
    for line in runtime.splitlines():
        line = line.strip()
        if line.startswith("ENV "):
            for item in shlex.split(line[4:]):
                name, _, value = item.partition("=")
                out["env"][name] = value
        elif line.startswith("COPY "):
            parts = [p for p in line[5:].split() if not p.startswith("--")]
            out["copy"][parts[-1]] = parts[0]
        elif line.startswith("USER "):
            out["user"] = line[5:].strip()
        elif line.startswith("ENTRYPOINT "):
            out["entrypoint"] = json.loads(line[len("ENTRYPOINT "):])
        elif line.startswith("HEALTHCHECK "):
            out["healthcheck"] = json.loads(line[line.index("CMD ") + 4:])
    return out


class ContainerEntrypoint(Launcher):
    """The image's ENTRYPOINT (conf/container/entrypoint.sh) with the
    image's ENV, as the image's USER (as root: setpriv to that uid:gid, which
    needs no passwd entry). Filled in: the program (OPENOVA_FLOW_BIN) and
    the listening address (OPENOVA_FLOW_LISTEN: a free loopback port instead
    of 9000)."""

    name = "container"

    def __init__(self, app_env, workdir, address):
        super().__init__(app_env, workdir, address)
        self.image = parse_containerfile(os.path.join(CONTAINER_DIR, "Containerfile"))

    def repo_path(self, image_path):
        source = self.image["copy"][image_path]
        return wrapper.program() if source.endswith("build/openova-flow-fcgi") else os.path.join(servers.REPO, source)

    def image_env(self):
        env = servers.base_env()
        env.update(self.image["env"])
        env.update(self._passed_env())
        host, port = self.address
        env.update({"OPENOVA_FLOW_BIN": self.repo_path(INSTALLED_BIN), "OPENOVA_FLOW_LISTEN": f"{host}:{port}"})
        return env

    def as_image_user(self, argv):
        if not is_root():
            return argv
        uid, _, gid = self.image["user"].partition(":")
        return [SETPRIV, f"--reuid={uid}", f"--regid={gid or uid}", "--clear-groups", "--"] + argv

    def command(self):
        env = self.image_env()
        env.update(self.app_env)
        argv = [self.repo_path(p) for p in self.image["entrypoint"][:1]] + self.image["entrypoint"][1:]
        return self.as_image_user(argv), env, None

    def healthcheck(self):
        """Runs the image's HEALTHCHECK command; its exit status."""
        cmd = self.image["healthcheck"]
        argv = self.as_image_user([self.repo_path(cmd[0])] + cmd[1:])
        return subprocess.run(argv, env=self.image_env(), stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=scaled(20)).returncode
