#!/usr/bin/env bash
# Runs every Python-side test of the Python gates (python/):
#   1. the unit, gate, TLS and asyncio tests, and interop with Go gates
#      (python/gotest/gopeer, built here) and with libzmq (pyzmq);
#   2. the control-protocol conformance test against gate/control.Server
#      (go test ./python/gotest);
#   3. the offline install: pip install --no-index --no-build-isolation ./python.
# It installs nothing. Needs: go, openssl (TLS test), and a Python 3.11+ with
# pip and setuptools (Debian: python3, python3-pip, python3-setuptools);
# python3-zmq for the libzmq interop (skipped LOUDLY without it); pytest is
# used when present (python3-pytest), unittest otherwise.
# PYTHON picks the interpreter (default /usr/bin/python3, so a pyenv python3
# on PATH does not shadow Debian's and its python3-zmq).
# The end-to-end tests on localmesos are Go tests in e2e/python_test.go
# (go test -run Python ./e2e).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-/usr/bin/python3}
[ -x "$PYTHON" ] || PYTHON=$(command -v python3)
export TILTAI_PYTHON=$PYTHON
echo "python/test.sh: $($PYTHON --version) at $PYTHON"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd .. && go build -o "$tmp/gopeer" ./python/gotest/gopeer)
export TILTAI_GOPEER=$tmp/gopeer

if ! "$PYTHON" -c 'import zmq' 2>/dev/null; then
	echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
	echo "!! python/test.sh: pyzmq is not installed for $PYTHON: libzmq interop NOT tested" >&2
	echo "!! (apt-get install -y python3-zmq)" >&2
	echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
fi
if "$PYTHON" -c 'import pytest' 2>/dev/null; then
	"$PYTHON" -m pytest -q -p no:cacheprovider tests
else
	"$PYTHON" -m unittest discover -s tests -t .
fi

(cd .. && go test -count=1 ./python/gotest/)

# The package installs offline, with no third-party dependency, and runs.
PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install -q --no-index --no-build-isolation --no-deps --target "$tmp/site" . 2>&1 | grep -v "^$" || true
(cd "$tmp" && PYTHONPATH=$tmp/site "$PYTHON" -c 'import tiltai, sys; assert tiltai.__file__.startswith(sys.argv[1]), tiltai.__file__' "$tmp/site")
test -f "$tmp/site/tiltai/py.typed"
(cd "$tmp" && PYTHONPATH=$tmp/site "$PYTHON" -m tiltai --version)
rm -rf build tiltai.egg-info
echo "python/test.sh: ok"
