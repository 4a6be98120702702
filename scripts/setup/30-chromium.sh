#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium for the `blt-viz` browser test (the HTML report is
# opened headless, screenshotted and its DOM checked). Idempotent; does nothing when
# /usr/bin/chromium is already there.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "30-chromium.sh: not root and no sudo: cannot install chromium" >&2
        exit 1
    fi
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# `--fix-broken`: a machine where an earlier install was interrupted still gets chromium.
$SUDO apt-get install -y -q --no-install-recommends --fix-broken chromium

if ! command -v chromium >/dev/null 2>&1; then
    echo "30-chromium.sh: chromium is still missing after apt-get install" >&2
    exit 1
fi
