#!/usr/bin/env bash
# Installs the real media files (and the tool) that `blt-pretokenize`'s image/audio/video tests
# read, none of which the project wrote:
#   - alsa-utils:              /usr/share/sounds/alsa/*.wav (16-bit PCM WAV)
#   - sound-theme-freedesktop: /usr/share/sounds/freedesktop/stereo/*.oga (OGG/Vorbis)
#   - adwaita-icon-theme:      /usr/share/icons/Adwaita/*/*/*.png (PNG icons)
#   - ffmpeg:                  the CLI the tests use to transcode those files into JPEG, GIF,
#                              WebP, BMP, TIFF, MP3, AAC, M4A, FLAC and MP4/WebM at test time,
#                              and as an independent reference decoder.
# Idempotent and non-interactive.
set -euo pipefail

packages=(alsa-utils sound-theme-freedesktop adwaita-icon-theme ffmpeg)

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
        echo "21-media-test-data.sh: need root or sudo to install: ${missing[*]}" >&2
        exit 1
    fi
    SUDO="sudo"
fi
echo "21-media-test-data.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
