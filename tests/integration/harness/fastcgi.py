"""fastcgi.py: a minimal FastCGI client (responder role) for driving the app
directly, beside the lighttpd layer: it shows exactly which CGI headers the
app writes, before a web server adds or drops any.

Protocol: https://fastcgi-archives.github.io/FastCGI_Specification.html
"""
import socket
import struct
import time

from .timing import scaled

FCGI_VERSION_1 = 1
FCGI_BEGIN_REQUEST = 1
FCGI_ABORT_REQUEST = 2
FCGI_END_REQUEST = 3
FCGI_PARAMS = 4
FCGI_STDIN = 5
FCGI_STDOUT = 6
FCGI_STDERR = 7
FCGI_RESPONDER = 1

_HEADER = struct.Struct(">BBHHBx")


def _record(rtype, request_id, content=b""):
    out = b""
    # Records carry at most 65535 bytes; an empty record is the stream end.
    chunks = [content[i:i + 65535] for i in range(0, len(content), 65535)] or [b""]
    for chunk in chunks:
        out += _HEADER.pack(FCGI_VERSION_1, rtype, request_id, len(chunk), 0) + chunk
    return out


def _nv_len(n):
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)


def encode_params(params):
    out = b""
    for name, value in params.items():
        name_b = name.encode("latin-1") if isinstance(name, str) else name
        value_b = value.encode("latin-1") if isinstance(value, str) else value
        out += _nv_len(len(name_b)) + _nv_len(len(value_b)) + name_b + value_b
    return out


def cgi_params(method, target, headers=(), body=b"", remote_user=None, remote_addr="127.0.0.1"):
    """The CGI/1.1 variables a web server passes for an HTTP request."""
    path, _, query = target.partition("?")
    params = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": "fastcgi-test-client",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "REQUEST_METHOD": method,
        "REQUEST_URI": target,
        "SCRIPT_NAME": "/api/v1/flows",
        "PATH_INFO": path[len("/api/v1/flows"):] if path.startswith("/api/v1/flows") else "",
        "QUERY_STRING": query,
        "REMOTE_ADDR": remote_addr,
        "REMOTE_PORT": "40000",
    }
    if remote_user is not None:
        params["REMOTE_USER"] = remote_user
        params["AUTH_TYPE"] = "Basic"
    if body or method == "POST":
        params["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers:
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            params["CONTENT_TYPE"] = value
        elif key == "CONTENT_LENGTH":
            params["CONTENT_LENGTH"] = value
        else:
            params["HTTP_" + key] = value
    return params


class FcgiResponse:
    def __init__(self):
        self.raw = b""          # the whole FCGI_STDOUT stream
        self.stderr = b""
        self.ended = False      # FCGI_END_REQUEST seen
        self.app_status = None
        self.status = None
        self.headers = []       # [(name, value)] as the app wrote them
        self.body = b""

    def header(self, name):
        vals = [v for n, v in self.headers if n.lower() == name.lower()]
        return vals[0] if vals else None

    def header_names(self):
        return [n for n, _ in self.headers]

    def parse_head(self):
        sep = self.raw.find(b"\r\n\r\n")
        if sep < 0:
            return False
        head = self.raw[:sep].decode("latin-1")
        self.body = self.raw[sep + 4:]
        self.headers = []
        for line in head.split("\r\n"):
            name, _, value = line.partition(":")
            self.headers.append((name, value.strip()))
        status = self.header("Status")
        self.status = int(status.split()[0]) if status else 200
        return True


def request_head(params, request_id=1, keep_conn=False):
    """FCGI_BEGIN_REQUEST and the parameters: a request up to its input,
    for a test that sends the rest (or not) itself."""
    begin = struct.pack(">HB5x", FCGI_RESPONDER, 1 if keep_conn else 0)
    return (_record(FCGI_BEGIN_REQUEST, request_id, begin) +
            _record(FCGI_PARAMS, request_id, encode_params(params)) + _record(FCGI_PARAMS, request_id))


class FcgiConnection:
    """One request over one connection (the app may close after it)."""

    def __init__(self, address, timeout=None):
        timeout = scaled(10.0) if timeout is None else timeout
        if isinstance(address, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self.buf = b""
        self.resp = FcgiResponse()
        self.request_id = 1

    def send_request(self, params, body=b"", keep_conn=False):
        data = request_head(params, self.request_id, keep_conn)
        if body:
            data += _record(FCGI_STDIN, self.request_id, body)
        data += _record(FCGI_STDIN, self.request_id)
        self.sock.sendall(data)

    def _read_record(self, deadline):
        while len(self.buf) < 8 or len(self.buf) < 8 + self._need():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("FastCGI response timed out")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        _, rtype, _, clen, plen = _HEADER.unpack(self.buf[:8])
        content = self.buf[8:8 + clen]
        self.buf = self.buf[8 + clen + plen:]
        return rtype, content

    def _need(self):
        _, _, _, clen, plen = _HEADER.unpack(self.buf[:8])
        return clen + plen

    def read_some(self, timeout):
        """Reads records until one arrives or timeout; returns False at the end."""
        deadline = time.monotonic() + timeout
        rec = self._read_record(deadline)
        if rec is None:
            self.resp.ended = True
            return False
        rtype, content = rec
        if rtype == FCGI_STDOUT:
            self.resp.raw += content
        elif rtype == FCGI_STDERR:
            self.resp.stderr += content
        elif rtype == FCGI_END_REQUEST:
            self.resp.app_status = struct.unpack(">I", content[:4])[0]
            self.resp.ended = True
            return False
        self.resp.parse_head()
        return True

    def read_all(self, timeout=None):
        timeout = scaled(10.0) if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while self.read_some(max(0.01, deadline - time.monotonic())):
            pass
        self.resp.parse_head()
        return self.resp

    def abort(self):
        self.sock.sendall(_record(FCGI_ABORT_REQUEST, self.request_id))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def fcgi_request(address, method, target, headers=(), body=b"", remote_user=None, timeout=None):
    conn = FcgiConnection(address, timeout)
    try:
        conn.send_request(cgi_params(method, target, headers, body, remote_user), body)
        return conn.read_all(timeout)
    finally:
        conn.close()
