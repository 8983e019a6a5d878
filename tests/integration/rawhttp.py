"""Raw-socket HTTP helpers: the tests speak bytes, not a client library's idea
of HTTP, so malformed and adversarial requests reach the server unchanged."""

import json
import socket
import time


def connect(url, timeout=10.0):
    hostport = url.split("//", 1)[1]
    host, port = hostport.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    return s


class PendingSocket:
    """A socket wrapper that keeps bytes read past one response."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def response(self, head_only=False):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before a full response head: %r" % self.buf[:200])
            self.buf += chunk
        head, rest = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        n = 0 if head_only or status in (100, 204, 304) else int(headers.get("content-length", "0"))
        while len(rest) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed mid-body")
            rest += chunk
        self.buf = rest[n:]
        return status, headers, rest[:n]

    def closed_by_peer(self, timeout=5.0):
        """True when the server closes the connection (EOF or reset) in time."""
        self.sock.settimeout(timeout)
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        return False

    def close(self):
        self.sock.close()


def open_conn(url, timeout=10.0):
    return PendingSocket(connect(url, timeout))


def request(url, raw, head=False):
    """Sends raw bytes on a new connection and returns the first response."""
    c = open_conn(url)
    try:
        c.send(raw)
        return c.response(head_only=head)
    finally:
        c.close()


def error_of(body):
    return json.loads(body)["error"]
