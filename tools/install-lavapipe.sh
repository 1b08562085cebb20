#!/usr/bin/env bash
# Installs Mesa's software Vulkan driver (lavapipe) and the Vulkan loader, so that the `wgpu`
# backend runs on a machine without a GPU (CI, laptops). Debian/Ubuntu (apt) only.
#
#   tools/install-lavapipe.sh          # installs what is missing, then lists the Vulkan devices
#
# Idempotent: packages already installed are not touched and apt is not called at all when
# nothing is missing. Runs apt-get directly as root, through sudo otherwise.
set -euo pipefail

# libvulkan1: the Vulkan loader wgpu opens (libvulkan.so.1); mesa-vulkan-drivers: lavapipe
# (lvp_icd.*.json + libvulkan_lvp.so); vulkan-tools: vulkaninfo, to show what the loader finds.
packages=(libvulkan1 mesa-vulkan-drivers vulkan-tools)

installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = "installed" ]
}

missing=()
for package in "${packages[@]}"; do
    installed "$package" || missing+=("$package")
done

if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        echo "install-lavapipe: no apt-get; install ${missing[*]} (or your system's Mesa Vulkan drivers) by hand" >&2
        exit 1
    fi
    if [ "$(id -u)" -eq 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null; then
        as_root=(sudo)
    else
        echo "install-lavapipe: not root and no sudo; cannot install ${missing[*]}" >&2
        exit 1
    fi
    echo "install-lavapipe: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # A fresh container has no package lists; an old list may name files no longer served.
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "install-lavapipe: ${packages[*]} already installed"
fi

if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
    echo "install-lavapipe: lavapipe's ICD file (/usr/share/vulkan/icd.d/lvp_icd*.json) is missing" >&2
    exit 1
fi
# What wgpu will see: on a machine without a GPU, one device, "llvmpipe (LLVM …)", of type CPU.
vulkaninfo --summary 2>/dev/null | sed -n '/^Devices:/,$p' || true
