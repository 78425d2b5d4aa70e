"""test_apache_snippet.py: conf/apache2/openova-flow-fcgi.conf used as
INSTALL says (issue 15): included verbatim with no Define of its two names,
it falls back to its documented defaults; a Define read before it wins; a
Define read after it (the trap of appending to apache2.conf) does not, so
INSTALL tells to put it before. Checked with `apache2 -t -D DUMP_RUN_CFG`
on a server of the shipped modules around the snippet."""
import os
import re
import subprocess

from harness import servers

CONF_DIR = os.path.join(servers.REPO, "conf", "apache2")
SNIPPET = os.path.join(CONF_DIR, "openova-flow-fcgi.conf")
DEFAULTS = {"openova_flow_socket": "/run/openova-flow-fcgi/openova-flow-fcgi.sock",
            "openova_flow_userfile": "/etc/apache2/openova-flow.htpasswd"}


def server_conf(tmp_path, before="", after=""):
    with open(os.path.join(CONF_DIR, "apache2.conf")) as f:
        modules = [line for line in f if line.startswith("LoadModule ")]
    path = tmp_path / "apache2.conf"
    # mod_info: -D DUMP_CONFIG shows the configuration as read.
    modules.append("LoadModule info_module /usr/lib/apache2/modules/mod_info.so\n")
    path.write_text("".join(modules) + f"""ServerName localhost
PidFile {tmp_path}/pid
DefaultRuntimeDir {tmp_path}
ErrorLog {tmp_path}/error.log
Listen 127.0.0.1:{servers.free_port()}
{before}
Include {SNIPPET}
{after}
""")
    return str(path)


def defines(conf):
    proc = subprocess.run([servers.APACHE, "-f", conf, "-t", "-D", "DUMP_RUN_CFG"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return dict(re.findall(r"^Define: (\w+)=(.*)$", proc.stdout, re.M)), proc.stderr


def test_defaults_without_defines(tmp_path):
    found, warnings = defines(server_conf(tmp_path))
    assert {k: found.get(k) for k in DEFAULTS} == DEFAULTS, found
    assert "not defined" not in warnings, warnings


def test_a_define_before_the_snippet_wins(tmp_path):
    found, _ = defines(server_conf(tmp_path, before="Define openova_flow_socket /srv/app.sock"))
    assert found["openova_flow_socket"] == "/srv/app.sock"
    assert found["openova_flow_userfile"] == DEFAULTS["openova_flow_userfile"]


def test_a_define_after_the_snippet_comes_too_late(tmp_path):
    """Why INSTALL says "before": the snippet's ProxyPass already used the default."""
    conf = server_conf(tmp_path, after="Define openova_flow_socket /srv/late.sock")
    proc = subprocess.run([servers.APACHE, "-f", conf, "-t", "-D", "DUMP_CONFIG"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    proxypass = [line for line in proc.stdout.splitlines() if "ProxyPass" in line and "unix:" in line]
    assert proxypass and all(DEFAULTS["openova_flow_socket"] in line for line in proxypass), proxypass
