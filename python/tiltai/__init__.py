"""Tiltai gates for Python services.

A gate is a named, in-process ZMTP 3.0 interface of a service; its peers are
set from outside (the link spec, through the Tiltai executor) and change while
the service runs::

    from tiltai import Hub

    with Hub.from_env() as hub:          # TILTAI_* environment
        inp = hub.in_("plaintext")       # binds now
        out = hub.out("ciphertext")      # peers come from link snapshots
        for m in inp:                    # until drained
            out.send(m[0], m[1], digest(m[2]))

Same wire and guarantees as the Go gates (package ``gate``): batches and
cumulative acknowledgements between gates (``X-Tiltai``), plain ZMTP toward
libzmq and zmq4, bounded queues, ``applied`` only after removed peers drained.
Standard library only.
"""

import sys as _sys

if _sys.version_info < (3, 11):  # checked first, so an older Python says why rather than failing later
    raise ImportError("tiltai (the Python gates) needs Python 3.11 or later, not %s at %s"
                      % (_sys.version.split()[0], _sys.executable))

from .errors import Closed, Drained, GateError, PatternError, PeerLost, TooBigError, Undelivered
from .gate import Gate, GateQueue, Options, Request
from .hub import Hub
from .spec import ConfigError, Endpoint, Env, GateSpec, Snapshot, TLSFiles, parse_env, parse_gate
from .wire import Message, ProtocolError

__version__ = "0.1.0"

__all__ = [
    "Closed", "ConfigError", "Drained", "Endpoint", "Env", "Gate", "GateError", "GateQueue", "GateSpec",
    "Hub", "Message", "Options", "PatternError", "PeerLost", "ProtocolError", "Request", "Snapshot",
    "TLSFiles", "TooBigError", "Undelivered", "parse_env", "parse_gate", "__version__",
]
