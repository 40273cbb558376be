#!/usr/bin/env bash
# Builds the GPU test and benchmark binaries on this machine (the CUDA toolkit is enough, no GPU) for
# sm_90 and gathers them, with the Google Benchmark library they link, in build-gpu/prebuilt
# (git-ignored, about 25 MiB), so that a GPU session spends its minutes running rather than
# compiling. On the GPU machine run_h200.sh then takes them instead of building:
#   bash benchmarks/gpu/prebuild.sh
#   (device) CTMLLM_GPU_PREBUILT=build-gpu/prebuilt bash benchmarks/gpu/run_h200.sh
#            with build-gpu/prebuilt carried along with the working tree
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$root/build-gpu
prebuilt=$build/prebuilt

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DCTMLLM_BUILD_TESTS=ON -DCTMLLM_BUILD_BENCHMARKS=ON -DCTMLLM_BUILD_EXAMPLES=OFF -DCTMLLM_BUILD_TOOLS=OFF \
  -DCTMLLM_NATIVE=OFF >/dev/null
targets=(ctmllm_test_cuda ctmllm_bench_gpu ctmllm_bench_gpu_models)
# The NCCL test when NCCL was found (run_h200.sh finds the GPU machine's libnccl in PyTorch's wheels).
ninja -C "$build" -t targets all | grep -q '^ctmllm_test_nccl:' && targets+=(ctmllm_test_nccl)
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"

rm -rf "$prebuilt"
mkdir -p "$prebuilt"
cp "$build/tests/ctmllm_test_cuda" "$build/benchmarks/ctmllm_bench_gpu" "$build/benchmarks/ctmllm_bench_gpu_models" \
  "$prebuilt/"
if [[ -x $build/tests/ctmllm_test_nccl ]]; then cp "$build/tests/ctmllm_test_nccl" "$prebuilt/"; fi
# Google Benchmark's shared library goes along: the GPU machine's distribution names it differently.
ldd "$build/benchmarks/ctmllm_bench_gpu_models" | awk '/libbenchmark/ {print $3}' | while read -r lib; do
  cp -L "$lib" "$prebuilt/"
done
du -sh "$prebuilt"
ls -l "$prebuilt"
