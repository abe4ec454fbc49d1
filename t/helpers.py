"""What the end-to-end tests share: waiting, configurations of sites,
requests over http and TLS, md-status, job files, event recorders.
Test files import from here (and cluster.py), never from each other."""

import http.server
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from conftest import TOP
from sandbox import free_ports, serve_http
from sandbox import wait_for  # noqa: F401  (the tests import it from here)


DNS01 = os.path.join(TOP, "t", "dns01_challtestsrv.py")


SYSTEM_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def site(sb, name, aliases="", ssl_extra="", md=None, md_body=""):
    md_line = md if md is not None else f"MDomain {name}"
    if md_body:
        md_line = f"<MDomain {name}>\n{md_body}\n</MDomain>"
    alias = f"  ServerAlias {aliases}" if aliases else ""
    return f"""
{md_line}
<VirtualHost 127.0.0.1:{sb.https_port}>
  ServerName {name}
{alias}
  SSLEngine on
{ssl_extra}
</VirtualHost>
<VirtualHost 127.0.0.1:{sb.http_port}>
  ServerName {name}
{alias}
</VirtualHost>
"""


def staged_ok(sb, name, f="pubcert.pem"):
    return os.path.exists(sb.path("md", "staging", name, f))


def job(sb, name):
    try:
        with open(sb.path("md", "staging", name, "job.json")) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):  # not yet there, or a broken one not yet set aside
        return {}


def obtain(sb, name, timeout=60, f="pubcert.pem"):
    assert wait_for(lambda: staged_ok(sb, name, f) and job(sb, name).get("notified-renewed"), timeout), \
        sb.error_log()[-4000:]


def https_get(sb, host, path="/index.html"):
    """GET over TLS with SNI `host`; returns (status, cert text)."""
    status, der = sb.https_request(host, path)
    text = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-text"], input=der,
                          capture_output=True, check=True).stdout.decode()
    return status, text


def http_req(sb, host, path, method="GET", https=False):
    import http.client
    if https:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c = http.client.HTTPSConnection("127.0.0.1", sb.https_port, timeout=10, context=ctx)
        c._server_hostname = host  # SNI
        c.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", sb.https_port)), server_hostname=host)
    else:
        c = http.client.HTTPConnection("127.0.0.1", sb.http_port, timeout=10)
    c.putrequest(method, path, skip_host=True)
    c.putheader("Host", host)
    c.endheaders()
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, dict(r.getheaders()), body


STATUS = "<Location /md-status>\n  SetHandler md-status\n</Location>\n"


def fingerprint(sb, host):
    """(SHA-256 of the served certificate, HTTP status)."""
    import hashlib
    status, der = sb.https_request(host, timeout=5)
    return hashlib.sha256(der).hexdigest(), status


def md_status(sb, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{sb.http_port}/md-status/{name}", timeout=5) as r:
        return json.load(r)


def events_cmd(sb):
    notify = sb.path("events.sh")
    with open(notify, "w") as f:
        f.write(f"#!/bin/sh\necho \"$@\" >> {sb.path('logs', 'events.log')}\n")
    os.chmod(notify, 0o755)
    os.chmod(sb.path("logs"), 0o777)
    return f"MDMessageCmd {notify}\n"


def events(sb):
    try:
        return open(sb.path("logs", "events.log")).read()
    except FileNotFoundError:
        return ""


def shape(v):
    """Keys, nesting and value types of a JSON value."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    return type(v).__name__


def start_must_fail(sb, body, module=None):
    """Starts httpd with `body`; it must not end up running. Returns the log."""
    sb.clear_log()
    sb.write_conf(body, module=module)
    r = sb.start_httpd(check=False)
    end = time.time() + 15
    while time.time() < end:
        pid = sb.pid()
        if r.returncode != 0 or pid is None or not sb._alive(pid):
            break
        time.sleep(0.1)
    pid = sb.pid()
    assert r.returncode != 0 or pid is None or not sb._alive(pid), "httpd kept running"
    wait_ports_free(sb)
    return r.stderr + r.stdout + sb.error_log()


def wait_ports_free(sb, timeout=15):
    """A failing httpd exits shortly after logging: wait until its listeners are gone."""
    end = time.time() + timeout
    for port in (sb.http_port, sb.https_port):
        while time.time() < end:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                    break
                except OSError:
                    time.sleep(0.05)


def staged_path(sb, name, f):
    """A file of an MD's staging area."""
    return sb.path("md", "staging", name, f)


def staged_done(sb, name):
    """The MD's renewal finished and said so (`notified-renewed`)."""
    return job(sb, name).get("notified-renewed") is True


def mgmt_get(sb, path):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(f"https://127.0.0.1:{sb.pebble_mgmt}{path}", context=ctx,
                                timeout=10) as r:
        return r.read().decode()


class OcspResponder:
    """The CA's OCSP responder: `openssl ocsp` signs the answers with
    pebble's intermediate for the certificates listed with `add`; a small
    HTTP front on 127.0.0.1 hands it each request (`openssl ocsp -port`
    would listen on every interface)."""

    def __init__(self, sb, port):
        self.sb, self.port, self.server = sb, port, None
        self.ca = sb.path("ca", "intermediate.pem")
        self.key = sb.path("ca", "intermediate-key.pem")
        self.index = sb.path("ca", "ocsp-index.txt")
        self.requests = 0
        with open(self.index, "w"):
            pass

    def add(self, pem_file, status="V"):
        out = subprocess.run(["openssl", "x509", "-in", pem_file, "-noout", "-serial", "-enddate",
                              "-subject", "-nameopt", "compat"],
                             capture_output=True, text=True, check=True).stdout
        f = dict(line.split("=", 1) for line in out.splitlines())
        end = time.strftime("%y%m%d%H%M%SZ", time.strptime(f["notAfter"], "%b %d %H:%M:%S %Y %Z"))
        revoked = time.strftime("%y%m%d%H%M%SZ", time.gmtime()) if status == "R" else ""
        with open(self.index, "a") as fh:
            fh.write(f"{status}\t{end}\t{revoked}\t{f['serial']}\tunknown\t{f['subject']}\n")

    def answer(self, request):
        self.requests += 1
        d = tempfile.mkdtemp(dir=self.sb.path("ca"))
        req, out = os.path.join(d, "req.der"), os.path.join(d, "resp.der")
        with open(req, "wb") as f:
            f.write(request)
        subprocess.run(["openssl", "ocsp", "-index", self.index, "-rsigner", self.ca,
                        "-rkey", self.key, "-CA", self.ca, "-nmin", "600",
                        "-reqin", req, "-respout", out],
                       capture_output=True, check=True, timeout=20)
        with open(out, "rb") as f:
            return f.read()

    def start(self):
        with open(self.ca, "w") as f:
            f.write(mgmt_get(self.sb, "/intermediates/0"))
        with open(self.key, "w") as f:
            f.write(mgmt_get(self.sb, "/intermediate-keys/0"))
        responder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                data = responder.answer(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = serve_http(Handler, self.port)

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def black_hole():
    """A TCP server that accepts and never says anything."""
    s = socket.socket()
    s.bind(("127.0.0.1", free_ports(1)[0]))
    s.listen(64)
    conns = []

    def accept():
        while True:
            try:
                conns.append(s.accept()[0])
            except OSError:
                return
    threading.Thread(target=accept, daemon=True).start()
    return s, conns
