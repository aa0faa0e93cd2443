"""Mutual TLS between gates (TILTAI_TLS_*): delivery with valid certificates, refusal without."""

import os
import shutil
import socket
import subprocess
import tempfile
import unittest

from tiltai import TLSFiles, wire
from tests.helpers import hub_in, hub_out, wait_for


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


if __name__ == "__main__":
    unittest.main()
