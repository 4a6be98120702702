#!/bin/sh
# Mesa's software Vulkan driver (lavapipe), so that the WGPU kernel tests run on a machine with
# no GPU: `sh scripts/dev/lavapipe.sh && cargo test -p blt-kernels --features wgpu`.
# Not part of CI (CI only `cargo check`s the GPU features); idempotent, non-interactive.
set -eu
if ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y --no-install-recommends mesa-vulkan-drivers libvulkan1
ls /usr/share/vulkan/icd.d/lvp_icd*.json
