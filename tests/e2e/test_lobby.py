"""The SSH lobby end to end: real exed, real PostgreSQL, real OpenSSH client."""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Exed, Key, Postgres, Tmux, ssh, ssh_args, ssh_json, wait_for  # noqa: E402

PG = None


def setUpModule():
    global PG
    PG = Postgres()


def tearDownModule():
    PG.close()


class Lobby(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.exed = Exed(PG, "lobby")

    @classmethod
    def tearDownClass(cls):
        cls.exed.close()

    def register(self, name, key=None):
        key = key or Key()
        r = ssh(self.exed, key, "register", name)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"welcome, {name}!", r.stdout)
        return key

    def test_register_then_whoami_json(self):
        key = self.register("alice")
        j = ssh_json(self.exed, key, "whoami")
        self.assertEqual(j["name"], "alice")
        self.assertEqual([k["fingerprint"] for k in j["keys"]], [key.fingerprint])
        for part in ("budget", "usage"):
            self.assertEqual(set(j[part]), {"cpus", "memory_mib", "disk_gib", "vms"})
        self.assertEqual(j["budget"], {"cpus": 2, "memory_mib": 8192, "disk_gib": 100, "vms": 10})
        self.assertEqual(j["usage"], {"cpus": 0, "memory_mib": 0, "disk_gib": 0, "vms": 0})

    def test_second_key_logs_in_then_is_removed(self):
        first = self.register("bob")
        second = Key(comment="laptop")
        r = ssh(self.exed, first, "ssh-key", "add", input=second.public + "\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(ssh_json(self.exed, second, "whoami")["name"], "bob")
        keys = ssh_json(self.exed, second, "ssh-key", "list")["keys"]
        self.assertEqual({k["comment"] for k in keys}, {"key-1", "laptop"})
        self.assertIsNotNone(next(k for k in keys if k["comment"] == "laptop")["last_used_at"])
        r = ssh(self.exed, first, "ssh-key", "remove", "laptop")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = ssh(self.exed, second, "whoami")
        self.assertEqual(r.returncode, 1)
        self.assertIn("has no account here", r.stderr)
        # and the last key cannot go
        r = ssh(self.exed, first, "ssh-key", "remove", first.fingerprint)
        self.assertEqual(r.returncode, 1)
        self.assertIn("only key", r.stderr)

    def test_ssh_key_rename_and_remove_by_fingerprint(self):
        first = self.register("carol")
        second = Key(comment="old")
        self.assertEqual(ssh(self.exed, first, "ssh-key", "add", second.public).returncode, 0)
        r = ssh(self.exed, first, "ssh-key", "rename", "old", "new-name")
        self.assertEqual(r.returncode, 0, r.stderr)
        keys = ssh_json(self.exed, first, "ssh-key", "list")["keys"]
        self.assertIn("new-name", [k["comment"] for k in keys])
        r = ssh(self.exed, first, "ssh-key", "remove", second.fingerprint, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["removed"]["fingerprint"], second.fingerprint)

    def test_password_and_keyboard_interactive_are_refused(self):
        args = ssh_args(self.exed, None, ["-o", "PubkeyAuthentication=no",
                                          "-o", "PreferredAuthentications=password,keyboard-interactive"])
        r = subprocess.run(args + ["whoami"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 255)
        self.assertIn("Permission denied (publickey)", r.stderr)

    def test_unknown_key_is_told_how_to_register(self):
        r = ssh(self.exed, Key(), "whoami")
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"ssh -p {self.exed.port} localhost register NAME", r.stderr)
        self.assertEqual(r.stdout, "")

    def test_unknown_command_suggests_and_exits_2(self):
        key = self.register("dave")
        r = ssh(self.exed, key, "whomai")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown command 'whomai'", r.stderr)
        self.assertIn("did you mean 'whoami'", r.stderr)
        r = ssh(self.exed, key, "ssh-key", "lst")
        self.assertEqual(r.returncode, 2)
        self.assertIn("did you mean 'ssh-key list'", r.stderr)

    def test_arguments_are_split_like_a_shell(self):
        key = self.register("erin")
        other = Key()
        # One quoted argument holding the whole key and a comment with a space.
        r = ssh(self.exed, key, "ssh-key add '" + other.public.rsplit(" ", 1)[0] + " my laptop'")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("my laptop", [k["comment"] for k in ssh_json(self.exed, key, "ssh-key", "list")["keys"]])
        r = ssh(self.exed, key, "register 'unterminated")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unterminated", r.stderr)

    def test_every_command_has_help_and_json(self):
        key = self.register("frank")
        for cmd in (["help"], ["whoami"], ["register"], ["ssh-key", "list"], ["ssh-key", "add"],
                    ["ssh-key", "remove"], ["ssh-key", "rename"], ["exit"]):
            r = ssh(self.exed, key, *cmd, "--help")
            self.assertEqual(r.returncode, 0, f"{cmd}: {r.stderr}")
            self.assertIn("usage: " + " ".join(cmd), r.stdout)
            r = ssh(self.exed, key, "help", *cmd, "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(json.loads(r.stdout)["name"], " ".join(cmd))
        self.assertIn("whoami", [c["name"] for c in ssh_json(self.exed, key, "help")["commands"]])

    def test_plain_session_reads_commands_from_stdin(self):
        key = self.register("gina")
        r = subprocess.run(ssh_args(self.exed, key, ["-T"]), input="whoami --json\nexit\n", capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"name": "gina"', r.stdout)

    def test_lobby_refuses_file_transfer(self):
        key = self.register("hank")
        r = subprocess.run(["sftp", "-b", "-", "-P", str(self.exed.port), "-i", key.path, "-o", "IdentitiesOnly=yes",
                            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                            "-o", "BatchMode=yes", "localhost"], input="ls\n", capture_output=True, text=True,
                           timeout=30)
        self.assertNotEqual(r.returncode, 0)

    def test_interactive_session_with_line_editing_and_history(self):
        key = Key()
        t = Tmux(ssh_args(self.exed, key, ["-t"]))
        try:
            t.wait_for("account name:")
            t.type("ivan")
            t.send("Enter")
            t.wait_for("welcome, ivan!")
            t.wait_for("exed>")
            # typing with a mistake fixed by backspace
            t.type("whoamx")
            t.send("BSpace")
            t.type("i")
            t.send("Enter")
            t.wait_for("account  ivan")
            # Ctrl-U clears, Ctrl-C drops the line without running it
            t.type("garbage")
            t.send("C-u")
            t.type("rm-everything")
            t.send("C-c")
            t.wait_for("^C")
            # Tab completes command names
            t.type("ssh-k")
            t.send("Tab")
            t.type("lis")
            t.send("Tab")
            t.send("Enter")
            t.wait_for("FINGERPRINT")
            # Up recalls the previous command
            t.send("Up", "Up", "Enter")
            wait_for(lambda: t.screen().count("account  ivan") == 2, what="whoami run again from history")
            self.assertNotIn("unknown command 'rm-everything'", t.screen())
            t.send("C-d")
            t.wait_for("bye")
        finally:
            t.close()
        # History survives the session: a new one recalls it with Up.
        t = Tmux(ssh_args(self.exed, key, ["-t"]))
        try:
            t.wait_for("exed>")
            t.send("Up")
            t.wait_for("exed> whoami")
            t.send("Up")
            t.wait_for("exed> ssh-key list")
            t.send("C-u")
            t.type("exit")
            t.send("Enter")
            t.wait_for("bye")
        finally:
            t.close()

    def test_admin_cli_on_the_same_database(self):
        key = Key()
        r = self.exed.admin("account", "add", "judy", "--key", key.public, "--cpus", "4", "--memory", "16G")
        self.assertEqual(r.returncode, 0, r.stderr)
        j = ssh_json(self.exed, key, "whoami")
        self.assertEqual(j["name"], "judy")
        self.assertEqual(j["budget"]["cpus"], 4)
        self.assertEqual(j["budget"]["memory_mib"], 16384)
        r = self.exed.admin("account", "budget", "judy", "--vms", "3", "--disk", "1T")
        self.assertEqual(r.returncode, 0, r.stderr)
        j = ssh_json(self.exed, key, "whoami")
        self.assertEqual((j["budget"]["vms"], j["budget"]["disk_gib"]), (3, 1024))
        listed = json.loads(self.exed.admin("account", "list", "--json").stdout)
        self.assertIn("judy", [a["name"] for a in listed["accounts"]])
        r = self.exed.admin("account", "add", "judy")
        self.assertEqual(r.returncode, 1)
        self.assertIn("already exists", r.stderr)
        r = self.exed.admin("account", "budget", "nobody-here")
        self.assertEqual(r.returncode, 1)
        r = self.exed.admin("account", "frobnicate")
        self.assertEqual(r.returncode, 2)


class HostKeys(unittest.TestCase):
    def test_host_keys_are_0600_and_stable_across_restarts(self):
        exed = Exed(PG, "hostkeys")
        try:
            key = Key()
            known = os.path.join(exed.state, "known_hosts")
            r = subprocess.run(ssh_args(exed, key, ["-o", "HashKnownHosts=no"], known_hosts=known, strict="accept-new") + ["help"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            for f in os.listdir(os.path.join(exed.state, "hostkeys")):
                mode = os.stat(os.path.join(exed.state, "hostkeys", f)).st_mode & 0o777
                self.assertEqual(mode, 0o600, f)
            port = exed.port
            self.assertEqual(exed.stop(), 0, "SIGTERM stops exed cleanly")
            exed.start()
            with open(known) as f:  # the port changed: pin the old entry to the new port
                entries = f.read().replace(f"[localhost]:{port}", f"[localhost]:{exed.port}")
            with open(known, "w") as f:
                f.write(entries)
            r = subprocess.run(ssh_args(exed, key, [], known_hosts=known, strict="yes") + ["help"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, "host key changed across restart: " + r.stderr)
        finally:
            exed.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
