"""Mutual TLS between gates (TILTAI_TLS_*): delivery with valid certificates, refusal without."""

import os
import shutil
import socket
import subprocess
import tempfile
import unittest

from tiltai import TLSFiles, Undelivered, wire
from tests.helpers import GoPeer, hub_in, hub_out, two_part, wait_for


def make_pki(d: str) -> tuple[TLSFiles, TLSFiles]:
    """A CA and a certificate it signed, and one it did not."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "1", "-subj", "/CN=tiltai-test-ca")
    for name in ("gate", "rogue"):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={name}")
    run("x509", "-req", "-in", "gate.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "gate.pem", "-days", "1")
    run("x509", "-req", "-in", "rogue.csr", "-signkey", "rogue.key", "-out", "rogue.pem", "-days", "1")
    j = lambda n: os.path.join(d, n)  # noqa: E731
    return TLSFiles(j("gate.pem"), j("gate.key"), j("ca.pem")), TLSFiles(j("rogue.pem"), j("rogue.key"), j("ca.pem"))


@unittest.skipIf(shutil.which("openssl") is None, "no openssl to make test certificates")
class TLSTest(unittest.TestCase):
    def test_mutual_tls(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        good, rogue = make_pki(d)
        hr, r = hub_in("pull", tls=good)
        with hr:
            hs, s = hub_out("push", r.bound, tls=good)
            with hs:
                for i in range(500):
                    s.send(b"%d" % i)
                self.assertEqual([r.recv(timeout=10) for _ in range(500)], [(b"%d" % i,) for i in range(500)])
            # A peer whose certificate the CA did not sign delivers nothing.
            hx, x = hub_out("push", r.bound, tls=rogue)
            x.send(b"evil")
            wait_for(lambda: r.stats()["refused"] >= 1, 10, "the rogue peer refused")
            with self.assertRaises(TimeoutError):
                r.recv(timeout=0.3)
            x.opt.drain_timeout = 0.1
            try:
                hx.close()
            except Exception:
                pass
            # Plain ZMTP to a TLS gate is refused too.
            host, port = r.bound[6:].rsplit(":", 1)
            c = socket.create_connection((host, int(port)))
            c.sendall(wire.greeting())
            c.settimeout(5)
            try:
                while c.recv(4096):
                    pass
            except ConnectionResetError:
                pass
            c.close()
            wait_for(lambda: r.stats()["refused"] >= 2, 10, "plain ZMTP refused")


def tls_flags(f: TLSFiles) -> list[str]:
    return ["-tls-cert", f.cert, "-tls-key", f.key, "-tls-ca", f.ca]


@unittest.skipIf(shutil.which("openssl") is None, "no openssl to make test certificates")
class GoTLSTest(unittest.TestCase):
    """Mutual TLS with Go gates (gopeer), each side client and server."""

    @classmethod
    def setUpClass(cls):
        d = tempfile.mkdtemp()
        cls.addClassCleanup(shutil.rmtree, d)
        cls.good, cls.rogue = make_pki(d)

    def test_python_push_to_go_pull(self):
        go = GoPeer("-role", "pull", "-n", "500", *tls_flags(self.good))
        try:
            h, g = hub_out("push", go.bound(), tls=self.good)
            with h:
                for i in range(500):
                    g.send(*two_part(i), timeout=30)
            self.assertEqual((g.stats()["sent"], g.stats()["rerouted"]), (500, 0))
            self.assertEqual(go.finish(), "ok received=500 refused=0")
        finally:
            go.kill()

    def test_go_push_to_python_pull(self):
        h, g = hub_in("pull", tls=self.good)
        with h:
            go = GoPeer("-role", "push", "-peer", g.bound, "-n", "500", *tls_flags(self.good))
            got = sorted((g.recv(timeout=30) for _ in range(500)), key=lambda m: int(m[0][1:]))
            self.assertEqual(got, [two_part(i) for i in range(500)])
            self.assertEqual(go.finish(), "ok sent=500 rerouted=0 dropped=0")
            self.assertEqual(g.stats()["refused"], 0)

    def test_go_refuses_a_wrong_ca(self):
        go = GoPeer("-role", "pull", "-n", "0", *tls_flags(self.good))
        try:
            bound = go.bound()
            with self.assertLogs("tiltai.gate", "INFO") as logs:
                h, g = hub_out("push", bound, tls=self.rogue)
                g.send(b"evil")
                wait_for(lambda: any("cannot connect" in r.getMessage() for r in logs.records), 10, "the TLS handshake refused")
                g.opt.drain_timeout = 0
                with self.assertRaises(Undelivered):
                    h.close()
            # gopeer fails on any message it receives; it counted the refusal.
            last = go.finish()
            self.assertTrue(last.startswith("ok received=0 refused=") and not last.endswith("=0"), last)
        finally:
            go.kill()

    def test_python_refuses_a_wrong_ca(self):
        h, g = hub_in("pull", tls=self.good)
        with h:
            go = GoPeer("-role", "push", "-peer", g.bound, "-n", "1", *tls_flags(self.rogue))
            try:
                wait_for(lambda: g.stats()["refused"] >= 1, 10, "the rogue Go peer refused")
                with self.assertRaises(TimeoutError):
                    g.recv(timeout=0.3)
            finally:
                go.kill()


if __name__ == "__main__":
    unittest.main()
