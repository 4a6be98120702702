#!/bin/sh
# pyarrow, for the tests that read blt's Arrow output back with the reader Meta's BLT trainer
# uses (crates/blt-datasets/tests/tables.rs). Installed from PyPI into a venv under
# ~/.cache/blt/pyarrow-venv, which the tests look for; nothing is installed when python3 already
# has pyarrow or the venv exists. Without it the tests log that they skip the pyarrow check.
set -eu

if python3 -c 'import pyarrow' 2>/dev/null; then
    exit 0
fi
VENV="${HOME}/.cache/blt/pyarrow-venv"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import pyarrow' 2>/dev/null; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y --no-install-recommends python3-venv
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'pyarrow>=14' || {
    echo "20-pyarrow.sh: cannot install pyarrow from PyPI into $VENV" >&2
    exit 1
}
"$VENV/bin/python" -c 'import pyarrow; print("pyarrow", pyarrow.__version__, "in", "'"$VENV"'")'
