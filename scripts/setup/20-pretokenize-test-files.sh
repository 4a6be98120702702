#!/usr/bin/env bash
# Real files for blt-pretokenize's tests that nobody on the project wrote: a PDF from a Debian
# documentation package (ghostscript-doc: GS9_Color_Management.pdf, AGPL-3+ documentation) and
# a ZIP container (python3-pip-whl: the pip wheel, MIT), PE executables (python3-setuptools-whl:
# the Windows launchers in the setuptools wheel, MIT) and PE/COFF and Mach-O (thin, fat, object)
# files (golang-src: the test data of Go's debug/pe and debug/macho, BSD-3-Clause). The ELF test
# binary is /bin/ls (coreutils), always present. Idempotent, non-interactive.
set -euo pipefail

pdf=/usr/share/doc/ghostscript/GS9_Color_Management.pdf
if [ -f "$pdf" ] && compgen -G '/usr/share/python-wheels/pip-*.whl' >/dev/null \
    && compgen -G '/usr/share/python-wheels/setuptools-*.whl' >/dev/null \
    && compgen -G '/usr/share/go-*/src/debug/macho/testdata' >/dev/null; then
    exit 0
fi
sudo_if_needed() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
export DEBIAN_FRONTEND=noninteractive
# Some minimal images exclude /usr/share/doc from installs; this one file must be kept.
if grep -rqs 'path-exclude=/usr/share/doc' /etc/dpkg/dpkg.cfg.d/ 2>/dev/null; then
    echo "path-include=$pdf" | sudo_if_needed tee /etc/dpkg/dpkg.cfg.d/blt-pretokenize-pdf >/dev/null
fi
sudo_if_needed apt-get update -qq
sudo_if_needed apt-get install -y -qq --no-install-recommends ghostscript-doc python3-pip-whl \
    python3-setuptools-whl golang-src
if [ ! -f "$pdf" ]; then
    echo "error: ghostscript-doc is installed but $pdf is missing" >&2
    exit 1
fi
