"""The SSH gateway into the default `debian` image (systemd, OpenSSH's sshd,
bash): the same paths as test_gateway on tiny, checked once against the sshd
users really meet. Slow under TCG (~30 s a boot), so one VM does everything."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Exed, Key, Postgres, images_dir, scp_args, sftp_args, ssh, ssh_args, wait_for  # noqa: E402
from test_gateway import (HOST, NOBODY, check_interactive_shell, dest, direct, free_port, gw, http_get,  # noqa: E402
                          isolate_vm_ids, neutral, random_file, refusal_line, sha256_file, vm_row)

VM = "deb-box"


class DebianGateway(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = Postgres()
        # A debian boot is ~30 s under TCG alone, minutes on a loaded 2-core machine.
        cls.exed = Exed(cls.pg, "gateway_debian", {"images_dir": images_dir(), "boot_timeout_seconds": 480})
        cls.tmp = tempfile.mkdtemp(prefix="exed-e2e-gwd-")
        try:
            isolate_vm_ids(cls.exed)
            cls.key = Key()
            cls.other = Key()
            for name, key in (("gwd-owner", cls.key), ("gwd-other", cls.other)):
                r = cls.exed.admin("account", "add", name, "--key", key.public)
                if r.returncode != 0:
                    raise AssertionError(r.stderr)
            t0 = time.time()
            r = ssh(cls.exed, cls.key, "new", "--json", "--name", VM, timeout=600)
            if r.returncode != 0:
                raise AssertionError(f"new failed: {r.stderr}\n" + cls.exed.read_log()[-3000:])
            print(f"debian new -> ssh-ready: {time.time() - t0:.1f}s", file=sys.stderr)
            if json.loads(r.stdout)["image"] != "debian":
                raise AssertionError("debian is the default image")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        log = cls.exed.read_log()
        print("---- exed log (tail) ----\n" + "\n".join(log.splitlines()[-60:]), file=sys.stderr)
        if os.environ.get("EXED_E2E_LOG_DIR"):  # keep the whole log, to read after a failure
            name = os.path.splitext(os.path.basename(__file__))[0] + ".exed.log"
            with open(os.path.join(os.environ["EXED_E2E_LOG_DIR"], name), "w") as f:
                f.write(log)
        cls.exed.close()
        cls.pg.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_login_users_and_exec(self):
        r = gw(self.exed, self.key, VM, "whoami; hostname")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, f"user\n{VM}\n", ""))
        r = gw(self.exed, self.key, VM, "id -u", user="root")
        self.assertEqual((r.returncode, r.stdout), (0, "0\n"), r.stderr)
        r = gw(self.exed, self.key, VM, "echo out; echo err >&2; exit 3")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (3, "out\n", "err\n"))
        data = os.urandom(2 << 20)
        r = subprocess.run(ssh_args(self.exed, self.key, dest=dest(VM)) + ["cat | sha256sum"], input=data,
                           capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split()[0].decode(), hashlib.sha256(data).hexdigest())
        command = "echo before; kill -TERM $$; echo after"
        via, straight = gw(self.exed, self.key, VM, command), direct(self.exed, VM, command)
        print(f"exit-signal: direct rc={straight.returncode} stderr={straight.stderr!r}; "
              f"gateway rc={via.returncode} stderr={via.stderr!r}", file=sys.stderr)
        self.assertEqual(straight.stdout, "before\n")
        self.assertEqual((via.returncode, via.stdout, via.stderr),
                         (straight.returncode, straight.stdout, straight.stderr))

    def test_another_account_is_refused_like_a_missing_vm(self):
        for user in (None, "user", "root"):
            mine = gw(self.exed, self.other, VM, "true", user=user)
            none = gw(self.exed, self.other, NOBODY, "true", user=user)
            self.assertNotEqual(mine.returncode, 0)
            if user:
                self.assertIn(refusal_line(VM), mine.stderr)
            else:
                self.assertIn("unknown command 'true'", mine.stderr, "the lobby answers")
            self.assertEqual(neutral(mine, VM), neutral(none, NOBODY))

    def test_scp_both_modes_and_sftp(self):
        src = os.path.join(self.tmp, "file.bin")
        digest = random_file(src, 8 << 20)
        back = os.path.join(self.tmp, "back.bin")
        for legacy in (False, True):
            mode = "scp -O" if legacy else "scp (sftp)"
            r = subprocess.run(scp_args(self.exed, self.key, legacy) + [src, f"{VM}@{HOST}:f.bin"],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, f"{mode} up: {r.stderr}")
            self.assertEqual(gw(self.exed, self.key, VM, "sha256sum f.bin").stdout.split()[0], digest, mode)
            r = subprocess.run(scp_args(self.exed, self.key, legacy) + [f"{VM}@{HOST}:f.bin", back],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, f"{mode} down: {r.stderr}")
            self.assertEqual(sha256_file(back), digest, mode)
            os.unlink(back)
            gw(self.exed, self.key, VM, "rm -f f.bin")
        r = subprocess.run(sftp_args(self.exed, self.key, dest(VM)),
                           input=f"put {src} s.bin\nls -l s.bin\nget s.bin {back}\nrm s.bin\n",
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sha256_file(back), digest, "sftp")

    def test_local_forward(self):
        # No web server in the image: busybox's httpd, started by the user, on a high port.
        r = gw(self.exed, self.key, VM, "mkdir -p /tmp/www && echo hello-from-debian > /tmp/www/index.html && "
                                        "busybox httpd -p 8088 -h /tmp/www")
        self.assertEqual(r.returncode, 0, r.stderr)
        port = free_port()
        fwd = subprocess.Popen(ssh_args(self.exed, self.key, ["-N", "-L", f"{port}:localhost:8088",
                                                              "-o", "ExitOnForwardFailure=yes"], dest=dest(VM)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            body = wait_for(lambda: fwd.poll() is None and http_get(port), timeout=30, what="the forwarded page")
            self.assertIn("hello-from-debian", body)
        finally:
            fwd.terminate()
            fwd.wait(timeout=10)
            gw(self.exed, self.key, VM, "pkill -f 'busybox httpd -p 8088'")

    def test_interactive_shell_in_a_terminal(self):
        check_interactive_shell(self, self.exed, self.key, VM, f"user@{VM}:")

    def test_stopped_vm_is_started_on_connect(self):
        r = ssh(self.exed, self.key, "stop", VM, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(vm_row(self.exed, VM)["status"], "stopped")
        t0 = time.time()
        r = gw(self.exed, self.key, VM, "echo hi", timeout=600)
        print(f"stopped debian VM: connect -> output {time.time() - t0:.1f}s", file=sys.stderr)
        self.assertEqual((r.returncode, r.stdout), (0, "hi\n"), r.stderr)
        self.assertIn("is stopped; starting it", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
