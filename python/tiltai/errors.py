"""Errors a gate raises. Callers tell "try again" (TimeoutError) from "invalid" (PatternError, TooBigError)."""

from __future__ import annotations


class GateError(Exception):
    """Base of every gate error."""


class Closed(GateError):
    """The gate (or its hub) is closed."""


class Drained(GateError):
    """The executor drained this in-gate and the application has taken everything."""


class PatternError(GateError):
    """The operation is not valid for the gate's pattern."""


class PeerLost(GateError):
    """A request's or reply's peer went away."""


class TooBigError(GateError):
    """A message is empty or larger than Options.max_message_size."""


class Undelivered(GateError):
    """Closing an out-gate could not deliver everything within the drain timeout."""

    def __init__(self, gate: str, count: int):
        self.count = count
        super().__init__(f"gate {gate!r} closed with {count} messages undelivered (no peer took them within the drain timeout)")
