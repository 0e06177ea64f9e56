"""The SSH gateway end to end (issue #4): `ssh VM@host`, `USER+VM@host`, scp
(both modes), sftp, -L forwarding and interactive shells through exed's SSH
front into real `tiny` guests (busybox + dropbear) under QEMU, with the real
OpenSSH client and tmux. Two VMs, booted once for the whole file."""
import concurrent.futures
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import (Exed, Key, Postgres, Tmux, free_port, images_dir, psql, scp_args, sftp_args, ssh,  # noqa: E402
                     ssh_args, ssh_json, vm_row, wait_for)

PG = None
HOST = "localhost"
NOBODY = "no-such-vm"  # a VM name that exists nowhere
# Accounts. Per-account cgroups (exed/ACCOUNT/vm-ID) are machine-wide: names no
# other test file uses keep a concurrent run elsewhere from meeting these VMs.
OWNER, OTHER = "gw-ann", "gw-bob"


def setUpModule():
    global PG
    PG = Postgres()


def tearDownModule():
    PG.close()


# ---- helpers shared with test_gateway_debian and ops/bench/ssh-gateway ----


def isolate_vm_ids(exed):
    """Starts this database's VM ids at a random high number. QEMU is named
    `exed-vm-ID` and exed's reconciler looks for its VMs by that name across
    the whole machine, so two exed installations (test runs in other
    checkouts) whose VM ids collide re-attach to each other's QEMU."""
    import random
    psql(exed, f"ALTER SEQUENCE vms_id_seq RESTART WITH {random.randrange(10**6, 10**9)}")


def dest(vm, user=None):
    return f"{user}+{vm}@{HOST}" if user else f"{vm}@{HOST}"


def gw(exed, key, vm, *command, user=None, input=None, timeout=60):
    """`ssh -p PORT [USER+]VM@localhost COMMAND` through exed (text mode)."""
    return ssh(exed, key, *command, dest=dest(vm, user), input=input, timeout=timeout)


def direct_args(exed, vm, user="user"):
    """ssh's argv straight to the guest's forwarded sshd with exed's gateway key:
    what the gateway should be indistinguishable from."""
    port = vm_row(exed, vm)["ssh_port"]
    key = os.path.join(exed.state, "gateway", "id_ed25519")
    return ["ssh", "-p", str(port), "-i", key, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", f"{user}@127.0.0.1"]


def direct(exed, vm, command, user="user", timeout=60):
    return subprocess.run(direct_args(exed, vm, user) + [command], capture_output=True, text=True, timeout=timeout)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def random_file(path, size):
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    return sha256_file(path)


def http_get(port, path="/"):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.read().decode(errors="replace")
    except OSError:
        return None


def refusal_line(name):
    return f'no VM named "{name}" that you may use'


def neutral(r, name):
    """A result with the VM's name blanked, to compare refusals of different names."""
    return (r.returncode, r.stdout.replace(name, "NAME"), r.stderr.replace(name, "NAME"))


# A command line for the guest: is a process with exactly this command line running?
def running_cmd(cmdline):
    return ("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done "
            f"| grep -qx '{cmdline} *'")


def check_interactive_shell(test, exed, key, vm, prompt):
    """`ssh -t VM@host` in tmux: the pty has the pane's size and TERM, follows a
    resize, and Ctrl-C interrupts the remote foreground process."""
    t = Tmux(ssh_args(exed, key, ["-t"], dest=dest(vm)), width=100, height=30)
    try:
        t.wait_for(prompt, timeout=60)
        cols, rows = t.pane_size()
        t.type("echo S=$(stty size)=E T=$TERM=E")
        t.send("Enter")
        t.wait_for(f"S={rows} {cols}=E")
        t.wait_for(f"T={t.term()}=E")
        t.resize(120, 40)
        test.assertEqual(t.pane_size(), (120, 40))
        time.sleep(0.5)  # the window-change request travels client -> exed -> guest
        t.type("echo S=$(stty size)=E")
        t.send("Enter")
        t.wait_for("S=40 120=E")
        # Ctrl-C reaches the remote foreground process (the pty's line discipline sends SIGINT)
        t.type("sleep 1234")
        t.send("Enter")
        wait_for(lambda: gw(exed, key, vm, running_cmd("sleep 1234")).returncode == 0, timeout=30,
                 what="sleep to run in the guest")
        t.send("C-c")
        wait_for(lambda: gw(exed, key, vm, running_cmd("sleep 1234")).returncode == 1, timeout=30,
                 what="sleep to be interrupted")
        t.type("echo back-$((6*7))")
        t.send("Enter")
        t.wait_for("back-42")
        t.type("exit")
        t.send("Enter")
    finally:
        t.close()


class Gateway(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.exed = Exed(PG, "gateway", {"images_dir": images_dir(), "default_image": "tiny", "vm_memory": "256M"})
        cls.tmp = tempfile.mkdtemp(prefix="exed-e2e-gw-")
        try:
            isolate_vm_ids(cls.exed)
            cls.ann = cls.account(OWNER)  # owns both VMs
            cls.bob = cls.account(OTHER)  # may use none, until ann shares one
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                results = list(pool.map(lambda n: ssh(cls.exed, cls.ann, "new", "--json", "--name", n, timeout=300),
                                        ("ann-one", "ann-two")))
            for r in results:
                if r.returncode != 0:
                    raise AssertionError(f"new failed: {r.stderr}\n" + cls.exed.read_log()[-3000:])
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        log = cls.exed.read_log()
        print("---- exed log (tail) ----\n" + "\n".join(log.splitlines()[-80:]), file=sys.stderr)
        if os.environ.get("EXED_E2E_LOG_DIR"):  # keep the whole log, to read after a failure
            name = os.path.splitext(os.path.basename(__file__))[0] + ".exed.log"
            with open(os.path.join(os.environ["EXED_E2E_LOG_DIR"], name), "w") as f:
                f.write(log)
        cls.exed.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def account(cls, name):
        key = Key()
        r = cls.exed.admin("account", "add", name, "--key", key.public)
        if r.returncode != 0:
            raise AssertionError(r.stderr)
        return key

    def ensure_running(self, vm):
        if vm_row(self.exed, vm)["status"] != "running":
            r = ssh(self.exed, self.ann, "start", vm, timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr)

    # ---- routing ----

    def test_routing_by_user_name(self):
        r = gw(self.exed, self.ann, "ann-one", "whoami; hostname")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "user\nann-one\n", ""),
                         "the image's user is the default login")
        r = gw(self.exed, self.ann, "ann-one", "id -u", user="root")
        self.assertEqual((r.returncode, r.stdout), (0, "0\n"), r.stderr)
        r = gw(self.exed, self.ann, "ann-one", "id -un", user="user")
        self.assertEqual((r.returncode, r.stdout), (0, "user\n"), r.stderr)
        # lobby@ is always the lobby; a name that is no VM of ours lands there too
        for d in ("lobby", NOBODY, OWNER):
            r = ssh(self.exed, self.ann, "whoami", "--json", dest=f"{d}@{HOST}")
            self.assertEqual(r.returncode, 0, f"{d}@: {r.stderr}")
            self.assertEqual(json.loads(r.stdout)["name"], OWNER, f"{d}@ reaches the lobby")

    def test_refusal_is_the_same_as_for_a_vm_that_does_not_exist(self):
        vm = "ann-one"
        # A plain name and an ordinary command: the lobby answers, same for both.
        mine = gw(self.exed, self.bob, vm, "true")
        none = gw(self.exed, self.bob, NOBODY, "true")
        self.assertEqual(mine.returncode, 2, mine.stderr)
        self.assertIn("unknown command 'true'", mine.stderr)
        # ...and then why it did not run in a VM of that name.
        self.assertIn(refusal_line(vm), mine.stderr)
        self.assertEqual(neutral(mine, vm), neutral(none, NOBODY))
        # USER+VM: one line saying so, non-zero, same for both (and for the owner asking for a missing VM).
        for user in ("user", "root"):
            mine = gw(self.exed, self.bob, vm, "true", user=user)
            none = gw(self.exed, self.bob, NOBODY, "true", user=user)
            owner_none = gw(self.exed, self.ann, NOBODY, "true", user=user)
            self.assertNotEqual(mine.returncode, 0)
            self.assertEqual(sum(refusal_line(vm) in line for line in mine.stderr.splitlines()), 1, mine.stderr)
            self.assertEqual(mine.stdout, "")
            self.assertEqual(neutral(mine, vm), neutral(none, NOBODY))
            self.assertEqual(neutral(owner_none, NOBODY), neutral(none, NOBODY))
        # File transfer to a plain name: scp -t (legacy), the sftp subsystem (scp's default, and sftp).
        src = os.path.join(self.tmp, "refused.txt")
        with open(src, "w") as f:
            f.write("x\n")
        for legacy in (True, False):
            outs = []
            for name in (vm, NOBODY):
                r = subprocess.run(scp_args(self.exed, self.bob, legacy) + [src, f"{name}@{HOST}:"],
                                   capture_output=True, text=True, timeout=60)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn(refusal_line(name), r.stderr, f"scp legacy={legacy}")
                outs.append(neutral(r, name))
            self.assertEqual(outs[0], outs[1], f"scp legacy={legacy}")
        outs = []
        for name in (vm, NOBODY):
            r = subprocess.run(sftp_args(self.exed, self.bob, f"{name}@{HOST}"), input="ls\n", capture_output=True,
                               text=True, timeout=60)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(refusal_line(name), r.stderr, "sftp")
            outs.append(neutral(r, name))
        self.assertEqual(outs[0], outs[1], "sftp")

    def ssh_access(self, vm):
        """`share show VM --json`: its "vm" must be VM; returns its "ssh_access"."""
        j = ssh_json(self.exed, self.ann, "share", "show", vm)
        self.assertEqual(j["vm"], vm)
        return j["ssh_access"]

    def test_sharing_grants_and_revokes_ssh(self):
        vm = "ann-one"
        try:
            self.assertEqual(self.ssh_access(vm), [])
            # only the owner changes shares
            r = ssh(self.exed, self.bob, "share", "access", "allow", vm, OTHER)
            self.assertNotEqual(r.returncode, 0, "bob may not share ann's VM with himself")
            r = ssh(self.exed, self.ann, "share", "access", "allow", vm, "nobody-here")
            self.assertNotEqual(r.returncode, 0, "no such account")
            r = ssh(self.exed, self.ann, "share", "access", "allow", vm, OTHER)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(self.ssh_access(vm), [OTHER])
            r = ssh(self.exed, self.ann, "share", "show", vm)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(OTHER, r.stdout)
            # bob now reaches it, as the image's user or as USER+VM
            r = gw(self.exed, self.bob, vm, "hostname; whoami")
            self.assertEqual((r.returncode, r.stdout), (0, f"{vm}\nuser\n"), r.stderr)
            r = gw(self.exed, self.bob, vm, "id -un", user="user")
            self.assertEqual((r.returncode, r.stdout), (0, "user\n"), r.stderr)
            src = os.path.join(self.tmp, "shared.txt")
            with open(src, "w") as f:
                f.write("from bob\n")
            r = subprocess.run(scp_args(self.exed, self.bob) + [src, f"{vm}@{HOST}:shared.txt"], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(gw(self.exed, self.ann, vm, "cat shared.txt; rm shared.txt").stdout, "from bob\n")
            # ann's other VM stays hers alone
            r = gw(self.exed, self.bob, "ann-two", "true", user="user")
            self.assertIn(refusal_line("ann-two"), r.stderr)
            # and bob cannot take the share away either: only the owner changes it
            r = ssh(self.exed, self.bob, "share", "access", "deny", vm, OTHER)
            self.assertNotEqual(r.returncode, 0)
            self.assertEqual(self.ssh_access(vm), [OTHER])
        finally:
            r = ssh(self.exed, self.ann, "share", "access", "deny", vm, OTHER)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.ssh_access(vm), [])
        r = gw(self.exed, self.bob, vm, "true")
        self.assertEqual(r.returncode, 2, "the lobby answers again: " + r.stderr)
        self.assertIn("unknown command 'true'", r.stderr)
        r = gw(self.exed, self.bob, vm, "true", user="user")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(refusal_line(vm), r.stderr)

    def test_ls_json_ssh_dest_is_usable_as_given(self):
        vms = ssh_json(self.exed, self.ann, "ls")["vms"]
        self.assertEqual(sorted(v["vm_name"] for v in vms), ["ann-one", "ann-two"])
        for v in vms:
            self.ensure_running(v["vm_name"])
            self.assertEqual(v["ssh_dest"], f"{v['vm_name']}@{HOST}")
            r = ssh(self.exed, self.ann, "hostname", dest=v["ssh_dest"], timeout=300)
            self.assertEqual((r.returncode, r.stdout), (0, v["vm_name"] + "\n"), r.stderr)

    # ---- exec ----

    def test_exec_keeps_streams_apart_and_relays_exit_status_and_stdin(self):
        r = gw(self.exed, self.ann, "ann-one", "echo out; echo err >&2; exit 3")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (3, "out\n", "err\n"))
        data = os.urandom(4 << 20)
        r = subprocess.run(ssh_args(self.exed, self.ann, dest=dest("ann-one")) + ["cat | sha256sum"], input=data,
                           capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split()[0].decode(), hashlib.sha256(data).hexdigest(), "stdin relayed to its EOF")
        # output is complete when the exit status arrives
        r = gw(self.exed, self.ann, "ann-one", "seq 1 200000; echo done >&2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "".join(f"{i}\n" for i in range(1, 200001)))
        self.assertEqual(r.stderr, "done\n")
        # binary stdout, byte for byte
        r = subprocess.run(ssh_args(self.exed, self.ann, dest=dest("ann-one")) + ["cat"], input=data[:1 << 20],
                           capture_output=True, timeout=60)
        self.assertEqual(r.stdout, data[:1 << 20])

    def test_exit_signal_is_relayed_like_a_direct_connection(self):
        command = "echo before; kill -TERM $$; echo after"
        via = gw(self.exed, self.ann, "ann-one", command)
        straight = direct(self.exed, "ann-one", command)
        print(f"exit-signal: direct rc={straight.returncode} stderr={straight.stderr!r}; "
              f"gateway rc={via.returncode} stderr={via.stderr!r}", file=sys.stderr)
        self.assertEqual(straight.stdout, "before\n")
        self.assertEqual((via.returncode, via.stdout, via.stderr),
                         (straight.returncode, straight.stdout, straight.stderr))

    def test_many_sessions_at_once(self):
        for vm in ("ann-one", "ann-two"):
            self.ensure_running(vm)

        def one(i):
            return i, gw(self.exed, self.ann, ("ann-one", "ann-two")[i % 2], f"echo {i}", timeout=180)
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            results = list(pool.map(one, range(10)))
        for i, r in results:
            self.assertEqual((r.returncode, r.stdout), (0, f"{i}\n"), f"session {i}: {r.stderr}")

    # ---- files ----

    def test_scp_both_modes_both_ways(self):
        src = os.path.join(self.tmp, "big.bin")
        digest = random_file(src, 32 << 20)
        for legacy in (False, True):
            mode = "scp -O" if legacy else "scp (sftp)"
            remote = "legacy.bin" if legacy else "sftp.bin"
            t0 = time.time()
            r = subprocess.run(scp_args(self.exed, self.ann, legacy) + [src, f"ann-one@{HOST}:{remote}"],
                               capture_output=True, text=True, timeout=300)
            up = time.time() - t0
            self.assertEqual(r.returncode, 0, f"{mode} up: {r.stderr}")
            r = gw(self.exed, self.ann, "ann-one", f"sha256sum {remote}; stat -c %U {remote}")
            self.assertEqual(r.stdout.split()[0], digest, f"{mode} up")
            self.assertEqual(r.stdout.split()[-1], "user", "written as the login user")
            back = os.path.join(self.tmp, "back.bin")
            t0 = time.time()
            r = subprocess.run(scp_args(self.exed, self.ann, legacy) + [f"ann-one@{HOST}:{remote}", back],
                               capture_output=True, text=True, timeout=300)
            down = time.time() - t0
            self.assertEqual(r.returncode, 0, f"{mode} down: {r.stderr}")
            self.assertEqual(sha256_file(back), digest, f"{mode} down")
            print(f"{mode}: 32 MiB up {up:.1f}s, down {down:.1f}s", file=sys.stderr)
            os.unlink(back)
            gw(self.exed, self.ann, "ann-one", f"rm -f {remote}")
        # root+VM writes as root
        r = subprocess.run(scp_args(self.exed, self.ann) + [src, f"root+ann-one@{HOST}:/root/big.bin"],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = gw(self.exed, self.ann, "ann-one", "sha256sum /root/big.bin; rm /root/big.bin", user="root")
        self.assertEqual(r.stdout.split()[0], digest)

    def test_sftp_batch(self):
        src = os.path.join(self.tmp, "sftp-src.bin")
        digest = random_file(src, 1 << 20)
        back = os.path.join(self.tmp, "sftp-back.bin")
        script = f"mkdir dir\nput {src} dir/f.bin\nls -l dir\nget dir/f.bin {back}\nrm dir/f.bin\nrmdir dir\n"
        r = subprocess.run(sftp_args(self.exed, self.ann, dest("ann-one")), input=script, capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("f.bin", r.stdout)
        self.assertEqual(sha256_file(back), digest)
        self.assertEqual(gw(self.exed, self.ann, "ann-one", "test -e dir && echo still-there").stdout, "")
        # a failing batch command fails sftp, as it would against any sshd
        r = subprocess.run(sftp_args(self.exed, self.ann, dest("ann-one")), input="get /no/such/file\n",
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)

    # ---- port forwarding ----

    def test_local_forward_reaches_the_guest_web_server(self):
        port = free_port()
        fwd = subprocess.Popen(ssh_args(self.exed, self.ann, ["-N", "-L", f"{port}:localhost:80",
                                                              "-o", "ExitOnForwardFailure=yes"],
                                        dest=dest("ann-one")),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            body = wait_for(lambda: fwd.poll() is None and http_get(port), timeout=30,
                            what="the forwarded web page")
            self.assertIn("Hello from an exed", body)
            # several connections through the one session, at once
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                bodies = list(pool.map(lambda _: http_get(port), range(8)))
            self.assertTrue(all(b and "Hello from an exed" in b for b in bodies), bodies)
            self.assertIsNone(fwd.poll(), "the session stays up")
        finally:
            fwd.terminate()
            fwd.communicate(timeout=10)

    # ---- interactive ----

    def test_interactive_shell_in_a_terminal(self):
        check_interactive_shell(self, self.exed, self.ann, "ann-one", "user@ann-one:")

    # ---- VM state ----

    def test_stopped_vm_is_started_on_connect(self):
        vm = "ann-two"
        self.ensure_running(vm)
        r = ssh(self.exed, self.ann, "stop", vm, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(vm_row(self.exed, vm)["status"], "stopped")
        t0 = time.time()
        r = gw(self.exed, self.ann, vm, "echo hi", timeout=300)
        print(f"stopped VM: connect -> output {time.time() - t0:.1f}s", file=sys.stderr)
        self.assertEqual((r.returncode, r.stdout), (0, "hi\n"), r.stderr)
        self.assertEqual(sum("is stopped; starting it" in line for line in r.stderr.splitlines()), 1, r.stderr)
        self.assertEqual(vm_row(self.exed, vm)["status"], "running")
        r = gw(self.exed, self.ann, vm, "echo again")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "again\n", ""), "a running VM: no notice")

    def test_guest_host_key_mismatch_is_refused(self):
        vm = "ann-two"
        self.ensure_running(vm)
        pinned = vm_row(self.exed, vm)["host_key"]
        impostor = " ".join(Key().public.split()[:2])
        self.assertNotEqual(pinned, impostor)
        psql(self.exed, f"UPDATE vms SET host_key = '{impostor}' WHERE name = '{vm}'")
        try:
            r = gw(self.exed, self.ann, vm, "echo should-not-run")
            self.assertNotEqual(r.returncode, 0)
            self.assertEqual(r.stdout, "")
            self.assertIn("host key", r.stderr)
            wait_for(lambda: "event=guest-hostkey-mismatch" in self.exed.read_log(), timeout=5,
                     what="event=guest-hostkey-mismatch in exed's log")
            r = subprocess.run(scp_args(self.exed, self.ann) + [__file__, f"{vm}@{HOST}:"], capture_output=True,
                               text=True, timeout=60)
            self.assertNotEqual(r.returncode, 0, "no file transfer either")
        finally:
            psql(self.exed, f"UPDATE vms SET host_key = '{pinned}' WHERE name = '{vm}'")
        r = gw(self.exed, self.ann, vm, "echo back")
        self.assertEqual((r.returncode, r.stdout), (0, "back\n"), r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
