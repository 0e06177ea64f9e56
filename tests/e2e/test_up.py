"""ops/up as a user runs it: first start, a crash (kill -9) that leaves
PostgreSQL running, a re-run that reuses the data, a second ops/up on the same
state refused, and a clean Ctrl-C/SIGTERM."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, Key, ssh, wait_for  # noqa: E402


class Port:
    port = None


class Up(unittest.TestCase):
    def start_up(self, state):
        with open(os.path.join(state, "up.log"), "a") as log:
            return self._start_up(state, log)

    def _start_up(self, state, log):
        env = dict(os.environ, EXED_STATE_DIR=os.path.join(state, "var"), EXED_SSH_PORT="0", EXED_PG_FAST="1")
        env.pop("DATABASE_URL", None)
        p = subprocess.Popen([os.path.join(ROOT, "ops", "up")], env=env, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)

        def port():
            with open(os.path.join(state, "up.log")) as f:
                ports = re.findall(r"exed is up\..*\n\s*ssh -p (\d+) localhost", f.read())
            return int(ports[-1]) if len(ports) > self.starts else None
        found = wait_for(port, timeout=300, what="ops/up to print what to type next")
        self.starts += 1
        exed = Port()
        exed.port = found
        return p, exed

    def pg_running(self, state):
        return subprocess.run([os.path.join(ROOT, "ops", "pgcluster"), "status", os.path.join(state, "var", "pg")],
                              capture_output=True).returncode == 0

    def test_up_crash_rerun_and_clean_stop(self):
        self.starts = 0
        state = tempfile.mkdtemp(prefix="exed-e2e-up-")
        up = None
        try:
            up, exed = self.start_up(state)
            key = Key()
            self.assertEqual(ssh(exed, key, "register", "upuser").returncode, 0)
            # A crash: exed and ops/up die at once, PostgreSQL stays up.
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
            self.assertTrue(self.pg_running(state), "PostgreSQL outlived the crash, as a real crash leaves it")
            up, exed = self.start_up(state)
            r = ssh(exed, key, "whoami")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("account  upuser", r.stdout, "the account survived the crash")
            # A second ops/up on the same state is refused at once and leaves
            # the first (and its PostgreSQL) alone.
            env = dict(os.environ, EXED_STATE_DIR=os.path.join(state, "var"), EXED_SSH_PORT="0")
            env.pop("DATABASE_URL", None)
            second = subprocess.run([os.path.join(ROOT, "ops", "up")], env=env, capture_output=True, text=True,
                                    stdin=subprocess.DEVNULL, timeout=300)
            self.assertNotEqual(second.returncode, 0)
            self.assertIn("another ops/up is running", second.stderr)
            self.assertTrue(self.pg_running(state))
            self.assertEqual(ssh(exed, key, "whoami").returncode, 0, "the first ops/up still serves")
            # Ctrl-C / SIGTERM: exed stops, then its PostgreSQL.
            up.send_signal(signal.SIGTERM)
            self.assertEqual(up.wait(timeout=60), 0)
            self.assertFalse(self.pg_running(state))
            up = None
        finally:
            if up is not None:
                os.killpg(up.pid, signal.SIGKILL)
                up.wait()
            subprocess.run([os.path.join(ROOT, "ops", "pgcluster"), "stop", os.path.join(state, "var", "pg")],
                           capture_output=True)
            subprocess.run(["rm", "-rf", state])


if __name__ == "__main__":
    unittest.main(verbosity=2)
