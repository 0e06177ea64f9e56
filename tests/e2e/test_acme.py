"""ACME (RFC 8555) against pebble, the ACME test server Debian packages: a new
VM name gets a certificate that chains to pebble's root, through a real http-01
challenge answered by exed's plain-HTTP listener.

Pebble needs a TLS certificate of its own (the package ships none): the test
makes a throwaway CA and a `localhost` certificate with the openssl CLI, and
gives that CA to exed as acme_ca_bundle. Pebble's validation authority looks
names up through pebble-challtestsrv (same package), a DNS server that answers
127.0.0.1 for every name, and connects to exed's plain-HTTP port (pebble's
`httpPort`). No VM is needed: the HTTPS front serves its 404 page for names
without one, over TLS, and the certificate is what is checked.
"""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import Exed, Postgres, free_port, wait_for  # noqa: E402

PG = None
PEBBLE = None
DOMAIN = "exe.localhost"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class Pebble:
    """pebble and pebble-challtestsrv (as its DNS) on free loopback ports."""

    def __init__(self, http_port):
        for tool in ("pebble", "pebble-challtestsrv"):
            if not shutil.which(tool):
                raise unittest.SkipTest(f"{tool} is not installed (ops/setup installs Debian's package pebble)")
        self.dir = tempfile.mkdtemp(prefix="exed-e2e-pebble-")
        d = self.dir
        # A CA and a certificate for pebble's own HTTPS (directory and management).
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=exed e2e pebble TLS CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign", cwd=d)
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "key.pem",
                "-out", "csr.pem", "-subj", "/CN=localhost", cwd=d)
        with open(os.path.join(d, "ext.cnf"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n")
        openssl("x509", "-req", "-in", "csr.pem", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "cert.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
        self.tls_ca = os.path.join(d, "ca.pem")
        self.port, self.mgmt_port, self.dns_port = free_port(), free_port(), free_port()
        with open(os.path.join(d, "pebble.json"), "w") as f:
            json.dump({"pebble": {
                "listenAddress": f"127.0.0.1:{self.port}",
                "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
                "certificate": os.path.join(d, "cert.pem"),
                "privateKey": os.path.join(d, "key.pem"),
                "httpPort": http_port,  # where the VA fetches http-01 answers: exed's plain-HTTP port
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }}, f)
        self.procs = []
        self.logs = []
        # DNS only: every A query answers 127.0.0.1, AAAA none.
        self._spawn("challtestsrv", ["pebble-challtestsrv", "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "",
                                     "-https01", "", "-tlsalpn01", "", "-management",
                                     f"127.0.0.1:{free_port()}", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
        # One good nonce in five refused (pebble's default is 5 %): exed must retry badNonce.
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_VA_ALWAYS_VALID="0", PEBBLE_WFE_NONCEREJECT="20")
        self._spawn("pebble", ["pebble", "-config", os.path.join(d, "pebble.json"), "-dnsserver",
                               f"127.0.0.1:{self.dns_port}"], env)
        self.directory = f"https://localhost:{self.port}/dir"
        ctx = ssl.create_default_context(cafile=self.tls_ca)

        def directory_up():
            try:
                with urllib.request.urlopen(self.directory, context=ctx, timeout=2) as r:
                    return "newOrder" in json.load(r)
            except OSError:
                for name, p in self.procs:
                    if p.poll() is not None:
                        raise AssertionError(f"{name} exited: {self.log()[-2000:]}")
                return False

        wait_for(directory_up, 20, "pebble's directory")
        with urllib.request.urlopen(f"https://localhost:{self.mgmt_port}/roots/0", context=ctx, timeout=5) as r:
            self.root_pem = r.read().decode()
        self.root_file = os.path.join(d, "pebble-root.pem")
        with open(self.root_file, "w") as f:
            f.write(self.root_pem)

    def _spawn(self, name, argv, env=None):
        log = open(os.path.join(self.dir, name + ".log"), "wb")
        self.logs.append(log)
        self.procs.append((name, subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                  cwd=self.dir)))

    def log(self):
        out = ""
        for name, _ in self.procs:
            with open(os.path.join(self.dir, name + ".log"), errors="replace") as f:
                out += f"--- {name}\n" + f.read()
        return out

    def close(self):
        for _, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for log in self.logs:
            log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def served_chain(port, name, cafile=None):
    """(verified, leaf DER, error) of a TLS handshake for SNI `name` on 127.0.0.1:port."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
        ctx.check_hostname = True
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=name) as s:
                return True, s.getpeercert(binary_form=True), ""
    except ssl.SSLCertVerificationError as e:
        return False, None, str(e)


def https_get(port, name, cafile, path="/"):
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}:{port}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    return data.decode(errors="replace")


def plain_get(port, host, path):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.decode(errors="replace")


def wait_for_acme_certificate(exed, name, cafile, timeout=60):
    def chained():
        ok, der, _ = served_chain(exed.https_port, name, cafile)
        return der if ok else None
    try:
        return wait_for(chained, timeout, f"a certificate for {name} that chains to pebble's root")
    except AssertionError:
        raise AssertionError(f"no ACME certificate for {name}; exed log:\n{exed.read_log()[-3000:]}\n"
                             f"pebble log:\n{PEBBLE.log()[-3000:]}") from None


def setUpModule():
    global PG
    PG = Postgres()


def tearDownModule():
    if PEBBLE:
        PEBBLE.close()
    PG.close()


class Acme(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        global PEBBLE
        http_port = free_port()
        PEBBLE = Pebble(http_port)
        cls.exed = Exed(PG, "acme", {"tls": "acme", "acme_directory": PEBBLE.directory,
                                     "acme_ca_bundle": PEBBLE.tls_ca, "acme_email": "ops@example.com",
                                     "acme_names": "any", "http_port": http_port})
        assert cls.exed.http_port == http_port, cls.exed.read_log()

    @classmethod
    def tearDownClass(cls):
        cls.exed.close()

    def test_a_new_vm_name_gets_a_certificate_that_chains_to_pebbles_root(self):
        name = "fresh." + DOMAIN
        t0 = time.time()
        # The first handshake is served at once (the internal CA's leaf), and starts the order.
        ok, der, err = served_chain(self.exed.https_port, name)
        self.assertTrue(ok and der, err)
        der = wait_for_acme_certificate(self.exed, name, PEBBLE.root_file)
        issued_in = time.time() - t0
        pem = ssl.DER_cert_to_PEM_cert(der)
        text = subprocess.run(["openssl", "x509", "-noout", "-text"], input=pem, capture_output=True, text=True,
                              check=True).stdout
        self.assertIn(f"DNS:{name}", text)
        self.assertIn("Pebble Intermediate CA", text)
        # openssl's own client agrees: the served chain verifies against pebble's root, for this name.
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.exed.https_port}", "-servername",
                            name, "-verify_return_error", "-verify_hostname", name, "-CAfile", PEBBLE.root_file],
                           input="", capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stdout[-1500:] + r.stderr[-1500:])
        self.assertIn("Verify return code: 0 (ok)", r.stdout)
        # The front answers over that certificate: no VM of this name, so its 404 page.
        self.assertRegex(https_get(self.exed.https_port, name, PEBBLE.root_file), r"^HTTP/1.1 404 ")
        log = self.exed.read_log()
        self.assertIn(f"acme: certificate issued name={name}", log)
        self.assertLess(issued_in, 60)
        # Persisted: the key private, the chain beside it.
        certs = os.path.join(self.exed.state, "acme", "certs")
        self.assertEqual(os.stat(os.path.join(certs, name + ".key")).st_mode & 0o777, 0o600)
        with open(os.path.join(certs, name + ".pem")) as f:
            self.assertEqual(f.read().count("BEGIN CERTIFICATE"), 2)  # leaf and pebble's intermediate
        self.assertEqual(os.stat(os.path.join(self.exed.state, "acme", "account.key")).st_mode & 0o777, 0o600)

    def test_apex_gets_one_too_and_names_outside_the_domain_are_refused(self):
        wait_for_acme_certificate(self.exed, DOMAIN, PEBBLE.root_file)
        with self.assertRaises(ssl.SSLError) as cm:
            served_chain(self.exed.https_port, "a.b." + DOMAIN)
        self.assertIn("UNRECOGNIZED_NAME", str(cm.exception).upper())

    def test_plain_http_still_redirects_and_unknown_tokens_are_not_answered(self):
        r = plain_get(self.exed.http_port, "x." + DOMAIN, "/some/page?q=1")
        self.assertRegex(r, r"^HTTP/1.1 308 ")
        self.assertRegex(r, rf"(?im)^Location: https://x\.{re.escape(DOMAIN)}:{self.exed.https_port}/some/page\?q=1")
        r = plain_get(self.exed.http_port, "x." + DOMAIN, "/.well-known/acme-challenge/no-such-token")
        self.assertNotRegex(r, r"^HTTP/1.1 200 ")

    def test_z_certificate_is_reused_after_a_restart(self):
        name = "keep." + DOMAIN
        first = wait_for_acme_certificate(self.exed, name, PEBBLE.root_file)
        self.exed.stop()
        self.exed.start()
        ok, der, err = served_chain(self.exed.https_port, name, PEBBLE.root_file)
        self.assertTrue(ok, err)
        self.assertEqual(der, first, "the stored certificate must be served right after a restart")
        time.sleep(0.5)
        self.assertEqual(self.exed.read_log().count(f"acme: ordering a certificate name={name}"), 1)


class AcmeVmNamesOnly(unittest.TestCase):
    """The default acme_names = vms: a name with no VM costs no order."""

    def test_no_order_for_a_name_without_a_vm(self):
        if PEBBLE is None:
            self.skipTest("pebble did not start")
        exed = Exed(PG, "acme_vms", {"tls": "acme", "acme_directory": PEBBLE.directory,
                                     "acme_ca_bundle": PEBBLE.tls_ca, "log_level": "debug"})
        try:
            ok, der, err = served_chain(exed.https_port, "ghost." + DOMAIN)
            self.assertTrue(ok and der, err)  # the fallback, served at once
            wait_for(lambda: "acme: no order for ghost." + DOMAIN in exed.read_log(), 20, "the refusal in the log")
            self.assertNotIn("ordering a certificate name=ghost", exed.read_log())
            # The apex needs no VM: it is ordered at start (the challenge then fails here, since pebble's
            # httpPort is the other exed's; that is not what this test is about).
            wait_for(lambda: "acme: ordering a certificate name=" + DOMAIN in exed.read_log(), 20, "the apex order")
            self.assertIn("acme: account ready", exed.read_log())
        finally:
            exed.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
