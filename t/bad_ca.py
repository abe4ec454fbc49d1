"""A misbehaving ACME CA on 127.0.0.1 (TLS, the sandbox's CA certificate):
the first path segment picks the misbehaviour, `https://localhost:<port>/<mode>/dir`.
Every mode answers every request of a renewal in its own wrong way."""

import http.server
import json
import os
import threading
import time

from sandbox import free_ports, serve_http

MODES = ["garbage", "huge", "drip", "hang", "redirect", "types", "nonce", "problems"]


class BadCa:
    def __init__(self, sb):
        self.sb, self.port = sb, free_ports(1)[0]
        self.stopping = threading.Event()
        ca = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                self.misbehave()

            def do_HEAD(self):
                self.misbehave()

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0) or 0)
                if n:
                    self.rfile.read(min(n, 1 << 20))
                self.misbehave()

            def base(self, mode):
                return f"https://localhost:{ca.port}/{mode}"

            def misbehave(self):
                mode = self.path.strip("/").split("/")[0]
                if mode == "garbage":
                    return self.reply(200, os.urandom(4096), "application/json")
                if mode == "huge":
                    # 50 MB, sent as fast as the client reads it
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(50 << 20))
                    self.end_headers()
                    chunk = b"[" * 65536
                    try:
                        for _ in range((50 << 20) // len(chunk)):
                            self.wfile.write(chunk)
                    except OSError:
                        pass
                    return
                if mode == "drip":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    try:
                        while not ca.stopping.wait(2):
                            self.wfile.write(b" ")
                            self.wfile.flush()
                    except OSError:
                        pass
                    return
                if mode == "hang":
                    ca.stopping.wait(600)
                    return
                if mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                b = self.base(mode)
                if self.path.endswith("/dir"):
                    if mode == "types":
                        d = {"newNonce": 5, "newAccount": [], "newOrder": {"x": None},
                             "meta": "yes", "keyChange": True}
                    else:
                        d = {"newNonce": f"{b}/nonce", "newAccount": f"{b}/acct",
                             "newOrder": f"{b}/order", "revokeCert": f"{b}/revoke",
                             "keyChange": f"{b}/kc", "meta": {"termsOfService": f"{b}/tos"}}
                    return self.reply(200, json.dumps(d).encode(), "application/json")
                if mode == "nonce":
                    # no Replay-Nonce ever; accounts answer with nonsense
                    return self.reply(200 if self.command != "POST" else 201,
                                      b'{"status": 17, "orders": ["x"]}', "application/json")
                # problems: nonces, then nested garbage problem documents
                if self.path.endswith("/nonce"):
                    self.send_response(200)
                    self.send_header("Replay-Nonce", "bm9uY2U")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                doc = {"type": ["urn:ietf:params:acme:error:badNonce"], "detail": {"x": [1, 2]},
                       "subproblems": [{"identifier": 5, "type": None}] * 50}
                self.send_response(400)
                self.send_header("Replay-Nonce", "bm9uY2U")
                body = json.dumps(doc).encode()
                self.send_header("Content-Type", "application/problem+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def reply(self, code, data, ctype):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = serve_http(Handler, self.port, (sb.ca_cert, sb.path("ca", "pebble-tls.key")))

    def url(self, mode):
        return f"https://localhost:{self.port}/{mode}/dir"

    def stop(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        time.sleep(0.1)
