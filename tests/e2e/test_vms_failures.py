"""VMs when things go wrong, end to end, on the tiny image: a host reboot, a
VM whose restarts keep failing, a full disk during `new`, and a QEMU that
exed did not start (or no longer knows). Each test has its own exed (own
state directory and database) because each breaks something of it.

Processes of a VM are found by its directory in their command line
(QEMU's -pidfile and disks, passt's --socket), never by `-name exed-vm-ID`
alone: another exed on this machine (a second checkout's tests) numbers its
VMs from 1 too."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Exed, Key, Postgres, images_dir, psql, ssh, ssh_json, vm_row, wait_for  # noqa: E402

PG = None


def setUpModule():
    global PG
    PG = Postgres()


def tearDownModule():
    PG.close()


def vm_dir(exed, vm_id):
    return os.path.join(exed.state, "vms", str(vm_id))


def vm_procs(exed, vm_id):
    """Pids of every process (QEMU, passt) whose command line names the VM's directory."""
    r = subprocess.run(["pgrep", "-f", "--", vm_dir(exed, vm_id) + "/"], capture_output=True, text=True)
    return sorted(int(p) for p in r.stdout.split())


def qemu_pid(exed, vm_id):
    r = subprocess.run(["pgrep", "-f", "--", f"-name exed-vm-{vm_id} .*{vm_dir(exed, vm_id)}/"],
                       capture_output=True, text=True)
    pids = [int(p) for p in r.stdout.split()]
    return pids[0] if len(pids) == 1 else None


def cgroup_dirs(account, vm_id=None):
    """The account's (or one VM's) group in every cgroup hierarchy where it exists."""
    root = "/sys/fs/cgroup"
    out = []
    for c in sorted(os.listdir(root)):
        d = os.path.join(root, c, "exed", account)
        if vm_id is not None:
            d = os.path.join(d, f"vm-{vm_id}")
        if os.path.isdir(d):
            out.append(d)
    return out


def guest(exed, row, command, timeout=60):
    """Runs `command` as root in the guest, straight to its forwarded sshd with exed's gateway key."""
    key = os.path.join(exed.state, "gateway", "id_ed25519")
    return subprocess.run(["ssh", "-p", str(row["ssh_port"]), "-i", key, "-o", "IdentitiesOnly=yes",
                           "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                           "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "root@127.0.0.1", command],
                          capture_output=True, text=True, timeout=timeout)


def read(path):
    with open(path) as f:
        return f.read()


def poll(cond, timeout, what, every=0.5):
    """wait_for, for conditions that cost an ssh session each: checked every `every` s."""
    def slow():
        v = cond()
        if not v:
            time.sleep(every)
        return v
    return wait_for(slow, timeout, what)


def status_in_ls(exed, key, name):
    for v in ssh_json(exed, key, "ls")["vms"]:
        if v["vm_name"] == name:
            return v["status"]
    return None


class Base(unittest.TestCase):
    DB = None
    SETTINGS = {}

    def setUp(self):
        self.exed = Exed(PG, self.DB, {"images_dir": images_dir(), "default_image": "tiny", "vm_memory": "256M",
                                       "reconcile_seconds": 1, **self.SETTINGS})
        self.addCleanup(self.close_exed)

    def close_exed(self):
        print(f"---- {self.id()}: exed log (tail) ----\n" + "\n".join(self.exed.read_log().splitlines()[-60:]),
              file=sys.stderr)
        self.exed.close()

    def account(self, name, **budget):
        key = Key()
        args = ["account", "add", name, "--key", key.public]
        for k, v in budget.items():
            args += [f"--{k}", str(v)]
        r = self.exed.admin(*args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return key

    def new(self, key, *args):
        r = ssh(self.exed, key, "new", "--json", *args, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)


class HostReboot(Base):
    DB = "vmf_reboot"

    def test_vm_comes_back_after_a_reboot_with_its_files(self):
        key = self.account("rbt-owner", memory="768M")
        self.new(key, "--name", "rbt-box")
        row = vm_row(self.exed, "rbt-box")
        r = guest(self.exed, row, "echo survived > /root/reboot-note && sync")
        self.assertEqual(r.returncode, 0, r.stderr)
        procs = vm_procs(self.exed, row["id"])
        self.assertEqual(len(procs), 2, "QEMU and passt")

        # The reboot: exed, QEMU and passt die at once, with no chance to clean up.
        self.exed.stop(signal.SIGKILL)
        for p in procs:
            os.kill(p, signal.SIGKILL)
        wait_for(lambda: vm_procs(self.exed, row["id"]) == [], what="QEMU and passt to die")
        # What lives in the kernel goes too: the cgroups (the VM's and its
        # account's; the `exed` parent is shared with other installations).
        for d in cgroup_dirs("rbt-owner", row["id"]) + cgroup_dirs("rbt-owner"):
            wait_for(lambda: read(os.path.join(d, "cgroup.procs")) == "", what=f"{d} to empty")
            os.rmdir(d)
        # The runtime files live on disk under the state directory, so they
        # stay, stale: sockets nobody listens on, and pid files whose pids now
        # belong to other processes (here a `sleep`).
        decoy = subprocess.Popen(["sleep", "600"])
        self.addCleanup(decoy.wait)
        self.addCleanup(decoy.kill)
        d = vm_dir(self.exed, row["id"])
        for f in ("qemu.pid", "passt.pid"):
            with open(os.path.join(d, f), "w") as out:
                out.write(f"{decoy.pid}\n")
        self.assertTrue(os.path.exists(os.path.join(d, "passt.sock")), "a stale socket is left, as by a reboot")

        self.exed.start()  # same state directory, same database
        # exed serves at once; the restart (a boot) is the reconciler's, in the background.
        self.assertIn("event=reconciled attached=0 restarted=0 failed=0 undone=0 strays=0 to_restart=1",
                      self.exed.read_log())
        self.assertEqual(ssh(self.exed, key, "whoami").returncode, 0)

        def back():
            now = vm_row(self.exed, "rbt-box")
            pid = qemu_pid(self.exed, row["id"])
            return now["status"] == "running" and pid is not None and now["pid"] == pid
        wait_for(back, timeout=120, what="the reconciler to start the VM again")
        self.assertNotIn(vm_row(self.exed, "rbt-box")["pid"], procs)
        r = guest(self.exed, row, "cat /root/reboot-note")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "survived")
        self.assertIsNone(decoy.poll(), "the process that reused a stale pid is left alone")
        self.assertEqual(status_in_ls(self.exed, key, "rbt-box"), "running")
        # The account's budget is back on its (new) cgroup.
        self.assertEqual(int(read("/sys/fs/cgroup/memory/exed/rbt-owner/memory.limit_in_bytes")), 768 << 20)
        self.assertIn(f"/exed/rbt-owner/vm-{row['id']}\n", read(f"/proc/{vm_row(self.exed, 'rbt-box')['pid']}/cgroup"))
        self.assertEqual(ssh(self.exed, key, "rm", "rbt-box", timeout=120).returncode, 0)
        self.assertEqual(vm_procs(self.exed, row["id"]), [])


class RepeatedRestartFailures(Base):
    DB = "vmf_crash"

    def test_crashed_after_failed_restarts_and_start_recovers(self):
        key = self.account("crs-owner")
        self.new(key, "--name", "crs-box")
        row = vm_row(self.exed, "crs-box")
        disk = os.path.join(vm_dir(self.exed, row["id"]), "disk.qcow2")
        mode = os.stat(disk).st_mode & 0o7777
        # The fault: the VM user (QEMU runs as `exed`) can no longer open the
        # disk, as after a restore or a chmod by hand. The running QEMU has it
        # open already; it dies, and every restart fails.
        os.chmod(disk, 0)
        os.kill(qemu_pid(self.exed, row["id"]), signal.SIGKILL)
        poll(lambda: status_in_ls(self.exed, key, "crs-box") == "crashed", timeout=180,
             what="the VM to be marked crashed after the reconciler's retries")
        log = self.exed.read_log()
        for attempt in (1, 2, 3):
            self.assertIn(f"event=vm-restart-failed vm=crs-box attempt={attempt} ", log)
        self.assertNotIn("attempt=4", log)
        self.assertIn("Permission denied", log, "the failure says why")
        self.assertEqual(vm_row(self.exed, "crs-box")["restarts"], 3)
        self.assertEqual(vm_procs(self.exed, row["id"]), [], "no passt or QEMU is left of the failed attempts")

        # `start` tries again, and succeeds once the fault is fixed.
        r = ssh(self.exed, key, "start", "crs-box", timeout=120)
        self.assertEqual(r.returncode, 1, "the fault is still there")
        self.assertIn("Permission denied", r.stderr)
        os.chmod(disk, mode)
        log_at_start = len(self.exed.read_log())
        r = ssh(self.exed, key, "start", "crs-box", timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(status_in_ls(self.exed, key, "crs-box"), "running")
        now = vm_row(self.exed, "crs-box")
        self.assertEqual(now["restarts"], 0)
        self.assertEqual(now["pid"], qemu_pid(self.exed, row["id"]))
        r = guest(self.exed, now, "echo ok")
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "ok"), r.stderr)
        # Nothing undid the start behind its back (the reconciler once did,
        # acting on the row it had read before the start: vmm/reconciler.cc).
        self.assertEqual(vm_row(self.exed, "crs-box")["pid"], now["pid"])
        self.assertNotIn("event=vm-down vm=crs-box", self.exed.read_log()[log_at_start:])
        self.assertEqual(ssh(self.exed, key, "rm", "crs-box", timeout=120).returncode, 0)


class FullDisk(Base):
    DB = "vmf_full"

    def assert_nothing_left(self, r, vms, *expected):
        self.assertEqual(r.returncode, 1, r.stdout)
        err = r.stderr.strip()
        self.assertNotIn("\n", err, "one line")
        for e in expected + ("No space left on device", "nothing was kept"):
            self.assertIn(e, err)
        self.assertIsNone(vm_row(self.exed, "ful-box"))
        self.assertEqual(psql(self.exed, "SELECT count(*) FROM vms"), "0")
        self.assertEqual(os.listdir(vms), ["fill"], "no VM directory, no disk")
        for d in cgroup_dirs("ful-owner"):
            self.assertEqual([e for e in os.listdir(d) if e.startswith("vm-")], [], d)
        r = subprocess.run(["pgrep", "-f", "--", vms + "/"], capture_output=True, text=True)
        self.assertEqual(r.stdout, "", "no QEMU or passt")
        self.assertEqual(ssh_json(self.exed, self.key, "ls")["vms"], [])

    def test_new_on_a_full_disk_fails_clearly_and_leaves_nothing(self):
        self.key = key = self.account("ful-owner")
        # VM files go to STATE/vms: make that a small file system, and fill it.
        vms = os.path.join(self.exed.state, "vms")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128m,mode=0755", "tmpfs", vms], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", vms])
        fill = os.path.join(vms, "fill")
        with open(fill, "wb") as f:
            with self.assertRaises(OSError):
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
        # Full: the disk cannot even be made.
        r = ssh(self.exed, key, "new", "--name", "ful-box", timeout=300)
        self.assert_nothing_left(r, vms, "cannot create the VM's disk")
        # Nearly full: the disk is made and QEMU starts, but the guest's first
        # writes (host keys, growing its file system) find no room, and QEMU
        # pauses it; `new` says so instead of waiting for the boot timeout.
        os.truncate(fill, os.path.getsize(fill) - (1 << 20))
        r = ssh(self.exed, key, "new", "--name", "ful-box", timeout=300)
        self.assert_nothing_left(r, vms, "QEMU paused the guest")
        # With room again, the same `new` works: the failures used up nothing.
        os.remove(fill)
        vm = self.new(key, "--name", "ful-box")
        self.assertEqual(vm["status"], "running")
        self.assertEqual(ssh(self.exed, key, "rm", "ful-box", timeout=120).returncode, 0)


class Strays(Base):
    DB = "vmf_stray"
    SETTINGS = {"log_level": "debug"}  # event=reconcile-pass: one line per pass

    def fake_qemu(self, vm_id, pidfile):
        """A process whose command line reads like exed's QEMU for VM `vm_id` (it sleeps)."""
        p = subprocess.Popen(["qemu-system-x86_64", "-c", "import time; time.sleep(600)", "-name", f"exed-vm-{vm_id}",
                              "-M", "microvm", "-pidfile", pidfile], executable=sys.executable)
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        return p

    def test_a_qemu_without_a_row_is_reported_and_left_running(self):
        # Another installation's VM (its files elsewhere) is none of ours.
        other = tempfile.mkdtemp(prefix="exed-e2e-other-")
        self.addCleanup(os.rmdir, other)
        theirs = self.fake_qemu(987655, os.path.join(other, "vms", "987655", "qemu.pid"))
        # Ours, by its files, but the database has no such VM (a row deleted
        # by hand, a database restored from an older backup).
        ours = self.fake_qemu(987654, os.path.join(vm_dir(self.exed, 987654), "qemu.pid"))
        line = f"event=stray-qemu vm_id=987654 pid={ours.pid} "
        wait_for(lambda: line in self.exed.read_log(), timeout=30, what="the stray to be reported")
        wait_for(lambda: self.exed.read_log().split(line, 1)[1].count("event=reconcile-pass") >= 3, timeout=30,
                 what="three more reconciler passes")
        log = self.exed.read_log()
        self.assertNotIn("vm_id=987655", log)
        self.assertEqual(log.count(line), 1, "reported once, not at every pass")
        self.assertIsNone(ours.poll(), "a stray is reported, not killed")
        self.assertIsNone(theirs.poll())


if __name__ == "__main__":
    unittest.main(verbosity=2)
