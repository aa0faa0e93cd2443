"""The pipeline demo's encryptor in Python: ``python3 -m tiltai.demo encryptor``.

It does what ``tiltai demo encryptor`` does, on the same wire, so it can stand
between the Go feeder and printer: each message on "plaintext" is origin,
8-byte sequence number, payload; it sends origin, sequence number and the
payload's SHA-256 on "ciphertext", until the executor drains its in-gate;
then it closes "ciphertext", which delivers what is queued, and exits.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import signal
import sys
import threading

from . import Closed, Drained, Hub


def encryptor(hub: Hub, log: logging.Logger, stop: threading.Event) -> int:
    inp = hub.in_("plaintext")
    out = hub.out("ciphertext")
    hashed = foreign = 0
    while not stop.is_set():
        try:
            batch = inp.recv_batch(256, timeout=0.5)
        except TimeoutError:
            continue
        except (Drained, Closed):
            break
        msgs = []
        for m in batch:
            if len(m) != 3 or len(m[1]) != 8:
                foreign += 1
                hub.set_counter("encryptor.foreign", foreign)
                continue
            msgs.append((m[0], m[1], hashlib.sha256(m[2]).digest()))
        out.send_batch(msgs)
        hashed += len(msgs)
        hub.set_counter("encryptor.hashed", hashed)
    log.info("encryptor stopping; delivering what is queued hashed=%d", hashed)
    out.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m tiltai.demo")
    ap.add_argument("role", choices=["encryptor"])
    ap.add_argument("--log-level", default="info", choices=["debug", "info", "warn", "error"])
    args = ap.parse_args(argv)
    level = {"warn": "WARNING"}.get(args.log_level, args.log_level.upper())
    logging.basicConfig(level=level, stream=sys.stderr, format="time=%(asctime)s level=%(levelname)s msg=%(message)s")
    log = logging.getLogger("tiltai.demo")

    stop = threading.Event()
    # SIGTERM (the executor's kill after a grace period): stop taking, deliver what is queued.
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    with Hub.from_env() as hub:
        return encryptor(hub, log, stop)


if __name__ == "__main__":
    sys.exit(main())
