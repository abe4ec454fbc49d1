#!/usr/bin/env python3
"""A throwaway httpd + ACME test CA sandbox on loopback.

One Sandbox owns a directory (its own ServerRoot) and every process it
starts: pebble (the ACME CA), pebble-challtestsrv (fake DNS answering
127.0.0.1 for every name, so the CA's validation really connects back to
httpd) and an Apache httpd with the module under test. Ports are picked
free on 127.0.0.1 at start. Everything it started is stopped by stop(), by
leaving the `with` block, at interpreter exit, and on SIGTERM/SIGINT.

Command line:
  sandbox.py demo        build the module, start CA + httpd, show the result
  sandbox.py start DIR   start a sandbox in DIR and leave it running
  sandbox.py stop DIR    stop the sandbox started in DIR
"""

import atexit
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
MODULES = "/usr/lib/apache2/modules"
C_MODULE = os.path.join(MODULES, "mod_md.so")
HTTPD = shutil.which("apache2") or "/usr/sbin/apache2"

_LIVE = []
# Roots this process made (mkdtemp): t/conftest.py removes them when a test
# session passed (MD_KEEP_SANDBOX=1 keeps them; a failed session keeps them
# for a look at the logs).
CREATED = []


def _cleanup_all(*_args):
    for sb in list(_LIVE):
        sb.stop()


atexit.register(_cleanup_all)


def _on_signal(signum, _frame):
    _cleanup_all()
    sys.exit(128 + signum)


for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    try:
        signal.signal(_sig, _on_signal)
    except (ValueError, OSError):  # not in the main thread
        pass


# Ports free_ports handed out in this process: a sandbox binds its ports
# only when httpd starts, so the kernel could give one of them to the next
# caller meanwhile (a front for the CA got the sandbox's http port once).
_HANDED_OUT = set()


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1, none handed out before by
    this process."""
    socks, ports = [], []
    while len(ports) < n:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            ports.append(port)
    for s in socks:
        s.close()
    return ports


def default_module():
    """The module to test: $MD_MODULE, else the newest cargo build."""
    env = os.environ.get("MD_MODULE")
    if env:
        return env
    cands = [os.path.join(TOP, "target", p, "libmod_md.so") for p in ("release", "debug")]
    cands = [c for c in cands if os.path.exists(c)]
    if not cands:
        raise RuntimeError("module not built: run 'cargo build --release' first")
    return max(cands, key=os.path.getmtime)


def wait_for(pred, timeout=60, step=0.2):
    """Polls `pred` until it is true (True) or `timeout` seconds pass (False)."""
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return False


def serve_http(handler, port, tls=None):
    """An HTTP(S) server for `handler` on 127.0.0.1:`port`, served by a daemon
    thread; `tls`: (certificate file, key file). Stop it with shutdown()."""
    import http.server
    import threading
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    srv.daemon_threads = True
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def wait_port(port, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


class Sandbox:
    """httpd + pebble + challtestsrv under one directory."""

    def __init__(self, root=None, module=None, user="www-data"):
        if root is None:
            root = tempfile.mkdtemp(prefix="md-sandbox-")
            CREATED.append(root)
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)
        self.module = module or default_module()
        self.user = user
        (self.pebble_port, self.pebble_mgmt, self.dns_port, self.chall_mgmt,
         self.http_port, self.https_port) = free_ports(6)
        self.procs = {}
        self.httpd_conf = None
        for d in ("ca", "logs", "run", "htdocs"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        with open(os.path.join(self.root, "htdocs", "index.html"), "w") as f:
            f.write("<h1>mod_md sandbox</h1>\n")
        self._make_traversable()
        _LIVE.append(self)

    # -- helpers -----------------------------------------------------------
    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def _make_traversable(self):
        """www-data must reach the ServerRoot (mkdtemp makes it 0700)."""
        p = self.root
        while p not in ("/", ""):
            st = os.stat(p)
            if not st.st_mode & 0o001 and os.getuid() == st.st_uid:
                os.chmod(p, st.st_mode | 0o755)
            p = os.path.dirname(p)

    @property
    def ca_url(self):
        return f"https://localhost:{self.pebble_port}/dir"

    @property
    def ca_cert(self):
        return self.path("ca", "pebble-tls.pem")

    # -- the CA ----------------------------------------------------------
    def _tls_cert(self):
        if os.path.exists(self.ca_cert):
            return
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
             "-keyout", self.path("ca", "pebble-tls.key"), "-out", self.ca_cert,
             "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True)
        os.chmod(self.ca_cert, 0o644)

    def start_ca(self, eab=False, env=None, ocsp_url="", validity=None):
        """Starts pebble-challtestsrv and pebble; waits until the directory answers.
        With `ocsp_url`, pebble names that OCSP responder in the certificates it issues;
        `validity` (seconds) makes it issue short-lived certificates."""
        self._tls_cert()
        cfg = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.pebble_port}",
            "managementListenAddress": f"127.0.0.1:{self.pebble_mgmt}",
            "certificate": self.ca_cert,
            "privateKey": self.path("ca", "pebble-tls.key"),
            "httpPort": self.http_port,
            "tlsPort": self.https_port,
            "ocspResponderURL": ocsp_url,
            "externalAccountBindingRequired": bool(eab),
        }}
        if eab:
            cfg["pebble"]["externalAccountMACKeys"] = dict(eab)
        if validity:
            cfg["pebble"]["certificateValidityPeriod"] = int(validity)
        with open(self.path("ca", "pebble.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        self._spawn("challtestsrv", [
            "pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
            "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", "",
            "-tlsalpn01", "", "-management", f"127.0.0.1:{self.chall_mgmt}"])
        penv = dict(os.environ, PEBBLE_VA_NOSLEEP="1")
        penv.update(env or {})
        self._spawn("pebble", ["pebble", "-config", self.path("ca", "pebble.json"),
                               "-dnsserver", f"127.0.0.1:{self.dns_port}"], env=penv)
        end = time.time() + 30
        ctx = ssl.create_default_context(cafile=self.ca_cert)
        while time.time() < end:
            try:
                with urllib.request.urlopen(self.ca_url, context=ctx, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("pebble did not come up; see " + self.path("logs", "pebble.log"))

    def _spawn(self, name, argv, env=None):
        log = open(self.path("logs", f"{name}.log"), "ab")
        self.procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True)
        log.close()

    def stop_ca(self):
        for name in ("pebble", "challtestsrv"):
            p = self.procs.pop(name, None)
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    # -- httpd -------------------------------------------------------------
    def base_conf(self, module=None, log_level="warn md:debug"):
        module = module or self.module
        return f"""ServerRoot {self.root}
DefaultRuntimeDir {self.path('run')}
PidFile {self.path('run', 'httpd.pid')}
ErrorLog {self.path('logs', 'error.log')}
LogLevel {log_level}
LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
LoadModule mime_module {MODULES}/mod_mime.so
TypesConfig /etc/mime.types
LoadModule socache_shmcb_module {MODULES}/mod_socache_shmcb.so
LoadModule ssl_module {MODULES}/mod_ssl.so
LoadModule status_module {MODULES}/mod_status.so
LoadModule md_module {module}
User {self.user}
Group {self.user}
ServerName localhost
DocumentRoot {self.path('htdocs')}
Listen 127.0.0.1:{self.http_port}
Listen 127.0.0.1:{self.https_port} https
SSLSessionCache shmcb:{self.path('run', 'ssl_scache')}(512000)
MDStoreDir {self.path('md')}
MDCertificateAuthority {self.ca_url}
MDCACertificateFile {self.ca_cert}
MDCertificateAgreement accepted
MDContactEmail admin@example.org
MDPortMap http:{self.http_port} https:{self.https_port}
"""

    def write_conf(self, body, module=None, base=True, log_level="warn md:debug", name="httpd.conf"):
        text = (self.base_conf(module, log_level) if base else "") + body + "\n"
        path = self.path(name)
        with open(path, "w") as f:
            f.write(text)
        self.httpd_conf = path
        return path

    def apachectl(self, *args, conf=None, timeout=60):
        conf = conf or self.httpd_conf
        return subprocess.run([HTTPD, "-f", conf, *args], capture_output=True, text=True,
                              timeout=timeout)

    def config_test(self, body, module=None, base=True):
        """`apache2 -t` on a config; returns (exit code, stderr+stdout)."""
        conf = self.write_conf(body, module=module, base=base, name="test.conf")
        r = self.apachectl("-t", conf=conf)
        return r.returncode, (r.stderr + r.stdout).strip()

    def pid(self):
        try:
            with open(self.path("run", "httpd.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def start_httpd(self, body=None, module=None, log_level="warn md:debug", check=True):
        """Starts httpd (graceful restart if running). Returns the CompletedProcess."""
        if body is not None:
            self.write_conf(body, module=module, log_level=log_level)
        running = self.pid() is not None and self._alive(self.pid())
        generations = self.error_log().count("resuming normal operations") if running else 0
        r = self.apachectl("-k", "graceful" if running else "start")
        if r.returncode == 0 and running:
            # `-k graceful` returns once the signal is sent: wait until the
            # parent has read the new configuration (a test that looks at
            # the store right away would otherwise see the old generation's).
            end = time.time() + 15
            while (time.time() < end and self.pid() and self._alive(self.pid())
                   and self.error_log().count("resuming normal operations") <= generations):
                time.sleep(0.05)
        if r.returncode == 0 and not running:
            # httpd detaches before its real start: wait until it listens,
            # or until its log says the start failed.
            end = time.time() + 15
            while time.time() < end and not (self.pid() and wait_port(self.http_port, 0.2)):
                if "Configuration Failed" in self.error_log():
                    r = subprocess.CompletedProcess(r.args, 1, r.stdout, r.stderr)
                    break
                time.sleep(0.05)
        if check and r.returncode != 0:
            raise RuntimeError(f"httpd failed to start: {r.stderr}{r.stdout}\n" + self.error_log()[-3000:])
        return r

    @staticmethod
    def _alive(pid):
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False

    def stop_httpd(self):
        pid = self.pid()
        if pid is None or not self._alive(pid):
            return
        if self.httpd_conf:
            self.apachectl("-k", "stop", timeout=30)
        end = time.time() + 15
        while time.time() < end and self._alive(pid):
            time.sleep(0.05)
        if self._alive(pid):
            os.killpg(os.getpgid(pid), signal.SIGKILL)

    def https_request(self, host, path="/index.html", timeout=10):
        """GET over TLS to the https port with SNI and Host `host`, not
        verifying the certificate; returns (HTTP status, certificate DER)."""
        import ssl as _ssl
        ctx = _ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = _ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", self.https_port), timeout=timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as c:
                der = c.getpeercert(binary_form=True)
                c.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while b"\r\n" not in data:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    data += chunk
        return int(data.split(b" ", 2)[1]), der

    def error_log(self):
        try:
            with open(self.path("logs", "error.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def clear_log(self):
        open(self.path("logs", "error.log"), "w").close()

    # -- all ---------------------------------------------------------------
    def stop(self):
        try:
            self.stop_httpd()
        finally:
            self.stop_ca()
            if self in _LIVE:
                _LIVE.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# -- command line ----------------------------------------------------------
DEMO_BODY = """
MDomain demo.example.org www.demo.example.org
<MDomain other.example.org>
  MDPrivateKeys RSA 3072 secp384r1
</MDomain>
<VirtualHost 127.0.0.1:{https}>
  ServerName demo.example.org
  ServerAlias www.demo.example.org
  SSLEngine on
</VirtualHost>
<VirtualHost 127.0.0.1:{https}>
  ServerName other.example.org
  SSLEngine on
</VirtualHost>
<VirtualHost 127.0.0.1:{http}>
  ServerName demo.example.org
  ServerAlias www.demo.example.org other.example.org
</VirtualHost>
<Location /md-status>
  SetHandler md-status
</Location>
"""


def _https_status(sb, host):
    """(HTTP status, subject, issuer) of a GET over TLS with SNI `host`."""
    status, der = sb.https_request(host)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject", "-issuer"],
                         input=der, capture_output=True).stdout.decode().split("\n")
    return status, out[0], out[1]


def _show_served(sb):
    """Prints what each demo site serves; fails unless it is 200 with the
    CA's certificate (what the demo says it shows)."""
    for host in ("demo.example.org", "other.example.org"):
        st, subj, iss = _https_status(sb, host)
        print(f"   https://{host}/ -> {st} ({subj}, {iss})")
        if st != 200 or "Pebble" not in iss:
            print(sb.error_log()[-3000:])
            raise SystemExit(f"demo: https://{host}/ answered {st} with {iss}, not 200 with the CA's certificate")


def demo():
    print("== building the module (cargo build --release)")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=TOP, check=True)
    module = os.path.join(TOP, "target", "release", "libmod_md.so")
    with Sandbox(module=module) as sb:
        print(f"== sandbox in {sb.root}")
        sb.start_ca()
        print(f"== pebble (ACME CA) at {sb.ca_url}, fake DNS on 127.0.0.1:{sb.dns_port}")
        body = DEMO_BODY.format(root=sb.root, http=sb.http_port, https=sb.https_port)
        sb.start_httpd(body, log_level="warn md:info")
        print(f"== httpd with mod_md (Rust) on 127.0.0.1:{sb.http_port} (http) / :{sb.https_port} (https)")
        for host in ("demo.example.org", "other.example.org"):
            st, subj, _ = _https_status(sb, host)
            print(f"   https://{host}/ -> {st} ({subj})")
        print("== the module obtains certificates from the CA (http-01, answered by httpd)...")
        t0 = time.time()
        def ready(name):
            try:
                with open(sb.path("md", "staging", name, "job.json")) as f:
                    return json.load(f).get("notified-renewed")
            except (OSError, ValueError):
                return False
        while time.time() - t0 < 120 and not all(ready(n) for n in ("demo.example.org", "other.example.org")):
            time.sleep(0.2)
        if not all(ready(n) for n in ("demo.example.org", "other.example.org")):
            print(sb.error_log()[-3000:])
            raise SystemExit("demo: no certificates after 120 s")
        print(f"   staged after {time.time() - t0:.1f} s; they go live without a restart (hot activation)...")
        t1 = time.time()
        while time.time() - t1 < 15 and not all(
                _https_status(sb, h)[0] == 200 for h in ("demo.example.org", "other.example.org")):
            time.sleep(0.5)
        _show_served(sb)
        print("== a graceful restart installs them into the store's domains/ (as the C module expects)")
        sb.start_httpd()
        time.sleep(1)
        _show_served(sb)
        print("== md-status (GET /md-status):")
        with urllib.request.urlopen(f"http://127.0.0.1:{sb.http_port}/md-status", timeout=10) as r:
            print(r.read().decode())
    print("== stopped everything")


def main(argv):
    if len(argv) >= 2 and argv[1] == "demo":
        demo()
        return 0
    if len(argv) >= 3 and argv[1] == "start":
        sb = Sandbox(root=argv[2])
        sb.start_ca()
        sb.start_httpd("")
        with open(sb.path("sandbox.json"), "w") as f:
            json.dump({"pids": {k: p.pid for k, p in sb.procs.items()},
                       "ca_url": sb.ca_url, "http": sb.http_port, "https": sb.https_port}, f)
        _LIVE.remove(sb)  # leave it running
        print(f"sandbox running in {sb.root}: CA {sb.ca_url}, http {sb.http_port}, https {sb.https_port}")
        return 0
    if len(argv) >= 3 and argv[1] == "stop":
        root = os.path.abspath(argv[2])
        subprocess.run([HTTPD, "-f", os.path.join(root, "httpd.conf"), "-k", "stop"],
                       capture_output=True)
        try:
            with open(os.path.join(root, "sandbox.json")) as f:
                for pid in json.load(f)["pids"].values():
                    try:
                        os.killpg(pid, signal.SIGTERM)
                    except OSError:
                        pass
        except OSError:
            pass
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
