"""A TLS front on 127.0.0.1 between the module and pebble that adds what
pebble 2.4 lacks: `renewalInfo` (RFC 9773) and `meta.profiles` in the
directory. Every other request is passed to pebble unchanged, with the
front's Host, so pebble's URLs (and the JWS `url` it checks) name the front;
the payloads of the newOrder requests pebble accepts are recorded on the way, and the next
`reject_replaces` of them that carry `replaces` get an `alreadyReplaced`
problem (RFC 9773 §5).

With `known_keys=True` it answers a newAccount for a key it has seen
registered with that account, without asking pebble (RFC 8555 §7.3.1 lets
a CA return the existing account for a known key; some do so without
checking a new external account binding)."""

import base64
import http.client
import http.server
import json
import ssl
import time
import urllib.request

from sandbox import free_ports, serve_http


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def b64url_json(s):
    return json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))


class AcmeFront:
    def __init__(self, sb, renewal_info=True, profiles=None, known_keys=False):
        self.sb, self.port = sb, free_ports(1)[0]
        self.renewal_info, self.profiles = renewal_info, profiles
        self.known_keys = known_keys
        self.accounts = {}  # JWK (JSON text) -> (Location, account body)
        self.returned_known = 0  # newAccount answered from `accounts`
        self.window = None  # ARI suggested window (start, end), unix times
        self.explanation = "https://ca.example.net/why"
        self.asked = []  # ARI certificate ids asked for
        self.orders = []  # newOrder payloads
        self.reject_replaces = 0  # newOrders with `replaces` to reject
        self.challenges = []  # challenge URLs pebble took to validate (200)
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if self.path.startswith("/ari/"):
                    front.asked.append(self.path[len("/ari/"):])
                    if not front.window:
                        return self.reply(404, b"{}", "application/problem+json")
                    start, end = front.window
                    body = {"suggestedWindow": {"start": iso(start), "end": iso(end)},
                            "explanationURL": front.explanation}
                    return self.reply(200, json.dumps(body).encode(), "application/json")
                self.forward()

            def do_HEAD(self):
                self.forward()

            def do_POST(self):
                self.forward()

            def forward(self):
                n = int(self.headers.get("Content-Length", 0) or 0)
                body = self.rfile.read(n) if n else None
                payload = None
                if self.command == "POST" and self.path == "/order-plz" and body:
                    payload = b64url_json(json.loads(body)["payload"])
                    if "replaces" in payload and front.reject_replaces > 0:
                        front.reject_replaces -= 1
                        front.orders.append(payload)
                        return self.problem(409, "urn:ietf:params:acme:error:alreadyReplaced",
                                            "certificate already replaced")
                # "{}": validate (not POST-as-GET)
                chal = self.command == "POST" and self.path.startswith("/chalZ/") and body \
                    and json.loads(body).get("payload")
                jwk = None
                if self.command == "POST" and self.path == "/sign-me-up" and body:
                    jwk = json.dumps(b64url_json(json.loads(body)["protected"]).get("jwk"),
                                     sort_keys=True)
                    if front.known_keys and jwk in front.accounts:
                        front.returned_known += 1
                        return self.known_account(*front.accounts[jwk])
                ctx = ssl.create_default_context(cafile=front.sb.ca_cert)
                conn = http.client.HTTPSConnection("localhost", front.sb.pebble_port, context=ctx,
                                                   timeout=30)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection")}
                headers["Host"] = f"localhost:{front.port}"
                conn.request(self.command, self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                conn.close()
                # an order pebble took (not one it refused, e.g. for one of
                # the bad nonces it hands out on purpose, which is sent again)
                if payload is not None and r.status == 201:
                    front.orders.append(payload)
                # likewise a validation pebble took
                if chal and r.status == 200:
                    front.challenges.append(self.path)
                if jwk and r.status in (200, 201) and r.getheader("Location"):
                    front.accounts[jwk] = (r.getheader("Location"), data)
                if self.path == "/dir" and r.status == 200:
                    d = json.loads(data)
                    if front.renewal_info:
                        d["renewalInfo"] = f"https://localhost:{front.port}/ari"
                    if front.profiles is not None:
                        d.setdefault("meta", {})["profiles"] = front.profiles
                    data = json.dumps(d).encode()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def fresh_nonce(self):
                ctx = ssl.create_default_context(cafile=front.sb.ca_cert)
                conn = http.client.HTTPSConnection("localhost", front.sb.pebble_port, context=ctx,
                                                   timeout=30)
                conn.request("HEAD", "/nonce-plz", headers={"Host": f"localhost:{front.port}"})
                nonce = conn.getresponse().getheader("Replay-Nonce")
                conn.close()
                return nonce

            def problem(self, code, ptype, detail):
                data = json.dumps({"type": ptype, "detail": detail}).encode()
                self.send_response(code)
                self.send_header("Replay-Nonce", self.fresh_nonce())
                self.send_header("Content-Type", "application/problem+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def known_account(self, location, data):
                self.send_response(200)
                self.send_header("Location", location)
                self.send_header("Replay-Nonce", self.fresh_nonce())
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def reply(self, code, data, ctype):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = serve_http(Handler, self.port, (sb.ca_cert, sb.path("ca", "pebble-tls.key")))

    @property
    def url(self):
        return f"https://localhost:{self.port}/dir"

    def directory(self):
        ctx = ssl.create_default_context(cafile=self.sb.ca_cert)
        with urllib.request.urlopen(self.url, context=ctx, timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
