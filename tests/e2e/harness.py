"""End-to-end harness: a real PostgreSQL cluster (ops/pgcluster), a real
`exed serve` on a free port, and the real OpenSSH client.

Nothing here is faked: each Exed is the built binary, each ssh is
/usr/bin/ssh. Tests wait on conditions (a port answering, output appearing),
never on fixed sleeps alone.
"""
import atexit
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("EXED_BUILD_DIR", os.path.join(ROOT, "build"))
EXED = os.path.join(BUILD, "exed", "exed")


def free_port():
    """A loopback TCP port nothing listens on now, for a server a test starts
    later. Taken below the kernel's ephemeral range (ip_local_port_range), so
    no outgoing connection can hold it in between (a port from bind(0) can be
    any connection's local port a moment later: an ACME test lost its http
    port that way)."""
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free loopback port below the ephemeral range")


def cpu_seconds(pids):
    """User + system CPU time of these processes (all their threads), in seconds."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def wait_for(cond, timeout=20.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Postgres:
    """A throwaway cluster in a temp dir, made by the same script as ops/up."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="exed-e2e-pg-")
        env = dict(os.environ, EXED_PG_FAST="1")
        self.url = subprocess.run([os.path.join(ROOT, "ops", "pgcluster"), "start", self.dir], env=env,
                                  check=True, capture_output=True, text=True).stdout.strip()

    def fresh_database(self, name):
        subprocess.run(["psql", self.url, "-qAtc", f"DROP DATABASE IF EXISTS {name}"], check=True,
                       capture_output=True)
        subprocess.run(["psql", self.url, "-qAtc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
        return re.sub(r"^postgresql:///[^?]*", f"postgresql:///{name}", self.url)

    def close(self):
        subprocess.run([os.path.join(ROOT, "ops", "pgcluster"), "stop", self.dir], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class Exed:
    """`exed serve` on a free loopback port with its own state dir and database."""

    def __init__(self, pg, db_name, settings=None, wrapper=(), start_timeout=30):
        self.db_url = pg.fresh_database(db_name)
        self.state = tempfile.mkdtemp(prefix="exed-e2e-state-")
        os.chmod(self.state, 0o755)  # the VM user must reach VM files here (else they move; see vmm/runtime_dir.h)
        self.settings = dict(settings or {})
        self.wrapper = list(wrapper)  # argv before exed's, e.g. valgrind's (ops/bench/https --instructions)
        self.start_timeout = start_timeout
        self.proc = None
        self.port = None
        self.start()

    def env(self):
        env = dict(os.environ, DATABASE_URL=self.db_url, EXED_STATE_DIR=self.state, EXED_SSH_PORT="0",
                   EXED_HTTPS_PORT="0", EXED_HTTP_PORT="0")
        for k, v in self.settings.items():
            env["EXED_" + k.upper()] = str(v)
        return env

    def start(self):
        self.log = open(os.path.join(self.state, "exed.log"), "ab")
        self.proc = subprocess.Popen([*self.wrapper, EXED, "serve"], env=self.env(), stdout=subprocess.PIPE,
                                     stderr=self.log)
        line_port = None
        self.https_port = None
        # Unbuffered reads with a deadline: a hung start fails here (in 30 s
        # unless start_timeout says otherwise) rather than blocking in readline.
        fd = self.proc.stdout.fileno()
        out = ""
        deadline = time.time() + self.start_timeout
        while line_port is None or self.https_port is None:
            left = deadline - time.time()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.proc.kill()
                raise AssertionError(f"exed did not say where it listens within {self.start_timeout} s; log: "
                                     + self.read_log()[-2000:])
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError("exed exited before listening; log: " + self.read_log()[-2000:])
            out += chunk.decode(errors="replace")
            m = re.search(r"ssh -p (\d+) ", out)
            if m:
                line_port = int(m.group(1))
            m = re.search(r"https://[^/ ]+:(\d+)/", out)
            if m:
                self.https_port = int(m.group(1))
        self.port = line_port
        m = re.search(r"http=[^ ]+:(\d+) ", self.read_log())
        self.http_port = int(m.group(1)) if m else None
        # Keep draining stdout so exed never blocks on a full pipe.
        self._drain = subprocess.Popen(["cat"], stdin=self.proc.stdout, stdout=subprocess.DEVNULL)

    def read_log(self):
        with open(os.path.join(self.state, "exed.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM):
        """Signals exed and waits; returns its exit status."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=max(10, self.start_timeout))  # longer under valgrind
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_drain", None):
            self._drain.wait()
            self._drain = None
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        if getattr(self, "log", None):
            self.log.close()
        return self.proc.returncode if self.proc else None

    def admin(self, *args):
        return subprocess.run([EXED, "admin", *args], env=self.env(), capture_output=True, text=True, timeout=60)

    def close(self):
        # The cgroups exed made (exed/ACCOUNT/vm-ID), read before the
        # database goes with the test: they are machine-wide and would stay.
        try:
            groups = psql(self, "SELECT a.name || '/vm-' || v.id FROM vms v JOIN accounts a ON a.id = v.account_id "
                                "UNION ALL SELECT name FROM accounts").split()
        except subprocess.CalledProcessError:
            groups = []
        self.stop()
        # VMs outlive exed by design; a test that failed half-way may leave
        # some. Their QEMU and passt name files under this state directory,
        # or under the runtime directory exed moved them to when the VM user
        # could not reach the state directory (STATE/runtime links there).
        link = os.path.join(self.state, "runtime")
        moved = os.path.realpath(link) if os.path.islink(link) else None
        for d in filter(None, (self.state, moved)):
            subprocess.run(["pkill", "-KILL", "-f", "--", d + "/"], capture_output=True)
        remove_cgroups(groups)
        shutil.rmtree(self.state, ignore_errors=True)
        if moved:
            shutil.rmtree(moved, ignore_errors=True)


def psql(exed, sql):
    return subprocess.run(["psql", exed.db_url, "-qAtc", sql], capture_output=True, text=True,
                          check=True).stdout.strip()


def vm_row(exed, name):
    out = psql(exed, f"SELECT row_to_json(v) FROM vms v WHERE name = '{name}'")
    return json.loads(out) if out else None


def remove_cgroups(groups, parent="exed"):
    """Removes exed/GROUP in every cgroup hierarchy (v1 controllers or the v2
    root), VMs' groups before their account's; a group still holding a
    process (killed a moment ago) is waited for briefly."""
    base = "/sys/fs/cgroup"
    roots = [base] + [os.path.join(base, c) for c in sorted(os.listdir(base))
                      if os.path.isdir(os.path.join(base, c)) and not os.path.islink(os.path.join(base, c))]
    for group in sorted(groups, key=lambda g: -g.count("/")):
        for root in roots:
            d = os.path.join(root, parent, group)
            deadline = time.time() + 5
            while os.path.isdir(d):
                try:
                    os.rmdir(d)
                except OSError:
                    if time.time() > deadline:
                        break
                    time.sleep(0.1)


def images_dir():
    """Guest images built once for the test run (the `vm_images` CTest fixture)."""
    return os.environ.get("EXED_IMAGES_DIR", os.path.join(BUILD, "test-images"))


class Key:
    """An ed25519 (or other) key pair made by ssh-keygen in a temp dir."""

    def __init__(self, comment="e2e", kind="ed25519", bits=None):
        self.dir = tempfile.mkdtemp(prefix="exed-e2e-key-")
        self.path = os.path.join(self.dir, "id")
        cmd = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", comment, "-f", self.path]
        if bits:
            cmd += ["-b", str(bits)]
        subprocess.run(cmd, check=True)
        with open(self.path + ".pub") as f:
            self.public = f.read().strip()
        self.fingerprint = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", self.path + ".pub"],
                                          check=True, capture_output=True, text=True).stdout.split()[1]
        atexit.register(shutil.rmtree, self.dir, True)


def ssh_args(exed, key=None, extra=(), known_hosts="/dev/null", strict="no", log_level="ERROR", dest="localhost"):
    """ssh's argv. log_level INFO shows what a user sees by default, such as disconnect reasons.
    dest is the destination, e.g. "VM@localhost" for the gateway."""
    args = ["ssh", "-p", str(exed.port), "-o", "BatchMode=yes", "-o", f"StrictHostKeyChecking={strict}",
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", f"LogLevel={log_level}", "-o", "ConnectTimeout=10"]
    if key:
        args += ["-i", key.path, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"]
    return args + list(extra) + [dest]


def ssh(exed, key, *command, input=None, timeout=30, extra=(), dest="localhost"):
    """Runs a one-shot command; returns CompletedProcess (stdout, stderr, returncode)."""
    return subprocess.run(ssh_args(exed, key, extra, dest=dest) + list(command), input=input, capture_output=True,
                          text=True, timeout=timeout)


def _client_options(key):
    """The options ssh_args gives, for scp and sftp (which take -P, not -p)."""
    args = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"]
    if key:
        args += ["-i", key.path, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"]
    return args


def scp_args(exed, key, legacy=False):
    """scp's argv up to the file operands; legacy=True is `scp -O` (the scp/rcp protocol,
    `scp -t`/`scp -f` on the far side) instead of OpenSSH 9's default SFTP mode."""
    return ["scp", "-q", "-P", str(exed.port)] + (["-O"] if legacy else []) + _client_options(key)


def sftp_args(exed, key, dest):
    """sftp's argv in batch mode, reading its commands from stdin (`-b -`)."""
    return ["sftp", "-q", "-b", "-", "-P", str(exed.port)] + _client_options(key) + [dest]


def ssh_json(exed, key, *command):
    r = ssh(exed, key, *command, "--json")
    if r.returncode != 0:
        raise AssertionError(f"{command} failed ({r.returncode}): {r.stderr}")
    return json.loads(r.stdout)


class Tmux:
    """An interactive ssh session in a real terminal (tmux), typed into key by key.

    Each session has its own tmux server (-L), so sessions of parallel tests
    never meet a shared server that is just exiting."""

    _count = 0

    def __init__(self, argv, width=100, height=30):
        Tmux._count += 1
        self.name = "exed-e2e-%d-%d" % (os.getpid(), Tmux._count)
        self._tmux("new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height),
                   " ".join(_quote(a) for a in argv) + "; sleep 30")

    def _tmux(self, *args, check=True):
        return subprocess.run(["tmux", "-L", self.name, *args], check=check, capture_output=True, text=True)

    def send(self, *keys):
        self._tmux("send-keys", "-t", self.name, *keys)

    def type(self, text):
        self._tmux("send-keys", "-t", self.name, "-l", text)

    def screen(self):
        return self._tmux("capture-pane", "-t", self.name, "-p", check=False).stdout

    def wait_for(self, text, timeout=15):
        try:
            return wait_for(lambda: text in self.screen(), timeout, f"{text!r} on screen")
        except AssertionError as e:
            raise AssertionError(f"{e}; screen is:\n{self.screen()}") from None

    def pane_size(self):
        """(columns, rows) of the session's pane: what a program in it should see."""
        out = self._tmux("display-message", "-p", "-t", self.name, "#{pane_width} #{pane_height}").stdout.split()
        return int(out[0]), int(out[1])

    def resize(self, width, height):
        """Resizes the window (and its one pane), as a user resizing the terminal would."""
        self._tmux("resize-window", "-t", self.name, "-x", str(width), "-y", str(height))

    def term(self):
        """The TERM that programs in the pane get (tmux's default-terminal)."""
        return self._tmux("show-options", "-gv", "default-terminal").stdout.strip()

    def close(self):
        self._tmux("kill-server", check=False)


def _quote(a):
    return "'" + a.replace("'", "'\\''") + "'" if re.search(r"[^\w@%+=:,./-]", a) else a


def raw_connect(port, send=b""):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if send:
        s.sendall(send)
    return s


def closed_within(sock, seconds):
    """True if the server closes `sock` within `seconds`."""
    deadline = time.time() + seconds
    sock.setblocking(False)
    while time.time() < deadline:
        r, _, _ = select.select([sock], [], [], 0.2)
        if r:
            try:
                if sock.recv(65536) == b"":
                    return True
            except ConnectionResetError:
                return True
    return False
