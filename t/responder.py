"""A small challenge responder for engine tests without httpd: answers
http-01 from <store>/challenges/<host>/acme-http-01.txt and tls-alpn-01 with
<store>/challenges/<sni>/acme-tls-alpn-01-{pubcert,privkey}.pem, the files
the ACME engine writes. Requests it saw are kept in `seen`."""

import http.server
import os
import socket
import ssl
import threading

from sandbox import serve_http


class Responder:
    def __init__(self, store, http_port=None, https_port=None):
        self.store = store
        self.seen = []
        self._servers = []
        if http_port:
            self._start_http(http_port)
        if https_port:
            self._start_tls(https_port)

    def _challenge(self, name, fname):
        return os.path.join(self.store, "challenges", name, fname)

    def _start_http(self, port):
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
                outer.seen.append(("http-01", host, self.path))
                prefix = "/.well-known/acme-challenge/"
                path = outer._challenge(host, "acme-http-01.txt")
                if self.path.startswith(prefix) and os.path.exists(path):
                    body = open(path, "rb").read()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_error(404)

            def log_message(self, *a):
                pass

        srv = serve_http(H, port)
        self._servers.append(srv)

    def _start_tls(self, port):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(16)
        self._tls_sock = sock
        base = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        base.set_alpn_protocols(["acme-tls/1"])

        def on_sni(sslobj, name, _ctx):
            self.seen.append(("tls-alpn-01", name, None))
            d = os.path.join(self.store, "challenges", name or "")
            cert = os.path.join(d, "acme-tls-alpn-01-pubcert.pem")
            key = os.path.join(d, "acme-tls-alpn-01-privkey.pem")
            if not os.path.exists(cert):
                cands = sorted(f for f in os.listdir(d) if f.startswith("acme-tls-alpn-01-pubcert")) if os.path.isdir(d) else []
                if not cands:
                    return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
                cert = os.path.join(d, cands[0])
                key = cert.replace("pubcert", "privkey")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.set_alpn_protocols(["acme-tls/1"])
            ctx.load_cert_chain(cert, key)
            sslobj.context = ctx
            return None

        base.sni_callback = on_sni

        def serve():
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    return
                threading.Thread(target=self._handshake, args=(base, conn), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()

    @staticmethod
    def _handshake(ctx, conn):
        try:
            conn.settimeout(10)
            s = ctx.wrap_socket(conn, server_side=True)
            s.close()
        except (OSError, ssl.SSLError):
            conn.close()

    def stop(self):
        for s in self._servers:
            s.shutdown()
            s.server_close()
        if getattr(self, "_tls_sock", None):
            self._tls_sock.close()
