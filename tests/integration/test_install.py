"""test_install.py: the program as a packager or a sysadmin installs it.

`make install DESTDIR=... PREFIX=...` lays out exactly the files the
Makefile lists (INSTALL_FILES), with the installed paths written into the
systemd units, the spawn script, the snippets and the man page; the
installed units pass `systemd-analyze verify`; lighttpd with the installed
snippet, document root and binary serves a snapshot; `make uninstall`
leaves no file behind. Beside it: the man pages render without a single
warning and name every option and variable of --help, and the version is
the same in VERSION, debian/changelog and both programs' --version.

With OPENOVA_TEST_INSTALLED=1 the tests named test_installed_* check the
files the Debian package put under / instead of a DESTDIR
(tools/check-installed-package, which CI runs after installing the .deb).

The installed binary is the one of this build tree (make check-asan's
under ASan); the app is run without OPENOVA_FLOW_FCGI_WRAPPER here, since
what is tested is the installed file itself.
"""
import glob
import importlib.machinery
import importlib.util
import os
import re
import subprocess

import pytest

from harness import client, servers
from harness.upstream import Reply

REPO = servers.REPO
INSTALLED = os.environ.get("OPENOVA_TEST_INSTALLED") == "1"
# The build tree of the binary under test (make check-asan: build/asan).
BUILD = os.path.relpath(os.path.dirname(servers.BINARY), REPO)
DEVSERVER = os.path.join(os.path.dirname(servers.BINARY), "openova-flow-devserver")
MAN_PAGES = [os.path.join(REPO, BUILD, name) for name in ("openova-flow-fcgi.8", "openova-flow-devserver.1", "openova-flow-verify.1")]
WWW = sorted(os.listdir(os.path.join(REPO, "www")))
DOCS = ["README.md", "INSTALL", "SECURITY.md", "LICENSE", "CHANGELOG.md"]
# The units' directory of PREFIX=/usr: systemd's own (Debian 12: /lib).
SYSTEM_UNITDIR = subprocess.run(["pkg-config", "--variable=systemdsystemunitdir", "systemd"],
                                capture_output=True, text=True).stdout.strip() or "/lib/systemd/system"


def make(*args):
    # Not the jobserver of a make that runs this suite: its descriptors do
    # not reach this one.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    proc = subprocess.run(["make", "-C", REPO, "--no-print-directory", f"BUILD={BUILD}", *args],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, f"make {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


class Tree:
    """An installed tree: root is a DESTDIR (or / for the package), prefix
    and sysconfdir what it was installed with, unitdir where its units are."""

    def __init__(self, root, prefix, sysconfdir, unitdir):
        self.root, self.prefix, self.sysconfdir, self.unitdir = root, prefix, sysconfdir, unitdir

    def path(self, installed_path):
        return os.path.join(self.root, installed_path.lstrip("/"))

    @property
    def bin(self):
        return self.path(f"{self.prefix}/bin/openova-flow-fcgi")

    @property
    def pkgdata(self):
        return self.path(f"{self.prefix}/share/openova-flow-fcgi")

    def unit(self, name):
        return self.path(f"{self.unitdir}/{name}")

    def expected_files(self):
        """Every file make install installs, relative to root: the layout
        README and INSTALL promise."""
        p, share = self.prefix.lstrip("/"), self.prefix.lstrip("/") + "/share"
        units = self.unitdir.lstrip("/")
        files = {
            f"{p}/bin/openova-flow-fcgi": 0o755,
            f"{p}/bin/openova-flow-devserver": 0o755,
            f"{p}/bin/openova-flow-verify": 0o755,
            f"{share}/doc/openova-flow-fcgi/runbooks/multi-region-verify.md": 0o644,
            f"{share}/man/man8/openova-flow-fcgi.8": 0o644,
            f"{share}/man/man1/openova-flow-devserver.1": 0o644,
            f"{share}/man/man1/openova-flow-verify.1": 0o644,
            f"{units}/openova-flow-fcgi.socket": 0o644,
            f"{units}/openova-flow-fcgi.service": 0o644,
            f"{share}/openova-flow-fcgi/systemd/openova-flow-fcgi.env": 0o644,
            f"{share}/openova-flow-fcgi/spawn-fcgi/openova-flow-fcgi-spawn": 0o755,
            f"{share}/openova-flow-fcgi/lighttpd/openova-flow-fcgi.conf": 0o644,
            f"{share}/openova-flow-fcgi/apache2/openova-flow-fcgi.conf": 0o644,
            f"{share}/openova-flow-fcgi/nginx/openova-flow-fcgi.conf": 0o644,
            f"{share}/openova-flow-fcgi/nginx/openova-flow-www.conf": 0o644,
        }
        files.update({f"{share}/openova-flow-fcgi/www/{name}": 0o644 for name in WWW})
        files.update({f"{share}/doc/openova-flow-fcgi/{name}": 0o644 for name in DOCS})
        return files


def install(destdir, *args):
    make("install", f"DESTDIR={destdir}", *args)


def files_under(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = os.stat(path).st_mode & 0o7777
    return out


# (PREFIX, sysconfdir, unitdir it must give): a distribution's /usr, and the
# default /usr/local, whose units go where systemd also looks.
PREFIXES = [("/usr", "/etc", SYSTEM_UNITDIR), ("/usr/local", "/usr/local/etc", "/usr/local/lib/systemd/system")]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """PREFIX=/usr installed into a DESTDIR; or, with OPENOVA_TEST_INSTALLED=1,
    the Debian package's files under /."""
    if INSTALLED:
        return Tree("/", "/usr", "/etc", "/lib/systemd/system")
    dest = tmp_path_factory.mktemp("destdir")
    install(dest, "PREFIX=/usr")
    return Tree(str(dest), *PREFIXES[0])


@pytest.mark.parametrize("prefix,sysconfdir,unitdir", PREFIXES, ids=[p[0] for p in PREFIXES])
def test_install_lays_out_exactly_the_listed_files(tmp_path, prefix, sysconfdir, unitdir):
    install(tmp_path, f"PREFIX={prefix}")
    t = Tree(str(tmp_path), prefix, sysconfdir, unitdir)
    assert files_under(tmp_path) == t.expected_files()

    # The installed copies name the installed paths, never the repository's
    # /usr/local defaults (unless that is the prefix).
    with open(t.unit("openova-flow-fcgi.service")) as f:
        service = f.read()
    assert f"\nExecStart={prefix}/bin/openova-flow-fcgi\n" in service
    assert f"\nDocumentation=file:{prefix}/share/doc/openova-flow-fcgi/README.md\n" in service
    assert f"\nEnvironmentFile=-{sysconfdir}/default/openova-flow-fcgi\n" in service
    with open(t.path(f"{prefix}/share/openova-flow-fcgi/spawn-fcgi/openova-flow-fcgi-spawn")) as f:
        assert f"bin=${{OPENOVA_FLOW_BIN:-{prefix}/bin/openova-flow-fcgi}}" in f.read()
    with open(t.path(f"{prefix}/share/man/man8/openova-flow-fcgi.8")) as f:
        page = f.read()
    # (roff: scdoc writes "\&" after each period)
    assert f"{prefix}/share/openova-flow-fcgi/lighttpd/openova-flow-fcgi.\\&conf" in page
    assert f"{unitdir}/openova-flow-fcgi.\\&socket" in page
    if prefix != "/usr/local":
        for rel in t.expected_files():
            if "/doc/" in rel or "/www/" in rel or "/bin/" in rel:
                continue   # the documents are copied as they are
            with open(os.path.join(tmp_path, rel), encoding="utf-8") as f:
                assert "/usr/local" not in f.read(), rel


def test_uninstall_leaves_no_file_behind(tmp_path):
    install(tmp_path, "PREFIX=/usr")
    make("uninstall", f"DESTDIR={tmp_path}", "PREFIX=/usr")
    assert files_under(tmp_path) == {}
    # Our own directories go too; the shared ones (bin, man8, ...) may stay.
    for own in ("usr/share/openova-flow-fcgi", "usr/share/doc/openova-flow-fcgi"):
        assert not os.path.exists(tmp_path / own), own


def test_uninstall_keeps_what_it_did_not_install(tmp_path):
    """A file of the admin's in one of our directories stays, and so does
    its directory."""
    install(tmp_path, "PREFIX=/usr")
    mine = tmp_path / "usr/share/openova-flow-fcgi/lighttpd/local.conf"
    mine.write_text("# the admin's\n")
    make("uninstall", f"DESTDIR={tmp_path}", "PREFIX=/usr")
    assert files_under(tmp_path) == {"usr/share/openova-flow-fcgi/lighttpd/local.conf": 0o644}


def verify_units(t, scratch):
    """systemd-analyze verify on the installed units: not a line of output.
    In a DESTDIR the program is not where ExecStart= says until the tree is
    in place, so (after checking it is there in the tree) a copy of the
    units names it inside the tree; nothing else changes. (verify --root
    would look for the units they depend on in the tree too: sysinit.target
    and the rest are not there.)"""
    units = [t.unit("openova-flow-fcgi.socket"), t.unit("openova-flow-fcgi.service")]
    if t.root != "/":
        with open(units[1]) as f:
            service = f.read()
        (exec_start,) = re.findall(r"^ExecStart=(\S+)$", service, re.M)
        assert os.access(t.path(exec_start), os.X_OK), exec_start
        os.makedirs(scratch, exist_ok=True)
        copies = [os.path.join(scratch, os.path.basename(u)) for u in units]
        with open(units[0]) as src, open(copies[0], "w") as dst:
            dst.write(src.read())
        with open(copies[1], "w") as f:
            f.write(service.replace(f"\nExecStart={exec_start}\n", f"\nExecStart={t.path(exec_start)}\n"))
        units = copies
    proc = subprocess.run(["systemd-analyze", "verify"] + units, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc
    assert proc.stdout == b"" and proc.stderr == b"", proc


def test_installed_units_verify(tree, tmp_path):
    verify_units(tree, tmp_path / "units")


def test_units_of_another_prefix_verify(tmp_path):
    prefix, sysconfdir, unitdir = PREFIXES[1]
    install(tmp_path / "dest", f"PREFIX={prefix}")
    verify_units(Tree(str(tmp_path / "dest"), prefix, sysconfdir, unitdir), tmp_path / "units")


class InstalledLighttpd(servers.Lighttpd):
    """conf/lighttpd/lighttpd.conf with its include of the snippet pointed
    at the installed one, the installed www/ as document root and the
    installed binary as bin-path: everything the app and lighttpd read comes
    from the tree."""

    def __init__(self, t, app_env, workdir):
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(servers.CONF_DIR, "lighttpd.conf")) as f:
            text = f.read()
        include = 'include "openova-flow-fcgi.conf"'
        assert text.count(include) == 1
        conf = os.path.join(str(workdir), "lighttpd.conf")
        with open(conf, "w") as f:
            f.write(text.replace(include, f'include "{t.pkgdata}/lighttpd/openova-flow-fcgi.conf"'))
        super().__init__(app_env, workdir, conf=conf)
        self.auth = True
        self.tree = t

    def env(self):
        env = super().env()
        env.update({"OPENOVA_LIGHTTPD_ROOT": self.tree.pkgdata, "OPENOVA_LIGHTTPD_BIN": self.tree.bin})
        return env


def test_installed_files_serve_a_snapshot_through_lighttpd(tree, upstream, fid, tmp_path):
    server = InstalledLighttpd(tree, {"OPENOVA_FLOW_SERVER_URL": upstream.url}, tmp_path / "lighttpd")
    server.start()
    try:
        (pid,) = server.app_pids()
        assert os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(tree.bin)

        flow = fid()
        body = b'{"flow":{"id":"x","status":"running"},"nodes":[],"relationships":[]}'
        upstream.set(flow, Reply(headers=[("Content-Type", "application/json")], body=body))
        resp = client.request(server.port, "GET", f"/api/v1/flows/{flow}/snapshot", server.auth_headers())
        assert (resp.status, resp.body) == (200, body), resp
        assert [r.target for r in upstream.requests(flow)] == [f"/v1/flows/{flow}/snapshot"]

        resp = client.request(server.port, "GET", f"/api/v1/flows/{flow}/snapshot")
        assert resp.status == 401, resp   # the snippet's basic auth

        resp = client.request(server.port, "GET", "/openova-flow/healthz")
        assert (resp.status, resp.json()) == (200, {"status": "ok"}), resp

        # The live page, where the snippet mounts it (and at /, lighttpd.conf's
        # document root).
        for target in ("/", "/flow/"):
            resp = client.request(server.port, "GET", target)
            with open(os.path.join(tree.pkgdata, "www", "index.html"), "rb") as f:
                assert (resp.status, resp.body) == (200, f.read()), (target, resp)
        resp = client.request(server.port, "GET", "/flow/app.js")
        assert resp.status == 200 and resp.header("Content-Type").startswith("text/javascript"), resp
    finally:
        server.stop()


def test_installed_version_agrees(tree):
    version = read_version()
    out = subprocess.run([tree.bin, "--version"], capture_output=True, text=True, timeout=10).stdout
    assert out.startswith(f"openova-flow-fcgi {version} "), out


# --- the version, from one place ------------------------------------------

def read_version():
    with open(os.path.join(REPO, "VERSION")) as f:
        version = f.read().strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    return version


def test_version_is_the_same_everywhere():
    version = read_version()
    with open(os.path.join(REPO, "debian", "changelog")) as f:
        head = f.readline()
    m = re.match(r"openova-flow-fcgi \(([^)]+)\) ", head)
    assert m, head
    assert re.sub(r"-[^-]+$", "", m.group(1)) == version, (head, version)   # upstream part, no Debian revision

    for binary, name in ((servers.BINARY, "openova-flow-fcgi"), (DEVSERVER, "openova-flow-devserver")):
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
        assert out.split()[:2] == [name, version], out
    for page in MAN_PAGES:
        with open(page) as f:
            assert f'"openova-flow-fcgi {version}"' in f.read(), page


# --- the man pages --------------------------------------------------------

@pytest.mark.parametrize("page", MAN_PAGES, ids=os.path.basename)
def test_man_page_renders_without_warnings(page):
    env = dict(servers.base_env(), MANWIDTH="80")
    proc = subprocess.run(["man", "--warnings", "-l", page], capture_output=True, env=env, timeout=30)
    assert proc.returncode == 0, proc
    assert proc.stderr == b"", proc.stderr.decode()
    assert len(proc.stdout) > 1000


def test_man_page_names_every_option_and_variable():
    """Every option and OPENOVA_FLOW_* variable that --help shows, and the
    options of issue 15, are in the page; every variable the page names
    exists."""
    help_text = subprocess.run([servers.BINARY, "--help"], capture_output=True, text=True, timeout=10).stdout
    with open(os.path.join(REPO, "doc", "openova-flow-fcgi.8.scd")) as f:
        page = f.read()
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", help_text))
    options |= {"--check-config", "--socket-mode", "--socket-owner", "--socket-group"}
    missing = sorted(o for o in options if f"*{o}*" not in page)
    assert not missing, f"options missing from the man page: {missing}"
    variables = set(re.findall(r"OPENOVA_FLOW_[A-Z_]*[A-Z]", help_text))
    missing = sorted(v for v in variables if f"*{v}*" not in page)
    assert not missing, f"variables missing from the man page: {missing}"
    known = set()
    for source in glob.glob(os.path.join(REPO, "core", "*.c")) + [os.path.join(REPO, "main.c")]:
        with open(source) as f:
            known |= set(re.findall(r'"(OPENOVA_FLOW_[A-Z_]+)"', f.read()))
    unknown = sorted(set(re.findall(r"OPENOVA_FLOW_[A-Z_]*[A-Z]", page)) - known)
    assert not unknown, f"the man page names variables the program does not read: {unknown}"


# --- INSTALL's steps from the package (tools/follow-install-guide) ---------

def guide_tool():
    path = os.path.join(REPO, "tools", "follow-install-guide")
    loader = importlib.machinery.SourceFileLoader("follow_install_guide", path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def test_the_install_guide_declares_what_the_snippet_reads():
    """CI runs the guide on Debian's lighttpd (it needs root and port 80);
    here, that its blocks are the six the tool expects and that the mount
    declares exactly the variables the installed snippet reads, with the
    package's paths."""
    blocks = guide_tool().guide_blocks()
    assert len(blocks) == 6, blocks
    mount = blocks[2]
    declared = dict(re.findall(r'^(var\.openova_flow_\w+)\s*=\s*"([^"]*)"', mount, re.M))
    with open(os.path.join(REPO, "conf", "lighttpd", "openova-flow-fcgi.conf")) as f:
        snippet = "\n".join(line for line in f if not line.lstrip().startswith("#"))
    assert set(declared) == set(re.findall(r"var\.openova_flow_\w+", snippet)), declared
    assert declared["var.openova_flow_bin"] == "/usr/bin/openova-flow-fcgi"
    assert declared["var.openova_flow_www"] == "/usr/share/openova-flow-fcgi/www"
    assert 'include "/usr/share/openova-flow-fcgi/lighttpd/openova-flow-fcgi.conf"' in mount
