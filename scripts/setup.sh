#!/usr/bin/env bash
# Install lbench into a project virtual environment, .venv/, on a fresh Debian machine with Python >= 3.11
# (run as root, or with sudo for apt-get). Works where the system Python refuses `pip install`
# (PEP 668, "externally-managed-environment"): nothing is installed into the system Python.
#
#   bash scripts/setup.sh          # CPU machine: faiss-cpu
#   bash scripts/setup.sh --gpu    # GPU machine: faiss-gpu instead (never both)
#
# Then use .venv/bin/lbench (or `source .venv/bin/activate` and plain `lbench` / `python -m lbench`).
# Size: about 6 GB in .venv, 4.4 GB of it the CUDA build of torch 2.14.1 and its NVIDIA libraries
# (PyPI's torch for Linux x86_64 is a CUDA build; it also runs on CPU-only machines).
# Order matters: torch + torchvision first (open_clip and timm need a torchvision that matches torch).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRA=cpu
for arg in "$@"; do
  case "$arg" in
    --gpu) EXTRA=gpu ;;
    --cpu) EXTRA=cpu ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: error: unknown option $arg (use --cpu or --gpu)" >&2; exit 2 ;;
  esac
done
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup.sh: error: lbench needs Python >= 3.11 as $PY (set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
APT_UPDATED=""
apt_install() {
  [ -n "$APT_UPDATED" ] || { $SUDO apt-get update -qq; APT_UPDATED=1; }
  $SUDO apt-get install -y -qq "$@" >/dev/null
}
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  echo "setup.sh: installing the Debian package dataset-fashion-mnist (the offline default data)"
  apt_install dataset-fashion-mnist
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv >/dev/null 2>&1; then  # Debian ships venv's ensurepip separately
    rm -rf .venv
    echo "setup.sh: installing the Debian package python3-venv"
    apt_install python3-venv
    "$PY" -m venv .venv
  fi
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
echo "setup.sh: installing torch==2.14.1 torchvision==0.29.1 into .venv (about 5.5 GB with the CUDA libraries)"
"${PIP[@]}" install -q "torch==2.14.1" "torchvision==0.29.1"
OTHER=faiss-gpu; [ "$EXTRA" = cpu ] || OTHER=faiss-cpu
if "${PIP[@]}" show -q "$OTHER" >/dev/null 2>&1; then "${PIP[@]}" uninstall -q -y "$OTHER"; fi  # both ship `faiss`
echo "setup.sh: installing lbench[$EXTRA,test] into .venv"
"${PIP[@]}" install -q -e ".[$EXTRA,test]"
echo "setup.sh: done ($(du -sh .venv | cut -f1) in .venv); run .venv/bin/lbench --help"
