#!/usr/bin/env bash
# Installs what building and testing ctmllm needs on Debian 12, from Debian's packages.
# Idempotent: when every package is already installed it touches nothing (no apt-get at all).
# Needs root (or sudo) only when something is missing. The CUDA toolkit is optional and not
# installed here: when it (and cuDNN) sit under /usr/local/cuda, the build finds them. Where it is
# present, the header-only cudnn-frontend (cuDNN's fused attention, optional too) comes from pip's
# nvidia-cudnn-frontend wheel into third_party/cudnn_frontend/include, once.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The wheel's include/ only, extracted into the git-ignored third_party/cudnn_frontend: CMake looks
# there, and the folder can travel to a GPU machine without network (benchmarks/gpu/run_h200.sh). pip
# downloads rather than installs, since Debian's Python refuses installs outside a virtual
# environment. Without pip or network the build goes on and attention runs the own CUDA kernels.
fetch_cudnn_frontend() {
  local dest=$root/third_party/cudnn_frontend
  if [[ -f $dest/include/cudnn_frontend.h ]]; then
    echo "setup: cudnn-frontend headers present in third_party/cudnn_frontend"
    return
  fi
  if ! python3 -m pip --version >/dev/null 2>&1; then
    echo "setup: no pip: cudnn-frontend not fetched (attention runs the own CUDA kernels)"
    return
  fi
  local tmp
  tmp=$(mktemp -d)
  if python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" nvidia-cudnn-frontend &&
    python3 - "$tmp" "$dest" <<'PY'
import glob, sys, zipfile
with zipfile.ZipFile(glob.glob(sys.argv[1] + "/nvidia_cudnn_frontend-*.whl")[0]) as wheel:
    wheel.extractall(sys.argv[2], [n for n in wheel.namelist() if n.startswith("include/")])
PY
  then
    echo "setup: cudnn-frontend headers fetched into third_party/cudnn_frontend/include"
  else
    echo "setup: could not fetch nvidia-cudnn-frontend (no network?): attention runs the own CUDA kernels"
  fi
  rm -rf "$tmp"
}
if [[ -x /usr/local/cuda/bin/nvcc ]] || command -v nvcc >/dev/null 2>&1; then
  fetch_cudnn_frontend
fi

packages=(
  build-essential cmake ninja-build         # toolchain
  libeigen3-dev nlohmann-json3-dev zlib1g-dev libomp-dev   # the library's dependencies
  catch2 libbenchmark-dev libcli11-dev      # tests, benchmarks, command-line programs
  openmpi-bin libopenmpi-dev                # data-parallel training on the CPU
  clang-14 libclang-rt-14-dev               # libFuzzer runs of the file parsers (scripts/fuzz.sh)
)

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup: dpkg-query not found: this script targets Debian 12; install the equivalents of: ${packages[*]}" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} Debian packages are installed; nothing to do"
  exit 0
fi

echo "setup: missing Debian packages: ${missing[*]}"
as_root=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "setup: not root and no sudo: run as root, or install them yourself: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
echo "setup: apt-get update"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
echo "setup: apt-get install ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "setup: done"
