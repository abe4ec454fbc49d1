"""A round-robin TCP balancer on 127.0.0.1 for the cluster tests: each
connection goes to the next backend port that accepts it (a dead node is
skipped), bytes are passed both ways unchanged (TLS, SNI and ALPN end to end,
so tls-alpn-01 works through it)."""

import itertools
import socket
import threading


class Balancer:
    def __init__(self, port, backends):
        self.port, self.backends = port, list(backends)
        self.picked = {b: 0 for b in self.backends}  # connections per backend
        self._rr = itertools.count()
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(128)
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _backend(self):
        start = next(self._rr)
        for i in range(len(self.backends)):
            port = self.backends[(start + i) % len(self.backends)]
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                continue
            with self._lock:
                self.picked[port] += 1
            return s
        return None

    def _accept(self):
        while not self._stopped:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        back = self._backend()
        if back is None:
            conn.close()
            return
        back.settimeout(None)

        def pipe(a, b):
            try:
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        t = threading.Thread(target=pipe, args=(back, conn), daemon=True)
        t.start()
        pipe(conn, back)
        t.join(30)
        conn.close()
        back.close()

    def stop(self):
        self._stopped = True
        self._sock.close()
