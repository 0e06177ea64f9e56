"""One full boot of the `debian` image (systemd, OpenSSH): the default image
users live in. Slow under TCG (~30 s), so just one VM does everything."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Exed, Key, Postgres, images_dir, ssh  # noqa: E402
from test_vms import guest, qemu_pids, vm_row  # noqa: E402


class Debian(unittest.TestCase):
    def test_full_debian_boot(self):
        pg = Postgres()
        exed = Exed(pg, "debian", {"images_dir": images_dir()})
        try:
            key = Key()
            self.assertEqual(exed.admin("account", "add", "deb", "--key", key.public).returncode, 0)
            t0 = time.time()
            script = "echo ran >> /root/setup-count"
            r = ssh(exed, key, "new", "--json", "--name", "deb-box", "--env", "'EDITOR=vim'", "--setup-script",
                    f"'{script}'", timeout=600)
            self.assertEqual(r.returncode, 0, r.stderr + exed.read_log()[-3000:])
            print(f"debian new -> ssh-ready: {time.time() - t0:.1f}s", file=sys.stderr)
            import json
            vm = json.loads(r.stdout)
            self.assertEqual(vm["image"], "debian", "debian is the default image")
            out = guest(exed, vm, "hostname; . /etc/profile; echo $EDITOR; id -nG user; systemctl is-active ssh; "
                                  "cat /root/setup-count; sudo -n -u user sudo -n true && echo sudo-ok")
            self.assertEqual(out.returncode, 0, out.stderr)
            lines = out.stdout.split("\n")
            self.assertEqual(lines[0], "deb-box")
            self.assertEqual(lines[1], "vim")
            self.assertIn("sudo", lines[2].split())
            self.assertEqual(lines[3], "active")
            self.assertEqual(lines[4], "ran")
            self.assertIn("sudo-ok", out.stdout)
            # Each VM gets its own host keys, made at its first boot and pinned.
            self.assertTrue(vm_row(exed, "deb-box")["host_key"].startswith("ssh-ed25519 "))
            r = ssh(exed, key, "restart", "deb-box", timeout=600)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(guest(exed, vm, "cat /root/setup-count").stdout, "ran\n", "the setup script ran once")
            row = vm_row(exed, "deb-box")
            self.assertEqual(ssh(exed, key, "rm", "deb-box", timeout=120).returncode, 0)
            self.assertEqual(qemu_pids(row["id"]), [])
        finally:
            print("\n".join(exed.read_log().splitlines()[-40:]), file=sys.stderr)
            exed.close()
            pg.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
