"""A small CA for CRL tests (issue 16, point 3): `openssl ca` issues leaf
certificates that name a CRL distribution point on 127.0.0.1, revokes them
and signs CRLs; a plain http server serves the CRLs with Last-Modified and
answers conditional requests with 304 (Python's SimpleHTTPRequestHandler),
recording every request. Pebble's certificates name no CRL."""

import http.server
import os
import subprocess

from sandbox import free_ports, serve_http

CNF = """[ ca ]
default_ca = CA_default
[ CA_default ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
crlnumber = $dir/crlnumber
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
default_days = 30
default_crl_days = 1
[ policy_any ]
commonName = supplied
[ leaf ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $ENV::SAN
crlDistributionPoints = URI:$ENV::CDP
"""


def run(*argv, env=None):
    # the configuration names $ENV::SAN and $ENV::CDP: set for every command
    e = dict(os.environ, SAN="DNS:unused", CDP="http://unused/")
    e.update(env or {})
    return subprocess.run(argv, check=True, capture_output=True, text=True, env=e)


class CrlCa:
    def __init__(self, root, cn="Test CRL CA"):
        self.dir = root
        os.makedirs(os.path.join(root, "newcerts"), exist_ok=True)
        self.serve_dir = os.path.join(root, "www")
        os.makedirs(self.serve_dir, exist_ok=True)
        open(os.path.join(root, "index.txt"), "w").close()
        with open(os.path.join(root, "serial"), "w") as f:
            f.write("1000\n")
        with open(os.path.join(root, "crlnumber"), "w") as f:
            f.write("1000\n")
        self.cnf = os.path.join(root, "ca.cnf")
        with open(self.cnf, "w") as f:
            f.write(CNF.format(dir=root))
        self.ca_pem = os.path.join(root, "ca.pem")
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            "-keyout", os.path.join(root, "ca.key"), "-out", self.ca_pem, "-subj", f"/CN={cn}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.port = free_ports(1)[0]
        self.requests = []  # (path, status, If-Modified-Since or None)
        self.httpd = None

    def url(self, name="ca.crl"):
        return f"http://127.0.0.1:{self.port}/{name}"

    def issue(self, name, out_dir, crl="ca.crl"):
        """A key and a certificate for `name` naming the CRL `crl`; returns
        (cert file with the CA appended, key file)."""
        key = os.path.join(out_dir, f"{name}.key")
        csr = os.path.join(out_dir, f"{name}.csr")
        leaf = os.path.join(out_dir, f"{name}.leaf.pem")
        run("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
            "-out", csr, "-subj", f"/CN={name}")
        run("openssl", "ca", "-batch", "-config", self.cnf, "-extensions", "leaf", "-notext",
            "-in", csr, "-out", leaf, env={"SAN": f"DNS:{name}", "CDP": self.url(crl)})
        chain = os.path.join(out_dir, f"{name}.pem")
        with open(chain, "w") as f:
            f.write(open(leaf).read() + open(self.ca_pem).read())
        return chain, key, leaf

    def revoke(self, leaf, reason="keyCompromise"):
        run("openssl", "ca", "-config", self.cnf, "-revoke", leaf, "-crl_reason", reason)

    def publish(self, name="ca.crl", secs=15):
        """Signs a CRL valid for `secs` seconds and serves it (DER) as `name`."""
        pem = os.path.join(self.dir, "crl.pem")
        run("openssl", "ca", "-gencrl", "-config", self.cnf, "-crlsec", str(secs), "-out", pem)
        tmp = os.path.join(self.serve_dir, f".{name}.tmp")
        run("openssl", "crl", "-in", pem, "-outform", "DER", "-out", tmp)
        os.replace(tmp, os.path.join(self.serve_dir, name))

    def serve(self):
        ca = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=ca.serve_dir, **kw)

            def send_response(self, code, message=None):
                ca.requests.append((self.path, code, self.headers.get("If-Modified-Since")))
                super().send_response(code, message)

            def log_message(self, *a):
                pass

        self.httpd = serve_http(Handler, self.port)

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
