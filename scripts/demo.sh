#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: installs what is missing (setup.sh), builds the
# `ctmllm` program and runs `ctmllm demo`: a synthetic CT dataset, a vision encoder pretrained on its
# label maps, a small 3D MLLM trained on its reports, and the held-out scores of its reports
# (docs/DEMO.md). Extra arguments go to `ctmllm demo` (e.g. `bash scripts/demo.sh --quick`;
# `--help` lists them). The run folder is runs/demo.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
jobs=${CTMLLM_JOBS:-2}
build_dir=$root/build-demo
# Idle OpenMP threads sleep instead of spinning: on a 2-core machine with anything else running,
# spinning made each training step 20x slower here (the small models gain nothing from spinning).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

bash scripts/setup.sh
echo "demo: configure + build the ctmllm program (Release) in $build_dir"
if ! log=$(cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCTMLLM_BUILD_TESTS=OFF \
      -DCTMLLM_BUILD_BENCHMARKS=OFF -DCTMLLM_BUILD_EXAMPLES=OFF -DCTMLLM_BUILD_TOOLS=ON -DCTMLLM_CLI_CUDA=OFF 2>&1); then
  echo "$log"
  exit 1
fi
cmake --build "$build_dir" -j"$jobs" --target ctmllm_cli
echo "demo: running ctmllm demo $*"
"$build_dir/tools/ctmllm" demo "$@"
