#!/usr/bin/env bash
# Checks the Debian packages the project needs; installs the missing ones when run as root,
# otherwise prints the exact apt-get line and fails.
set -eu
pkgs=(gcc make pkg-config protobuf-c-compiler libprotobuf-c-dev libonnx-dev libonnx-testdata
      libopenblas-dev libopenblas0-openmp libpng-dev zlib1g-dev libfftw3-dev
      python3-torch python3-onnx python3-numpy dataset-fashion-mnist)
[ -n "${SAL_DEPS_EXTRA:-}" ] && pkgs+=($SAL_DEPS_EXTRA)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
    echo "missing Debian packages; run:" >&2
    echo "  sudo apt-get install ${missing[*]}" >&2
    exit 1
fi
