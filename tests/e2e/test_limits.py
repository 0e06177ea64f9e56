"""Every limit of the SSH front, hit for real: each gets a clear message."""
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Exed, Key, Postgres, Tmux, closed_within, raw_connect, ssh, ssh_args, wait_for  # noqa: E402

PG = None


def setUpModule():
    global PG
    PG = Postgres()


def tearDownModule():
    PG.close()


def account(exed, name):
    key = Key()
    r = exed.admin("account", "add", name, "--key", key.public)
    assert r.returncode == 0, r.stderr
    return key


def hold_session(exed, key):
    """A lobby session kept open (plain mode, stdin held) until closed."""
    p = subprocess.Popen(ssh_args(exed, key, ["-T"]), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    p.stdin.write("whoami\n")
    p.stdin.flush()
    line = p.stdout.readline()  # "account  NAME": the session is really up
    assert line.startswith("account"), line + p.stderr.read() if p.poll() is not None else line
    return p


def release(p):
    p.stdin.close()
    p.wait(timeout=20)


class Limits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.exed = Exed(PG, "limits", {"login_grace_seconds": 2, "max_auth_attempts": 2, "max_line_bytes": 100,
                                       "idle_timeout_seconds": 2, "registrations_per_hour": 2,
                                       "max_sessions_per_account": 2})

    @classmethod
    def tearDownClass(cls):
        cls.exed.close()

    def test_client_stalled_in_handshake_is_cut_after_grace_time(self):
        s = raw_connect(self.exed.port, b"SSH-2.0-stalled\r\n")
        try:
            t0 = time.time()
            self.assertTrue(closed_within(s, 10), "a stalled client must be disconnected")
            self.assertGreaterEqual(time.time() - t0, 1.5, "not before the grace time")
        finally:
            s.close()
        wait_for(lambda: "limit=login_grace" in self.exed.read_log(), what="login_grace log line")

    def test_too_many_auth_attempts(self):
        weak = [Key(kind="rsa", bits=1024) for _ in range(3)]  # each refused as too short: a failed attempt
        extra = ["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"]
        for k in weak:
            extra += ["-i", k.path]
        r = subprocess.run(ssh_args(self.exed, None, extra, log_level="INFO") + ["whoami"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 255)
        self.assertIn("too many authentication attempts (limit 2)", r.stderr)

    def test_line_too_long(self):
        key = account(self.exed, "longline")
        r = ssh(self.exed, key, "whoami", "x" * 200)
        self.assertEqual(r.returncode, 2)
        self.assertIn("over the limit of 100", r.stderr)

    def test_idle_session_is_closed_with_a_reason(self):
        key = account(self.exed, "idler")
        t = Tmux(ssh_args(self.exed, key, ["-t"]))
        try:
            t.wait_for("exed>")
            t.wait_for("idle for 2 s; closing the session", timeout=10)
        finally:
            t.close()

    def test_sessions_per_account(self):
        key = account(self.exed, "busy")
        held = [hold_session(self.exed, key) for _ in range(2)]
        try:
            r = ssh(self.exed, key, "whoami")
            self.assertEqual(r.returncode, 1)
            self.assertIn("too many sessions for account busy (limit 2)", r.stderr)
        finally:
            for p in held:
                release(p)
        self.assertEqual(ssh(self.exed, key, "whoami").returncode, 0, "slots come back when sessions end")

    def test_registrations_per_address_per_hour(self):
        self.assertEqual(ssh(self.exed, Key(), "register", "reg-one").returncode, 0)
        self.assertEqual(ssh(self.exed, Key(), "register", "reg-two").returncode, 0)
        r = ssh(self.exed, Key(), "register", "reg-three")
        self.assertEqual(r.returncode, 1)
        self.assertIn("too many registrations from 127.0.0.1 in the last hour (limit 2)", r.stderr)


class AddressLimit(unittest.TestCase):
    def test_connections_per_address(self):
        exed = Exed(PG, "address_limit", {"max_sessions_per_address": 3})
        try:
            key = account(exed, "many")
            held = [hold_session(exed, key) for _ in range(3)]
            try:
                r = subprocess.run(ssh_args(exed, key, log_level="INFO") + ["whoami"], capture_output=True,
                                   text=True, timeout=30)
                self.assertEqual(r.returncode, 255)
                self.assertIn("too many connections from 127.0.0.1 (limit 3)", r.stderr)
            finally:
                for p in held:
                    release(p)
            self.assertEqual(ssh(exed, key, "whoami").returncode, 0)
        finally:
            exed.close()


class RegistrationModes(unittest.TestCase):
    def test_closed(self):
        exed = Exed(PG, "closed", {"registration": "closed"})
        try:
            key = Key()
            r = ssh(exed, key, "register", "nope")
            self.assertEqual(r.returncode, 1)
            self.assertIn("registration is closed", r.stderr)
            self.assertIn("exed admin account add", r.stderr)
            t = Tmux(ssh_args(exed, key, ["-t"]))
            try:
                t.wait_for("ask the operator")
            finally:
                t.close()
        finally:
            exed.close()

    def test_invite(self):
        exed = Exed(PG, "invite", {"registration": "invite"})
        try:
            codes = exed.admin("invite", "add", "--count", "2").stdout.split()
            self.assertEqual(len(codes), 2)
            r = ssh(exed, Key(), "register", "someone")
            self.assertEqual(r.returncode, 1)
            self.assertIn("--invite CODE", r.stderr)
            self.assertEqual(ssh(exed, Key(), "register", "someone", "--invite", codes[0]).returncode, 0)
            r = ssh(exed, Key(), "register", "another", "--invite", codes[0])
            self.assertEqual(r.returncode, 1)
            self.assertIn("already used", r.stderr)
            # interactively: asked for the name, then the code
            t = Tmux(ssh_args(exed, Key(), ["-t"]))
            try:
                t.wait_for("account name:")
                t.type("invited")
                t.send("Enter")
                t.wait_for("invite code:")
                t.type(codes[1])
                t.send("Enter")
                t.wait_for("welcome, invited!")
            finally:
                t.close()
        finally:
            exed.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
