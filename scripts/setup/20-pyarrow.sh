#!/bin/sh
# pyarrow and polars, for the tests that read blt's Arrow output back with the reader Meta's BLT
# trainer uses and with Polars (crates/blt-datasets/tests/tables.rs). Installed from PyPI into a
# venv under ~/.cache/blt/pyarrow-venv, which the tests look for; nothing is installed when that
# venv (or python3) already has both. Without them the tests log that they skip those checks.
# (Polars is read through its Python package, the same Rust engine: the Rust crate alone takes
# over 35 minutes to compile on a 2-core CI machine.)
set -eu

if python3 -c 'import pyarrow, polars' 2>/dev/null; then
    exit 0
fi
VENV="${HOME}/.cache/blt/pyarrow-venv"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import pyarrow, polars' 2>/dev/null; then
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
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
# The read-back checks are extra evidence, not something the tests need: without PyPI they log
# that they skip, so a failed install warns instead of failing the whole test run.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'pyarrow>=14' 'polars>=1.0' || {
    echo "20-pyarrow.sh: WARNING: cannot install pyarrow and polars from PyPI into $VENV;" \
        "the tests will skip their pyarrow/polars read-back checks" >&2
    exit 0
}
"$VENV/bin/python" -c 'import pyarrow, polars; print("pyarrow", pyarrow.__version__, "polars", polars.__version__, "in", "'"$VENV"'")'
