#!/usr/bin/env bash
# Install lbench and its data on a fresh Debian machine with Python 3.11 (run as root, or with sudo for apt).
# Order matters: torch + torchvision first (open_clip and timm need a matching torchvision).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq dataset-fashion-mnist
fi
python3 -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
python3 -m pip install -q -e ".[cpu,test]"
