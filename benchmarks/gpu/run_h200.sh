#!/usr/bin/env bash
# The GPU check in one run, for an H200 machine (CUDA 13, cuDNN 9, Catch2 3, Google Benchmark,
# PyTorch; no network): configure for sm_90, build the GPU tests and the GPU benchmark only, run
# every GPU ctest (each op against the CPU, f32/bf16/f16, poisoned outputs; the models on the reference
# fixtures; training and decoding against the CPU), then time the GPU workloads (ops; the ViT-B forward;
# Llama-3.1-8B-shaped prefill and decode with random bf16 weights; the paper's training step at full size,
# frozen-LLM and LoRA) here and in PyTorch and print one table: ours, PyTorch, ratio, then the training
# steps' peak memory. About 5 to 7 minutes (limit: 8); CTMLLM_GPU_BENCH_TRAIN=0 leaves the training
# steps out (about a minute and a half of the two runs).
#   bash benchmarks/gpu/run_h200.sh [build dir, default build-h200]
# With $OUT set (the device tool), logs and JSON go there too. Exits non-zero if any test fails.
# Attention runs on cuDNN's fused SDPA only when the cudnn-frontend headers come along (the machine
# has no network): fill the git-ignored third_party/cudnn_frontend/include first, where CMake looks
# (bash scripts/setup.sh does it, as does: python3 -m pip download --no-deps nvidia-cudnn-frontend -d /tmp/cfe
# && unzip -o -q /tmp/cfe/nvidia_cudnn_frontend-*.whl 'include/*' -d third_party/cudnn_frontend), and
# carry third_party/cudnn_frontend with the working tree. Without it attention runs the own kernels.
# CTMLLM_GPU_PREBUILT=build-gpu/prebuilt (a folder under the repository, carried along) takes the
# binaries benchmarks/gpu/prebuild.sh built elsewhere instead of configuring and building here, and
# runs the test binary's cases itself (one process per case, four at a time, as ctest would).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:-$root/build-h200}
out=${OUT:-$build/out}
mkdir -p "$out"
jobs=$(nproc)
t0=$SECONDS

echo "== device"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader || true
nvcc_bin=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
"$nvcc_bin" --version | grep -m1 release || true

prebuilt=${CTMLLM_GPU_PREBUILT:-}
if [[ -n $prebuilt ]]; then
  [[ $prebuilt == /* ]] || prebuilt=$root/$prebuilt
  echo "== prebuilt binaries in $prebuilt (benchmarks/gpu/prebuild.sh)"
  bench_ops=$prebuilt/ctmllm_bench_gpu
  bench_models=$prebuilt/ctmllm_bench_gpu_models
  export LD_LIBRARY_PATH=$prebuilt${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  # NCCL comes with PyTorch's wheels there, outside the loader's paths.
  nccl_lib=$(python3 -c 'import nvidia.nccl as n; print(list(n.__path__)[0] + "/lib")' 2>/dev/null || true)
  [[ -n $nccl_lib ]] && export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$nccl_lib
else
  echo "== configure + build (ctmllm_test_cuda, ctmllm_test_nccl when NCCL is found, ctmllm_bench_gpu, ctmllm_bench_gpu_models)"
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DCTMLLM_BUILD_TESTS=ON -DCTMLLM_BUILD_BENCHMARKS=ON -DCTMLLM_BUILD_EXAMPLES=OFF -DCTMLLM_BUILD_TOOLS=OFF \
    >"$out/configure.log" 2>&1 || { tail -n 40 "$out/configure.log"; exit 1; }
  grep -E "ctmllm: CUDA|ctmllm::cuda|cudnn-frontend|NCCL" "$out/configure.log" || true
  targets=(ctmllm_test_cuda ctmllm_bench_gpu ctmllm_bench_gpu_models)
  grep -q "ctmllm::nccl available" "$out/configure.log" && targets+=(ctmllm_test_nccl)
  cmake --build "$build" -j"$jobs" --target "${targets[@]}" >"$out/build.log" 2>&1 ||
    { grep -E "error|FAILED" "$out/build.log" | head -n 40; exit 1; }
  echo "built in $((SECONDS - t0)) s"
  bench_ops=$build/benchmarks/ctmllm_bench_gpu
  bench_models=$build/benchmarks/ctmllm_bench_gpu_models
fi

echo "== GPU tests"
if [[ -n $prebuilt ]]; then
  # A crash, a hang or a sticky CUDA error stays in its own case. Prints each case's result, and the
  # output of those that fail.
  run_case() {  # binary, case name
    local log rc spec=$2
    # Catch reads the name as a test spec: a comma separates specs, brackets hold tags, a backslash
    # escapes. --warn NoTests makes a spec that matches nothing fail instead of passing.
    spec=${spec//\\/\\\\}
    spec=${spec//,/\\,}
    spec=${spec//[/\\[}
    spec=${spec//]/\\]}
    log=$(CTMLLM_TESTS_DIR=$root/tests OMP_NUM_THREADS=4 timeout -k 10 240 "$prebuilt/$1" --warn NoTests "$spec" 2>&1)
    rc=$?
    if [[ $rc == 0 ]]; then echo "ok    $2"; else printf 'FAIL  %s (exit %d%s)\n%s\n' "$2" $rc "$([[ $rc == 124 ]] && echo ', timed out')" "$log"; fi
    if grep -q "no CUDA device" <<<"$log"; then echo "      (skipped: no CUDA device)"; fi
    # Catch exits with its count of failed checks, up to 255; xargs stops everything at 255.
    return $((rc == 0 ? 0 : 1))
  }
  # A binary's case names, one per line: Catch2 v2's option, else v3's (prebuild.sh links whichever
  # Catch2 the building machine has).
  list_cases() {
    local names
    names=$("$prebuilt/$1" --list-test-names-only 2>/dev/null)
    [[ -n $names ]] || names=$("$prebuilt/$1" --list-tests --verbosity quiet 2>/dev/null)
    sed '/^$/d' <<<"$names"
  }
  export -f run_case
  export root prebuilt
  for bin in ctmllm_test_cuda ctmllm_test_nccl; do
    [[ -x $prebuilt/$bin ]] || continue
    list_cases "$bin" | sed "s|^|$bin\t|"
  done | tr '\n\t' '\0\0' | xargs -0 -P4 -n2 bash -c 'run_case "$1" "$2"' _ | tee "$out/ctest.log"
  tests_rc=${PIPESTATUS[2]}
  echo "$(grep -c '^ok' "$out/ctest.log") cases passed, $(grep -c '^FAIL' "$out/ctest.log") failed"
  # No case listed is a failure, not a pass.
  if ! grep -q '^ok\|^FAIL' "$out/ctest.log"; then echo "ERROR: no test case listed"; tests_rc=1; fi
else
  # (not the compile-time error tests: they compile headers and need no GPU)
  ctest --test-dir "$build" -R "^(cuda|nccl)" -E "compile-time error" --output-on-failure -j4 --timeout 300 2>&1 |
    tee "$out/ctest.log"
  tests_rc=${PIPESTATUS[0]}
fi
# Catch2 v3 reports a skipped case to ctest as skipped: on a GPU machine none may be.
if grep -qiE "skipped|no CUDA device" "$out/ctest.log"; then
  echo "WARNING: some GPU tests skipped (no device seen?)"
fi

echo "== benchmarks (ours, then PyTorch)"
"$bench_ops" --benchmark_format=json --benchmark_min_time=0.5 >"$out/bench_ours.json" 2>"$out/bench_ours.err" ||
  { tail -n 20 "$out/bench_ours.err"; }
# The models run a fixed number of iterations each (the decode steps must fit the KV cache).
"$bench_models" --benchmark_format=json \
  "--benchmark_filter=$([[ ${CTMLLM_GPU_BENCH_TRAIN:-1} == 0 ]] && echo '^(vit|llama)' || echo '.')" >"$out/bench_ours_models.json" 2>"$out/bench_ours_models.err" ||
  { tail -n 20 "$out/bench_ours_models.err"; }
echo "ours done at $((SECONDS - t0)) s"
PYTHONUNBUFFERED=1 python3 "$root/benchmarks/gpu/torch_gpu_reference.py" >"$out/bench_torch.json" 2>"$out/bench_torch.err" ||
  { tail -n 20 "$out/bench_torch.err"; echo "{}" >"$out/bench_torch.json"; }

python3 - "$out/bench_torch.json" "$out/bench_ours.json" "$out/bench_ours_models.json" <<'PY'
import json, sys
ours, ours_peak = {}, {}
for path in sys.argv[2:]:
    try:
        for b in json.load(open(path))["benchmarks"]:
            if not b.get("error_occurred"):
                name = b["name"].split("/")[0]
                ours[name] = b["real_time"] / 1e3  # ms -> s
                if "peak_GiB" in b:
                    ours_peak[name] = b["peak_GiB"]
    except (OSError, ValueError, KeyError) as e:
        print(f"(no benchmark output in {path}: {e})")
try:
    torch = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    torch = {}
torch_peak = {k[:-len("_peak_GiB")]: v for k, v in torch.items() if k.endswith("_peak_GiB")}
torch = {k: v for k, v in torch.items() if not k.endswith("_peak_GiB")}
# The project's targets (PERF.md): the ViT-B forward at least as fast as PyTorch's anchors (bf16
# autocast at batch 1 and 2, pure bf16 at 8), decode at most 5 ms per step (HF generate: 25.9 / 26.7),
# the training steps at most 0.8x PyTorch's anchors (165.6 / 280.1 ms) with no more memory (63.2 / 69.1 GiB).
target = {"vit3d_b_fwd_bf16_B1": 3.03e-3, "vit3d_b_fwd_bf16_B2": 3.63e-3, "vit3d_b_fwd_bf16_B8": 10.0e-3,
          "llama8b_decode_step_bf16_B1": 5e-3, "llama8b_decode_step_bf16_B3": 5e-3,
          "train_frozen_llm_B2_L768_step": 0.8 * 165.6e-3, "train_lora_r16_B2_L768_step": 0.8 * 280.1e-3}
target_peak = {"train_frozen_llm_B2_L768_step": 63.2, "train_lora_r16_B2_L768_step": 69.1}
fmt = lambda v: f"{v * 1e3:10.3f}" if v else f"{'-':>10}"
print(f"{'workload':42} {'ours ms':>10} {'torch ms':>10} {'torch/ours':>10} {'target ms':>10}")
for name in sorted(set(ours) | set(torch)):
    o, t = ours.get(name), torch.get(name)
    ratio = f"{t / o:10.2f}" if o and t else f"{'-':>10}"
    print(f"{name:42} {fmt(o)} {fmt(t)} {ratio} {fmt(target.get(name))}")
print(f"\n{'peak memory':42} {'ours GiB':>10} {'torch GiB':>10} {'torch/ours':>10} {'target GiB':>10}")
gib = lambda v: f"{v:10.1f}" if v else f"{'-':>10}"
for name in sorted(set(ours_peak) | set(torch_peak)):
    o, t = ours_peak.get(name), torch_peak.get(name)
    ratio = f"{t / o:10.2f}" if o and t else f"{'-':>10}"
    print(f"{name:42} {gib(o)} {gib(t)} {ratio} {gib(target_peak.get(name))}")
PY
echo "total $((SECONDS - t0)) s; tests exit status $tests_rc"
exit "$tests_rc"
