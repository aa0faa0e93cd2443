"""``python -m tiltai --version`` and ``python -m tiltai check-env``."""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .spec import ConfigError, parse_env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tiltai", description="Tiltai gates for Python services")
    ap.add_argument("--version", action="version", version=f"tiltai {__version__} (python gates, ZMTP 3.0, X-Tiltai 1)")
    sub = ap.add_subparsers(dest="cmd")
    sub.add_parser("check-env", help="parse the TILTAI_* environment and print the gates it declares")
    args = ap.parse_args(argv)
    if args.cmd == "check-env":
        try:
            env = parse_env()
        except ConfigError as e:
            print(e, file=sys.stderr)
            return 2
        print(f"control: {env.control or '(static mode)'}")
        for g in env.gates:
            print(f"gate {g.name}: {g.dir} {g.value()}")
        return 0
    ap.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
