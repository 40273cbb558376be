#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: installs what is missing (setup.sh), builds, runs.
#
# Until the `ctmllm demo` program (a 3D MLLM trained on synthetic CT phantoms) exists, the main job
# is the most complete end-to-end example: examples/train_tiny_vit_block.cpp, a tiny 3D-ViT block
# trained with SGD on synthetic volumes (loss going down, final accuracy). Extra arguments are
# passed to it (e.g. `bash scripts/demo.sh --steps 100`; `--help` lists them).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
jobs=${CTMLLM_JOBS:-2}
build_dir=$root/build-demo
main_job=train_tiny_vit_block
# Idle OpenMP threads sleep instead of spinning: on a 2-core machine with anything else running,
# spinning made each training step 20x slower here (the small model gains nothing from spinning).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

bash scripts/setup.sh
echo "demo: configure + build $main_job (Release) in $build_dir"
if ! log=$(cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCTMLLM_BUILD_TESTS=OFF \
      -DCTMLLM_BUILD_BENCHMARKS=OFF -DCTMLLM_BUILD_EXAMPLES=ON -DCTMLLM_BUILD_TOOLS=OFF 2>&1); then
  echo "$log"
  exit 1
fi
cmake --build "$build_dir" -j"$jobs" --target "$main_job"
echo "demo: running $main_job $*"
"$build_dir/examples/$main_job" "$@"
