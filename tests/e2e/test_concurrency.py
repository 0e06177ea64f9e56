"""200 lobby sessions held at once while one client sits stalled mid-handshake."""
import os
import selectors
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Exed, Key, Postgres, raw_connect, ssh, ssh_args  # noqa: E402

SESSIONS = 200


class Concurrency(unittest.TestCase):
    def test_200_sessions_while_a_client_is_stalled(self):
        pg = Postgres()
        exed = Exed(pg, "concurrency")
        procs = []
        stalled = None
        try:
            key = Key()
            self.assertEqual(exed.admin("account", "add", "crowd", "--key", key.public).returncode, 0)
            # Sends its version string and then nothing: stuck in the handshake.
            stalled = raw_connect(exed.port, b"SSH-2.0-stalled\r\n")
            for _ in range(SESSIONS):
                procs.append(subprocess.Popen(ssh_args(exed, key, ["-T"]), stdin=subprocess.PIPE,
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE))
            # Every session answers a command while all of them stay open.
            for p in procs:
                p.stdin.write(b"whoami --json\n")
                p.stdin.flush()
            sel = selectors.DefaultSelector()
            pending = {}
            for p in procs:
                os.set_blocking(p.stdout.fileno(), False)
                sel.register(p.stdout, selectors.EVENT_READ, p)
                pending[p] = b""
            answered = set()
            deadline = time.time() + 120
            while len(answered) < SESSIONS and time.time() < deadline:
                for ev, _ in sel.select(timeout=1):
                    p = ev.data
                    chunk = p.stdout.read() or b""
                    pending[p] += chunk
                    if b'"name": "crowd"' in pending[p] and p not in answered:
                        answered.add(p)
                        sel.unregister(p.stdout)
                    elif not chunk and p.poll() is not None:
                        sel.unregister(p.stdout)
            self.assertEqual(len(answered), SESSIONS,
                             "sessions that never answered: %s" % [p.stderr.read()[:200] for p in procs
                                                                    if p not in answered][:3])
            self.assertTrue(all(p.poll() is None for p in procs), "every session is still open")
            # The stalled client holds nothing up: a new one-shot still works.
            t0 = time.time()
            r = ssh(exed, key, "whoami")
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(f"/proc/{exed.proc.pid}/status") as f:
                rss = next(line.split()[1] for line in f if line.startswith("VmRSS:"))
            print(f"one-shot while {SESSIONS} sessions held: {time.time() - t0:.2f}s; exed RSS {int(rss) // 1024} MiB",
                  file=sys.stderr)
        finally:
            for p in procs:
                try:
                    p.stdin.close()
                except BrokenPipeError:
                    pass
            for p in procs:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                p.stdout.close()
                p.stderr.close()
            if stalled:
                stalled.close()
            exed.close()
            pg.close()
        self.assertTrue(all(p.returncode == 0 for p in procs), [p.returncode for p in procs][:10])


if __name__ == "__main__":
    unittest.main(verbosity=2)
