"""The HTTPS front from a real browser: headless Chromium (Debian's
/usr/bin/chromium, driven by playwright-core through tests/e2e/node/driver.js)
against a real exed and one private `tiny` guest (busybox httpd on port 80).

Chromium trusts exed's CA the way a user would make it: `ssh host ca` into an
NSS database under a HOME of its own (certutil). No certificate errors are
ignored.

  1. Login by code: the VM's URL sends the browser to the apex login page; the
     code on the page, approved with `ssh host login CODE`, lets the page go on
     by itself (meta refresh) to the VM's page.
  2. A WebSocket through the front: websocketd (Debian's) copied into the VM
     with scp through the SSH gateway, `share port VM 8080`, and from the
     logged-in page `new WebSocket("wss://VM.DOMAIN:PORT/")` echoes "ping".

ops/setup installs chromium, libnss3-tools, websocketd and (npm ci) the
driver's node_modules."""
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import Exed, Key, Postgres, images_dir, scp_args, ssh  # noqa: E402

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WEBSOCKETD = "/usr/bin/websocketd"
# Account names are machine-wide (per-account cgroups): none other test file uses.
OWNER = "br-ann"
VM = "br-box"
HELLO = "Hello from an exed"  # the tiny image's /var/www/index.html

PG = None


def setUpModule():
    global PG
    missing = [p for p in (CHROMIUM, WEBSOCKETD, shutil.which("certutil") or "certutil", shutil.which("node") or "node",
                           os.path.join(NODE_DIR, "node_modules", "playwright-core"))
               if not os.path.exists(p)]
    if missing:
        raise AssertionError(f"missing {', '.join(missing)}: run ops/setup (Debian packages chromium, "
                             f"libnss3-tools, websocketd, nodejs; npm ci in {NODE_DIR})")
    PG = Postgres()


def tearDownModule():
    if PG:
        PG.close()


def nss_home(ca_pem=None):
    """A HOME whose NSS database (what Chromium on Linux trusts) holds `ca_pem`, or nothing."""
    home = tempfile.mkdtemp(prefix="exed-e2e-browser-home-")
    db = os.path.join(home, ".pki", "nssdb")
    os.makedirs(db)
    subprocess.run(["certutil", "-d", f"sql:{db}", "-N", "--empty-password"], check=True, capture_output=True)
    if ca_pem:
        path = os.path.join(home, "exed-ca.pem")
        with open(path, "w") as f:
            f.write(ca_pem)
        subprocess.run(["certutil", "-d", f"sql:{db}", "-A", "-t", "C,,", "-n", "exed", "-i", path], check=True,
                       capture_output=True)
    return home


class Browser:
    """One headless Chromium behind tests/e2e/node/driver.js: call(op, ...) -> the driver's answer."""

    def __init__(self, home):
        self.home = home
        self.err = open(os.path.join(home, "driver.err"), "w+")
        env = dict(os.environ, HOME=home, CHROMIUM=CHROMIUM)
        self.proc = subprocess.Popen(["node", os.path.join(NODE_DIR, "driver.js")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.err, env=env, text=True)
        try:
            hello = self._answer(60)
            if not hello.get("ready"):
                raise AssertionError(f"Chromium did not start: {hello}; {self.stderr()}")
        except BaseException:
            self.proc.kill()
            self.close()
            raise
        self.version = hello["version"]

    def stderr(self):
        self.err.seek(0)
        return self.err.read()[-3000:]

    def _answer(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if r else ""
        if not line:
            raise AssertionError(f"no answer from the browser driver within {timeout}s; {self.stderr()}")
        return json.loads(line)

    def call(self, op, timeout=60, **req):
        self.proc.stdin.write(json.dumps(dict(req, op=op)) + "\n")
        self.proc.stdin.flush()
        return self._answer(timeout)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.call("quit", timeout=20)
                self.proc.wait(timeout=20)
            except (AssertionError, BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.err):
            try:
                f.close()
            except BrokenPipeError:
                pass
        shutil.rmtree(self.home, ignore_errors=True)


# Runs in the page: opens `url`, sends each message, collects what comes back.
WS_ECHO_JS = """async () => await new Promise((resolve) => {
  const got = [], sent = %(messages)s;
  let ws;
  try { ws = new WebSocket(%(url)s); } catch (e) { resolve({error: 'constructor: ' + e}); return; }
  const timer = setTimeout(() => resolve({error: 'timeout', got}), 15000);
  ws.onopen = () => ws.send(sent[0]);
  ws.onmessage = (e) => {
    got.push(e.data);
    if (got.length < sent.length) { ws.send(sent[got.length]); return; }
    clearTimeout(timer); ws.close(); resolve({got});
  };
  ws.onerror = () => { clearTimeout(timer); resolve({error: 'error', got}); };
  ws.onclose = (e) => { clearTimeout(timer); resolve({error: 'closed ' + e.code, got}); };
})"""


def ws_echo_js(url, messages):
    return WS_ECHO_JS % {"url": json.dumps(url), "messages": json.dumps(messages)}


class BrowserE2E(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.exed = Exed(PG, "browser", {"images_dir": images_dir(), "default_image": "tiny", "vm_memory": "256M"})
        cls.addClassCleanup(cls.exed.close)  # also when this setup fails half-way (its VM with it)
        cls.browser = None
        cls.key = Key()
        r = cls.exed.admin("account", "add", OWNER, "--key", cls.key.public)
        assert r.returncode == 0, r.stderr
        r = ssh(cls.exed, cls.key, "new", "--name", VM, "--image", "tiny", "--json", timeout=300)
        assert r.returncode == 0, r.stderr
        r = ssh(cls.exed, cls.key, "ca")
        assert r.returncode == 0 and "BEGIN CERTIFICATE" in r.stdout, r.stderr
        cls.ca_pem = r.stdout
        cls.port = cls.exed.https_port
        cls.vm_url = f"https://{VM}.exe.localhost:{cls.port}/"
        cls.apex = f"https://exe.localhost:{cls.port}"
        cls.browser = Browser(nss_home(cls.ca_pem))
        cls.addClassCleanup(cls.browser.close)
        cls.logged_in = False
        print(f"chromium {cls.browser.version}, exed https on {cls.port}", file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        print("---- exed log (tail) ----\n" + "\n".join(cls.exed.read_log().splitlines()[-60:]), file=sys.stderr)
        r = ssh(cls.exed, cls.key, "rm", VM, timeout=120)
        print(f"rm {VM}: {r.returncode} {r.stderr.strip()}", file=sys.stderr)

    def call(self, op, **req):
        return self.browser.call(op, **req)

    def login(self):
        """Scenario 1 on page "a"; the later scenarios reuse its cookies."""
        if self.logged_in:
            return
        self.assertEqual(self.call("page", id="a"), {"ok": True})
        t0 = time.time()
        r = self.call("goto", id="a", url=self.vm_url)
        self.assertNotIn("error", r, r)
        self.assertTrue(r["url"].startswith(self.apex + "/__exed/login?next="), r)
        self.assertEqual(r["status"], 200)
        page = self.call("state", id="a")
        self.assertIn("login", page["text"], page)
        code = self.call("eval", id="a", js="async () => document.querySelector('b.code').textContent")["value"]
        self.assertRegex(code, r"^[A-Z0-9]{4}-[A-Z0-9]{4}$")
        self.assertIn(f"login {code}", page["text"], "the page says what to type")
        # Approved over SSH with the VM owner's key; the page goes on by itself.
        r = ssh(self.exed, self.key, "login", code)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"approved login {code}", r.stdout)
        page = self.call("wait_text", id="a", text=HELLO, timeout_ms=20000)
        self.assertNotIn("error", page, page)
        hops = " -> ".join(urllib.parse.urlsplit(u).netloc.split(":")[0].split(".")[0] + urllib.parse.urlsplit(u).path
                           for u in page["history"])
        print(f"login by code: the VM's page after {time.time() - t0:.1f}s: {hops}", file=sys.stderr)
        self.assertEqual(page["url"], self.vm_url)
        history = page["history"]
        self.assertTrue(any(u.startswith(self.apex + "/__exed/login/wait?") for u in history), history)
        self.assertTrue(any(u.startswith(self.vm_url + "__exed/auth?token=") for u in history), history)
        # The browser's cookies: one host-only session cookie on the VM host, the
        # apex's own on the apex; none is readable by the page's script.
        self.assertEqual(self.call("eval", id="a", js="async () => document.cookie")["value"], "")
        type(self).logged_in = True

    def test_1_browser_without_the_ca_refuses_the_certificate(self):
        b = Browser(nss_home())
        try:
            b.call("page", id="x")
            r = b.call("goto", id="x", url=self.vm_url)
            self.assertIn("ERR_CERT_AUTHORITY_INVALID", r.get("error", ""), r)
        finally:
            b.close()

    def test_2_login_by_code_then_the_vm_page(self):
        self.login()
        # A reload goes straight to the VM: the host cookie holds.
        r = self.call("goto", id="a", url=self.vm_url + "index.html")
        self.assertEqual((r.get("url"), r.get("status")), (self.vm_url + "index.html", 200), r)
        self.assertIn(HELLO, self.call("state", id="a")["text"])

    def test_3_websocket_echo_through_the_front(self):
        self.login()
        # websocketd from Debian (needs only libc, which the tiny image has), into the VM by scp
        # through exed's SSH gateway.
        r = subprocess.run(scp_args(self.exed, self.key) + [WEBSOCKETD, f"root+{VM}@localhost:/root/"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = ssh(self.exed, self.key, "share", "port", VM, "8080")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = ssh(self.exed, self.key, "restart", VM, timeout=300)  # the port forward is made at start
        self.assertEqual(r.returncode, 0, r.stderr)
        # An echo server on 8080 (`cat` per connection) that also serves /var/www.
        start = ("setsid /root/websocketd --port=8080 --staticdir=/var/www cat </dev/null >/root/ws.log 2>&1 & "
                 "for i in $(seq 100); do netstat -ltn | grep -q ':8080 ' && exit 0; sleep 0.1; done; "
                 "cat /root/ws.log; exit 1")
        r = ssh(self.exed, self.key, start, dest=f"root+{VM}@localhost", timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # The page, now from websocketd's static files, and the socket from it.
        r = self.call("goto", id="a", url=self.vm_url)
        self.assertEqual((r.get("url"), r.get("status")), (self.vm_url, 200), r)
        self.assertIn(HELLO, self.call("state", id="a")["text"])
        wss = f"wss://{VM}.exe.localhost:{self.port}/"
        messages = ["ping", "second message", "x" * 5000]
        r = self.call("eval", id="a", js=ws_echo_js(wss, messages))
        self.assertEqual(r.get("value"), {"got": messages}, r)
        # Not logged in (a fresh context, on the apex's login page): the private VM's socket
        # does not open.
        self.call("page", id="anon")
        r = self.call("goto", id="anon", url=self.vm_url)
        self.assertTrue(r.get("url", "").startswith(self.apex + "/__exed/login"), r)
        r = self.call("eval", id="anon", js=ws_echo_js(wss, ["ping"]))
        self.assertIn("error", r.get("value", {}), r)
        self.assertEqual(r["value"]["got"], [], r)


if __name__ == "__main__":
    unittest.main(verbosity=2)
