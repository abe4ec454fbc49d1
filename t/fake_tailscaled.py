"""A fake tailscaled for the tests: the LocalAPI certificate endpoint over
a unix socket (GET /localapi/v0/cert/<domain>?type=pair)."""

import http.server
import os
import socketserver
import threading


class FakeTailscaled:
    def __init__(self, path, pairs, mode=0o666):
        """pairs: domain -> (key PEM, certificate chain PEM)."""
        self.path = path
        self.seen = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.seen.append((self.path, dict(self.headers)))
                if self.headers.get("Sec-Tailscale") != "localapi" or self.headers.get("Origin"):
                    return self._reply(403, b"forbidden")
                prefix = "/localapi/v0/cert/"
                domain, _, query = self.path[len(prefix):].partition("?")
                if not self.path.startswith(prefix) or "type=pair" not in query:
                    return self._reply(400, b"bad request")
                if domain not in pairs:
                    return self._reply(500, f"no certificate for {domain}".encode())
                key, chain = pairs[domain]
                self._reply(200, key + chain)

            def _reply(self, code, body):
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

            def address_string(self):
                return "unix"

        if os.path.exists(path):
            os.unlink(path)
        self.server = socketserver.ThreadingUnixStreamServer(path, H)
        os.chmod(path, mode)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        if os.path.exists(self.path):
            os.unlink(self.path)
