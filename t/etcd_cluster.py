"""An etcd cluster on loopback for the tests (issue 27): N members of
Debian's `etcd` with their own data directories and ports, started and
stopped one by one; and a reader of what the module keeps there (over
etcd's JSON gateway, as the module talks to it)."""

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.request

from sandbox import free_ports, wait_for

# what the module puts before a file's content in etcd: magic, flags, time
HEAD = 4 + 1 + 8


class EtcdCluster:
    def __init__(self, members=3):
        self.dir = tempfile.mkdtemp(prefix="md-etcd-")
        os.chmod(self.dir, 0o755)
        ports = free_ports(2 * members)
        self.client = [f"http://127.0.0.1:{p}" for p in ports[:members]]
        self.peer = [f"http://127.0.0.1:{p}" for p in ports[members:]]
        self.procs = [None] * members
        self.token = f"md-test-{os.getpid()}-{ports[0]}"
        self.initial = ",".join(f"m{i}={u}" for i, u in enumerate(self.peer))
        try:
            for i in range(members):
                self.start_member(i, wait=False)
            assert wait_for(self.healthy, 30, 0.2), self.logs()
        except BaseException:
            self.stop()
            raise

    @property
    def endpoints(self):
        return ",".join(self.client)

    def start_member(self, i, wait=True):
        log = open(os.path.join(self.dir, f"m{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(
            ["etcd", "--name", f"m{i}", "--data-dir", os.path.join(self.dir, f"m{i}"),
             "--listen-client-urls", self.client[i], "--advertise-client-urls", self.client[i],
             "--listen-peer-urls", self.peer[i], "--initial-advertise-peer-urls", self.peer[i],
             "--initial-cluster", self.initial, "--initial-cluster-token", self.token,
             "--initial-cluster-state", "new", "--heartbeat-interval", "50",
             "--election-timeout", "500"],
            stdout=log, stderr=log, start_new_session=True)
        if wait:
            assert wait_for(lambda: self._answers(i), 30, 0.1), self.logs()

    def stop_member(self, i):
        p = self.procs[i]
        if p and p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs[i] = None

    def stop_all(self):
        for i in range(len(self.procs)):
            self.stop_member(i)

    def start_all(self):
        for i in range(len(self.procs)):
            if self.procs[i] is None:
                self.start_member(i, wait=False)
        assert wait_for(self.healthy, 30, 0.2), self.logs()

    def _post(self, i, path, body, timeout=3):
        req = urllib.request.Request(self.client[i] + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def _answers(self, i):
        try:
            self._post(i, "/v3/kv/range", {"key": base64.b64encode(b"/").decode()})
            return True
        except OSError:
            return False

    def healthy(self):
        return all(self._answers(i) for i, p in enumerate(self.procs) if p is not None)

    def _any(self, path, body):
        err = None
        for i, p in enumerate(self.procs):
            if p is None:
                continue
            try:
                return self._post(i, path, body)
            except OSError as e:
                err = e
        raise OSError(f"no etcd member answers: {err}")

    def items(self, prefix="/mod_md/"):
        """{key: raw value} under `prefix`."""
        p = prefix.encode()
        end = p[:-1] + bytes([p[-1] + 1])
        r = self._any("/v3/kv/range", {"key": base64.b64encode(p).decode(),
                                       "range_end": base64.b64encode(end).decode()})
        return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", ""))
                for kv in r.get("kvs", [])}

    def file(self, key):
        """The content of a store file the module wrote (not sealed), or None."""
        v = self.items(key).get(key)
        if v is None:
            return None
        return v[HEAD:] if v[:4] == b"md1\0" else v

    def json(self, key):
        d = self.file(key)
        try:
            return json.loads(d) if d is not None else None
        except ValueError:
            return None

    def export(self, dest, seal_key_file, prefix="/mod_md/"):
        """Writes the store under `prefix` into directory `dest` as files
        (private keys unsealed with the key in `seal_key_file`): the file
        store layout, for the checks made on file stores."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        with open(seal_key_file, "rb") as f:
            aes = AESGCM(f.read())
        for key, v in self.items(prefix).items():
            rel = key[len(prefix):]
            if rel.startswith("locks/"):
                continue
            if v[:4] == b"md1\0":
                flags, body = v[4], v[HEAD:]
                if flags & 1:
                    body = aes.decrypt(body[:12], body[12:], b"md1\0")
                v = body
            path = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(v)
        return dest

    def logs(self):
        out = []
        for i in range(len(self.procs)):
            try:
                with open(os.path.join(self.dir, f"m{i}.log"), "rb") as f:
                    out.append(f"--- etcd m{i}\n" + f.read()[-1500:].decode(errors="replace"))
            except OSError:
                pass
        return "\n".join(out)

    def stop(self):
        self.stop_all()
        shutil.rmtree(self.dir, ignore_errors=True)


def seal_key(path):
    """A 32-byte key file for MDStoreEtcdSealKey, root-only."""
    with open(path, "wb") as f:
        f.write(os.urandom(32))
    os.chmod(path, 0o600)
    return path

