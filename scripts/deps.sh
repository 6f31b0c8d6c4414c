#!/usr/bin/env bash
# Checks the Debian packages the project needs; installs the missing ones when run as root,
# otherwise prints the exact apt-get line and fails. The optional ones (the demo's cat picture,
# the report's browser test) are installed as
# root too, but their absence only gets a note: the demo then leaves the cat out and the tests
# skip, each saying so. SAL_DEPS_BENCH=1 (the bench targets) adds the benchmarks' optional
# packages: tcmalloc, which PyTorch is timed with.
set -eu
pkgs=(gcc make pkg-config protobuf-c-compiler libprotobuf-c-dev libonnx-dev libonnx-testdata
      libopenblas-dev libopenblas0-openmp liblapacke-dev libdnnl-dev libpng-dev zlib1g-dev libfftw3-dev
      python3-torch python3-torchvision python3-onnx python3-numpy python3-scipy dataset-fashion-mnist
      python3-pip python3-setuptools python3-wheel python3-venv
      openmpi-bin libopenmpi-dev)
optional=(python3-skimage chromium)
[ -n "${SAL_DEPS_BENCH:-}" ] && optional+=(libtcmalloc-minimal4)
[ -n "${SAL_DEPS_EXTRA:-}" ] && pkgs+=($SAL_DEPS_EXTRA)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=() missing_opt=()
for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
for p in "${optional[@]}"; do installed "$p" || missing_opt+=("$p"); done
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing_opt[@]} -gt 0 ] && [ "$(id -u)" -ne 0 ]; then
    echo "note: optional packages missing (the demo's cat picture, the report's browser test, a zoo model test, the benchmarks' tcmalloc):" >&2
    echo "  sudo apt-get install ${missing_opt[*]}" >&2
fi
if [ ${#missing[@]} -eq 0 ] && { [ ${#missing_opt[@]} -eq 0 ] || [ "$(id -u)" -ne 0 ]; }; then exit 0; fi
if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}" >&2
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    fi
    if [ ${#missing_opt[@]} -gt 0 ]; then
        echo "installing (optional): ${missing_opt[*]}" >&2
        apt-get install -y -qq --no-install-recommends "${missing_opt[@]}" >&2 ||
            echo "note: could not install ${missing_opt[*]}; the demo's cat or the browser test will be skipped, or PyTorch timed without tcmalloc" >&2
    fi
else
    echo "missing Debian packages; run:" >&2
    echo "  sudo apt-get install ${missing[*]}" >&2
    exit 1
fi
