#!/usr/bin/env bash
# Installs what `blt-pretokenize`'s `video` feature needs to build: the FFmpeg development
# packages (libavcodec/libavformat/libavutil/libswscale -dev), pkg-config to find
# them, and clang/libclang for ffmpeg-sys-next's bindgen. Idempotent and non-interactive.
set -euo pipefail

packages=(libavcodec-dev libavformat-dev libavutil-dev libswscale-dev
          pkg-config clang libclang-dev)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "20-ffmpeg-dev.sh: need root or sudo to install: ${missing[*]}" >&2
        exit 1
    fi
    SUDO="sudo"
fi
echo "20-ffmpeg-dev.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
