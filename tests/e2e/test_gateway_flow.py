"""The SSH gateway under pressure (issue #4): a fast sender never makes exed
buffer without bound, in either direction; a VM that hangs never stalls a
session to another VM; `ssh -R` reaches back to the user's side. Real tiny
guests, the real OpenSSH client; two VMs booted once for the file."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Exed, Key, Postgres, images_dir, ssh, ssh_args  # noqa: E402

PG = EXED = KEY = None


def setUpModule():
    global PG, EXED, KEY
    PG = Postgres()
    EXED = Exed(PG, "e2e_gateway_flow", {"images_dir": images_dir()})
    KEY = Key()
    EXED.admin("account", "add", "flow", "--key", KEY.public, "--vms", "4", "--memory", "4G", "--cpus", "2")
    for name in ("flow-a", "flow-b"):
        r = ssh(EXED, KEY, "new", "--image", "tiny", "--name", name, "--memory", "512M", timeout=300)
        assert r.returncode == 0, r.stderr


def tearDownModule():
    EXED.close()
    PG.close()


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith("VmRSS:"))) // 1024


def gw_argv(vm, command, *options):
    return ssh_args(EXED, KEY, extra=options, dest=f"{vm}@localhost") + [command]


def qemu_pid(vm):
    """The VM's QEMU, as exed recorded it (other exeds on this machine have VMs with the same ids)."""
    pid = subprocess.run(["psql", EXED.db_url, "-qAtc", f"SELECT pid FROM vms WHERE name = '{vm}'"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert pid and os.path.exists(f"/proc/{pid}"), f"no QEMU recorded for {vm}: {pid!r}"
    return int(pid)


class FlowControl(unittest.TestCase):
    def test_upload_to_a_vm_that_does_not_read_is_held_back(self):
        """2 GB offered on stdin to a command that never reads it: the gateway
        takes one window's worth and then stops granting window, so exed's
        memory does not grow with what the client offers."""
        before = rss_mib(EXED.proc.pid)
        zeros = subprocess.Popen(["head", "-c", "2000000000", "/dev/zero"], stdout=subprocess.PIPE)
        client = subprocess.Popen(gw_argv("flow-a", "sleep 8; echo slept"), stdin=zeros.stdout,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        zeros.stdout.close()
        try:
            peak = before
            for _ in range(12):
                time.sleep(0.5)
                peak = max(peak, rss_mib(EXED.proc.pid))
            self.assertLess(peak - before, 32, f"exed grew from {before} to {peak} MiB while the guest read nothing")
            # And the session still works: the command ends and says so.
            out, err = client.communicate(timeout=60)
            self.assertIn(b"slept", out, err)
        finally:
            client.kill()
            zeros.kill()

    def test_download_to_a_client_that_does_not_read_is_held_back(self):
        """A guest writing as fast as it can to a client that reads nothing:
        exed stops reading from the guest once the client's window is full."""
        before = rss_mib(EXED.proc.pid)
        client = subprocess.Popen(gw_argv("flow-a", "cat /dev/zero"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            peak = before
            for _ in range(12):
                time.sleep(0.5)
                peak = max(peak, rss_mib(EXED.proc.pid))
            self.assertLess(peak - before, 32, f"exed grew from {before} to {peak} MiB while the client read nothing")
            # The stream is intact and flowing once the client reads.
            data = client.stdout.read(8 << 20)
            self.assertEqual(len(data), 8 << 20)
            self.assertEqual(data.count(0), len(data))
        finally:
            client.kill()
            client.wait()


class Isolation(unittest.TestCase):
    def test_a_hung_vm_does_not_stall_sessions_to_another(self):
        pid = qemu_pid("flow-a")
        os.kill(pid, signal.SIGSTOP)
        try:
            hung = subprocess.Popen(gw_argv("flow-a", "echo never"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(1)
            self.assertIsNone(hung.poll(), "a session into a stopped QEMU should be waiting")
            t0 = time.time()
            r = subprocess.run(gw_argv("flow-b", "echo alive"), capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, "alive\n")
            # The lobby too.
            r = ssh(EXED, KEY, "whoami")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertLess(time.time() - t0, 20)
        finally:
            os.kill(pid, signal.SIGCONT)
        out, err = hung.communicate(timeout=60)
        self.assertEqual(hung.returncode, 0, err)
        self.assertEqual(out, b"never\n", "the waiting session completes once the VM runs again")


class RemoteForward(unittest.TestCase):
    def test_ssh_R_reaches_the_users_side(self):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(30)
        got = []

        def answer():
            conn, _ = server.accept()
            got.append(conn.recv(100))
            conn.sendall(b"pong\n")
            conn.close()

        t = threading.Thread(target=answer, daemon=True)
        t.start()
        port = server.getsockname()[1]
        r = subprocess.run(gw_argv("flow-b", "echo ping | nc 127.0.0.1 9000",
                                   "-R", f"9000:127.0.0.1:{port}", "-o", "ExitOnForwardFailure=yes"),
                           capture_output=True, text=True, timeout=60)
        t.join(5)
        server.close()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(got, [b"ping\n"])
        self.assertEqual(r.stdout, "pong\n")


if __name__ == "__main__":
    unittest.main()
