"""VMs end to end: real QEMU guests (TCG here, KVM in production) of the
tiny image, booted by exed, reached over SSH with exed's gateway key."""
import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
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


def guest(exed, vm, command, timeout=60):
    """Runs `command` as root in the guest, straight to its forwarded sshd with exed's gateway key."""
    port = vm_row(exed, vm["vm_name"])["ssh_port"]
    key = os.path.join(exed.state, "gateway", "id_ed25519")
    return subprocess.run(["ssh", "-p", str(port), "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                           "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                           "-o", "LogLevel=ERROR", "root@127.0.0.1", command],
                          capture_output=True, text=True, timeout=timeout)


def qemu_pids(vm_id):
    r = subprocess.run(["pgrep", "-f", "--", f"-name exed-vm-{vm_id}( |$)"], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]


def cgroup_exists(account, vm_id):
    return any(os.path.isdir(f"/sys/fs/cgroup/{c}/exed/{account}/vm-{vm_id}") for c in ("memory", "pids", "cpu"))


def port_listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Vms(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.exed = Exed(PG, "vms", {"images_dir": images_dir(), "default_image": "tiny", "vm_memory": "256M",
                                    "reconcile_seconds": 2})

    @classmethod
    def tearDownClass(cls):
        print("---- exed log (tail) ----\n" + "\n".join(cls.exed.read_log().splitlines()[-80:]), file=sys.stderr)
        cls.exed.close()

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

    def test_new_is_ssh_ready_and_rm_leaves_nothing(self):
        key = self.account("ann")
        t0 = time.time()
        vm = self.new(key, "--name", "ann-box", "--env", "'GREETING=hello there'", "--tag", "web")
        print(f"new -> ssh-ready: {time.time() - t0:.1f}s", file=sys.stderr)
        self.assertEqual(vm["vm_name"], "ann-box")
        self.assertEqual(vm["status"], "running")
        self.assertEqual(vm["https_url"], f"https://ann-box.exe.localhost:{self.exed.https_port}/")
        self.assertEqual(vm["ssh_dest"], "ann-box@localhost")
        for field in ("image", "cpus", "memory_mib", "disk_gib"):
            self.assertIn(field, vm)
        listed = ssh_json(self.exed, key, "ls")["vms"]
        self.assertEqual([v["vm_name"] for v in listed], ["ann-box"])
        r = guest(self.exed, vm, "hostname; . /etc/profile; echo \"$GREETING\"")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split("\n")[:2], ["ann-box", "hello there"])
        row = vm_row(self.exed, "ann-box")
        self.assertTrue(row["host_key"].startswith("ssh-ed25519 "), "the host key is pinned at first boot")
        pids = qemu_pids(row["id"])
        self.assertEqual(len(pids), 1)
        with open(f"/proc/{pids[0]}/status") as f:
            uid = next(line.split()[1] for line in f if line.startswith("Uid:"))
        self.assertNotEqual(uid, "0", "QEMU runs unprivileged")
        self.assertTrue(cgroup_exists("ann", row["id"]))
        self.assertTrue(port_listening(row["ssh_port"]))
        # rm: no row, no disk, no cgroup, no process, no port
        r = ssh(self.exed, key, "rm", "ann-box")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIsNone(vm_row(self.exed, "ann-box"))
        self.assertEqual(qemu_pids(row["id"]), [])
        self.assertFalse(cgroup_exists("ann", row["id"]))
        self.assertFalse(os.path.exists(os.path.join(self.exed.state, "vms", str(row["id"]))))
        self.assertFalse(port_listening(row["ssh_port"]))
        self.assertEqual(ssh_json(self.exed, key, "ls")["vms"], [])

    def test_files_survive_restart_and_stop_start(self):
        key = self.account("bea")
        vm = self.new(key, "--name", "bea-box")
        self.assertEqual(guest(self.exed, vm, "echo kept > /root/note && sync").returncode, 0)
        r = ssh(self.exed, key, "restart", "bea-box", timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(guest(self.exed, vm, "cat /root/note").stdout.strip(), "kept")
        self.assertEqual(ssh(self.exed, key, "stop", "bea-box").returncode, 0)
        self.assertEqual(vm_row(self.exed, "bea-box")["status"], "stopped")
        self.assertEqual(qemu_pids(vm_row(self.exed, "bea-box")["id"]), [])
        self.assertEqual(ssh(self.exed, key, "start", "bea-box", timeout=300).returncode, 0)
        self.assertEqual(guest(self.exed, vm, "cat /root/note").stdout.strip(), "kept")
        self.assertEqual(ssh(self.exed, key, "rm", "bea-box").returncode, 0)

    def test_cp_resize_tag_logs(self):
        key = self.account("hal", disk="40G")
        vm = self.new(key, "--name", "hal-box", "--disk", "10G")
        self.assertEqual(guest(self.exed, vm, "echo original > /root/mark && sync").returncode, 0)
        r = ssh(self.exed, key, "cp", "hal-box", "hal-copy", "--json", timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        copy = json.loads(r.stdout)
        self.assertEqual(guest(self.exed, copy, "hostname; cat /root/mark").stdout.split(), ["hal-copy", "original"])
        self.assertEqual(guest(self.exed, vm, "echo ok").stdout.strip(), "ok", "the source runs on after the copy")
        # The copied disk carries the source's host keys; the clone makes its own.
        self.assertTrue(vm_row(self.exed, "hal-copy")["host_key"].startswith("ssh-ed25519 "))
        self.assertNotEqual(vm_row(self.exed, "hal-copy")["host_key"], vm_row(self.exed, "hal-box")["host_key"])
        # disks only grow, within the budget (10 + 10 provisioned of 40)
        r = ssh(self.exed, key, "resize", "hal-box", "--disk", "5G")
        self.assertEqual(r.returncode, 1)
        self.assertIn("a disk cannot shrink", r.stderr)
        r = ssh(self.exed, key, "resize", "hal-box", "--disk", "31G")
        self.assertEqual(r.returncode, 1)
        self.assertIn("disk budget exceeded by 1 GiB", r.stderr)
        r = ssh(self.exed, key, "resize", "hal-box", "--disk", "20G", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["disk_gib"], 20)
        r = ssh(self.exed, key, "stat", "hal-box", "--json")
        self.assertEqual(json.loads(r.stdout)["disk_virtual_bytes"], 20 << 30, "the running VM's disk grew")
        self.assertEqual(ssh(self.exed, key, "tag", "hal-box", "db", "prod").returncode, 0)
        self.assertEqual(ssh(self.exed, key, "tag", "-d", "hal-box", "prod").returncode, 0)
        tags = {v["vm_name"]: v["tags"] for v in ssh_json(self.exed, key, "ls")["vms"]}
        self.assertEqual(tags["hal-box"], ["db"])
        self.assertIn("exed-ready", ssh(self.exed, key, "logs", "hal-box").stdout)
        r = ssh(self.exed, key, "rename", "hal-copy", "hal-two")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(ssh(self.exed, key, "rm", "hal-box", "hal-two", timeout=120).returncode, 0)

    def test_interrupted_new_leaves_nothing(self):
        key = self.account("ivy")
        from harness import ssh_args
        client = subprocess.Popen(ssh_args(self.exed, key) + ["new", "--name", "ivy-box"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: vm_row(self.exed, "ivy-box") is not None, what="the VM row")
        vm_id = vm_row(self.exed, "ivy-box")["id"]
        wait_for(lambda: qemu_pids(vm_id), what="QEMU to start")
        client.kill()  # the user pressed Ctrl-C / lost the connection mid-boot
        client.wait()
        wait_for(lambda: vm_row(self.exed, "ivy-box") is None, timeout=30, what="the row to go")
        wait_for(lambda: qemu_pids(vm_id) == [], timeout=30, what="QEMU to go")
        self.assertFalse(cgroup_exists("ivy", vm_id))
        self.assertFalse(os.path.exists(os.path.join(self.exed.state, "vms", str(vm_id))))
        self.assertIn("the client went away", self.exed.read_log())

    def test_account_cgroup_carries_the_budget(self):
        key = self.account("jon", cpus=2, memory="768M", vms=3)
        self.new(key, "--name", "jon-box")
        with open("/sys/fs/cgroup/memory/exed/jon/memory.limit_in_bytes") as f:
            self.assertEqual(int(f.read()), 768 << 20)
        with open("/sys/fs/cgroup/cpu/exed/jon/cpu.cfs_quota_us") as f:
            self.assertEqual(int(f.read()), 200000)
        with open("/sys/fs/cgroup/pids/exed/jon/pids.max") as f:
            self.assertEqual(f.read().strip(), "384")
        self.assertEqual(ssh(self.exed, key, "rm", "jon-box").returncode, 0)

    def test_over_budget_is_refused_with_which_limit(self):
        key = self.account("cat", vms=1, memory="512M", disk="20G")
        r = ssh(self.exed, key, "new", "--memory", "1G")
        self.assertEqual(r.returncode, 1)
        self.assertIn("whole budget is 512 MiB", r.stderr)
        r = ssh(self.exed, key, "new", "--disk", "30G")
        self.assertEqual(r.returncode, 1)
        self.assertIn("whole budget is 20 GiB", r.stderr)
        self.new(key, "--name", "cat-one", "--disk", "5G")
        r = ssh(self.exed, key, "new", "--name", "cat-two")
        self.assertEqual(r.returncode, 1)
        self.assertIn("VM limit reached: 1 of 1 VM exists", r.stderr)
        self.assertIsNone(vm_row(self.exed, "cat-two"), "a refused new leaves no row")
        r = ssh(self.exed, key, "new", "--image", "nosuch")
        self.assertEqual(r.returncode, 1)
        self.assertIn("the images are:", r.stderr)
        r = ssh(self.exed, key, "new", "--name", "Bad_Name")
        self.assertIn("Bad_Name", r.stderr)
        self.assertEqual(ssh(self.exed, key, "rm", "cat-one").returncode, 0)
        self.assertEqual(self.exed.admin("account", "budget", "cat", "--vms", "2").returncode, 0)
        self.new(key, "--name", "cat-big", "--disk", "15G")
        r = ssh(self.exed, key, "new", "--disk", "10G")
        self.assertEqual(r.returncode, 1)
        self.assertIn("disk budget exceeded by 5 GiB", r.stderr)
        self.assertEqual(ssh(self.exed, key, "rm", "cat-big").returncode, 0)

    def test_ten_parallel_news_against_a_five_vm_budget(self):
        key = self.account("dan", vms=5)
        def one(i):
            return ssh(self.exed, key, "new", "--no-wait", "--name", f"dan-{i}", timeout=300)
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            results = list(pool.map(one, range(10)))
        ok = [r for r in results if r.returncode == 0]
        refused = [r for r in results if r.returncode != 0]
        self.assertEqual(len(ok), 5, [r.stderr for r in refused])
        for r in refused:
            self.assertIn("VM limit reached: 5 of 5 VMs", r.stderr)
        self.assertEqual(int(psql(self.exed, "SELECT count(*) FROM vms v JOIN accounts a ON a.id = v.account_id "
                                             "WHERE a.name = 'dan'")), 5)
        names = [v["vm_name"] for v in ssh_json(self.exed, key, "ls")["vms"]]
        r = ssh(self.exed, key, "rm", *names, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_kill_9_exed_then_restart_reattaches(self):
        key = self.account("eve")
        self.new(key, "--name", "eve-box")
        row = vm_row(self.exed, "eve-box")
        pid = qemu_pids(row["id"])[0]
        self.exed.stop(signal.SIGKILL)
        self.assertEqual(qemu_pids(row["id"]), [pid], "the VM outlives exed")
        self.exed.start()
        wait_for(lambda: vm_row(self.exed, "eve-box")["status"] == "running", what="re-attached")
        self.assertEqual(qemu_pids(row["id"]), [pid], "same QEMU process, not restarted")
        self.assertIn("eve-box", [v["vm_name"] for v in ssh_json(self.exed, key, "ls")["vms"]])
        r = ssh(self.exed, key, "stat", "eve-box", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(json.loads(r.stdout)["running"])
        self.assertEqual(ssh(self.exed, key, "rm", "eve-box").returncode, 0)
        self.assertEqual(qemu_pids(row["id"]), [])

    def test_crashed_vm_is_restarted_by_the_reconciler(self):
        key = self.account("fay")
        self.new(key, "--name", "fay-box")
        row = vm_row(self.exed, "fay-box")
        old = qemu_pids(row["id"])[0]
        os.kill(old, signal.SIGKILL)
        def restarted():
            now = vm_row(self.exed, "fay-box")
            return now["status"] == "running" and now["pid"] not in (None, old) and qemu_pids(row["id"]) == [now["pid"]]
        wait_for(restarted, timeout=120, what="the reconciler to restart the VM")
        self.assertEqual(ssh(self.exed, key, "rm", "fay-box").returncode, 0)

    def test_guest_cannot_reach_host_loopback(self):
        key = self.account("gus")
        vm = self.new(key, "--name", "gus-box")
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        port = listener.getsockname()[1]
        try:
            # via the gateway address, via the host's own addresses, and as a
            # root guest routing 127.0.0.1 out of its NIC
            script = (f"gw=$(ip route | awk '/default/{{print $3}}'); "
                      f"for a in $gw 10.0.2.2 192.0.2.2; do nc -w 3 $a {port} </dev/null && echo REACHED $a; done; "
                      f"ip route add 127.0.0.1/32 via $gw dev eth0 2>/dev/null; "
                      f"echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet 2>/dev/null; "
                      f"nc -w 3 127.0.0.1 {port} </dev/null && echo REACHED loopback; echo done")
            r = guest(self.exed, vm, script, timeout=120)
            self.assertIn("done", r.stdout, r.stderr)
            self.assertNotIn("REACHED", r.stdout)
            listener.setblocking(False)
            with self.assertRaises(BlockingIOError):
                listener.accept()
        finally:
            listener.close()
        self.assertEqual(ssh(self.exed, key, "rm", "gus-box").returncode, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
