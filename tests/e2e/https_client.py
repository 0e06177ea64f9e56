"""What test_https.py uses to act as a web user: curl trusting only exed's CA,
login by code in a cookie jar, raw TLS, and reading back what the VM saw.

HttpsClient is a mixin for a unittest.TestCase whose class sets exed, keys
({account: Key}), ca (the CA's PEM file), tmp, P (the HTTPS port), apex,
vm, vmhost, vmurl and jars ({}).
"""
import html
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

from harness import ssh, wait_for


class Resp:
    def __init__(self, status, url, headers, set_cookies, body):
        self.status, self.url, self.headers, self.set_cookies, self.body = status, url, headers, set_cookies, body

    def __repr__(self):
        return f"<{self.status} {self.url} {self.headers} {self.body[:300]!r}>"


def parse_env(body):
    env = {}
    for line in body.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            env[k] = v
    return env


def jar_cookies(jar, host):
    """{name: value} of the cookies in curl's jar for exactly `host`."""
    out = {}
    if not os.path.exists(jar):
        return out
    with open(jar) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#HttpOnly_"):
                line = line[len("#HttpOnly_"):]
            elif line.startswith("#") or not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) == 7 and fields[0] == host:
                out[fields[5]] = fields[6]
    return out


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class HttpsClient:
    def curl(self, url, *extra, jar=None, follow=False, timeout=60, stdin=None):
        """curl as a user runs it, trusting only exed's CA. Returns the last response."""
        d = tempfile.mkdtemp(dir=self.tmp)
        args = ["curl", "-sS", "--cacert", self.ca, "-o", d + "/body", "-D", d + "/hdr", "-w", "%{json}",
                "--max-time", str(timeout)]
        if jar:
            args += ["-b", jar, "-c", jar]
        if follow:
            args += ["-L", "--max-redirs", "10"]
        r = subprocess.run(args + list(extra) + [url], capture_output=True, text=True, timeout=timeout + 10,
                           stdin=stdin)
        info = json.loads(r.stdout) if r.stdout.startswith("{") else {}
        if r.returncode != 0 and not info.get("http_code"):
            raise AssertionError(f"curl {url} failed ({r.returncode}): {r.stderr}")
        with open(d + "/hdr", "rb") as f:
            blocks = [b for b in f.read().decode(errors="replace").split("\r\n\r\n") if b.strip()]
        last = blocks[-1] if blocks else ""
        headers, cookies = {}, []
        for line in last.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
            if k.strip().lower() == "set-cookie":
                cookies.append(v.strip())
        with open(d + "/body", "rb") if os.path.exists(d + "/body") else open(os.devnull, "rb") as f:
            body = f.read().decode(errors="replace")
        shutil.rmtree(d, ignore_errors=True)
        return Resp(int(info.get("http_code", 0)), info.get("url_effective", url), headers, cookies, body)

    def lobby(self, account, *command, timeout=60):
        r = ssh(self.exed, self.keys[account], *command, timeout=timeout)
        self.assertEqual(r.returncode, 0, f"{command}: {r.stderr}")
        return r.stdout

    def root(self, command, timeout=60):
        """Runs `command` as root in the VM through exed's SSH gateway."""
        return ssh(self.exed, self.keys["ann"], command, dest=f"root+{self.vm}@localhost", timeout=timeout)

    def login(self, account, start_url):
        """Logs `account` in as a user does: opens `start_url` in a fresh cookie jar, reads the code
        from the login page, approves it over SSH, and follows the page's refresh.
        Returns (jar, last response, code)."""
        jar = os.path.join(self.tmp, f"jar-{account}-{time.time_ns()}")
        page = self.curl(start_url, jar=jar, follow=True)
        self.assertEqual(page.status, 200, page)
        self.assertTrue(page.url.startswith(f"https://{self.apex}/__exed/login"), page.url)
        m = re.search(r"login ([A-Z0-9]{4}-[A-Z0-9]{4})", page.body)
        self.assertIsNotNone(m, page.body)
        code = m.group(1)
        self.assertIn("__Host-exed-login", jar_cookies(jar, "exe.localhost"))
        refresh = re.search(r'<meta http-equiv="refresh" content="\d+; url=([^"]+)"', page.body)
        self.assertIsNotNone(refresh, page.body)
        wait_url = html.unescape(refresh.group(1))
        self.assertTrue(wait_url.startswith(f"https://{self.apex}/__exed/login/wait?next="), wait_url)
        # Not approved yet: the page waits.
        pending = self.curl(wait_url, jar=jar)
        self.assertEqual(pending.status, 200)
        self.assertIn(code, pending.body)
        self.assertNotIn("__Host-exed", jar_cookies(jar, "exe.localhost"))
        out = self.lobby(account, "login", code)
        self.assertIn(f"approved login {code}", out)
        self.assertIn(account, out)
        done = self.curl(wait_url, jar=jar, follow=True)
        self.assertIn("__Host-exed", jar_cookies(jar, "exe.localhost"))
        return jar, done, code

    def account_jar(self, account):
        """A jar logged in as `account` at the apex and on the VM host (made once)."""
        if account not in self.jars:
            jar, last, _ = self.login(account, self.vmurl + "/")
            self.assertIn("__Host-exed-vm", jar_cookies(jar, self.vmhost), last)
            self.jars[account] = jar
        return self.jars[account]

    def vm_cookie(self, account):
        return "__Host-exed-vm=" + jar_cookies(self.account_jar(account), self.vmhost)["__Host-exed-vm"]

    def poll_status(self, url, want, *extra, timeout=15, **kw):
        last = []

        def ok():
            last[:] = [self.curl(url, *extra, **kw)]
            return last[0].status == want
        try:
            wait_for(ok, timeout, f"{url} to answer {want}")
        except AssertionError as e:
            raise AssertionError(f"{e}; last: {last}") from None
        return last[0]

    def tls(self, host=None):
        ctx = ssl.create_default_context(cafile=self.ca)
        s = socket.create_connection(("127.0.0.1", self.P), timeout=15)
        return ctx.wrap_socket(s, server_hostname=host or self.vmhost)

    def raw(self, data, host=None, timeout=15):
        """Sends `data` over a fresh TLS connection; returns all bytes until the server closes."""
        s = self.tls(host)
        s.settimeout(timeout)
        s.sendall(data)
        out = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except (socket.timeout, ssl.SSLError, ConnectionResetError):
            pass
        s.close()
        return out

    def hits(self):
        r = self.root("cat /tmp/hits 2>/dev/null; true")
        return r.stdout.split()
