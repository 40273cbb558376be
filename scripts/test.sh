#!/usr/bin/env bash
# The whole test suite, as CI runs it (bash .ci/run):
#   1. setup.sh (Debian packages, only when missing)
#   2. Release build of everything (tests, benchmarks, examples, the ctmllm program) and its ctest
#   3. AddressSanitizer + UndefinedBehaviorSanitizer build of the tests only, and its ctest
#   4. cmake --install of build 2 into a temporary prefix, then tests/consumer (a separate CMake
#      project: find_package(ctmllm)) built and tested against that installed tree only, once as
#      found (with ctmllm::cuda when the CUDA toolkit and cuDNN are present) and once with CUDA hidden.
# Build folders (build-release, build-asan, build-consumer*) are reused, so a second run only
# rebuilds what changed. Any failing step stops the script with a non-zero status.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
jobs=${CTMLLM_JOBS:-2}
release_dir=$root/build-release
asan_dir=$root/build-asan
consumer_dir=$root/build-consumer
prefix=$(mktemp -d "${TMPDIR:-/tmp}/ctmllm-install.XXXXXX")
trap 'rm -rf "$prefix"' EXIT

# Both builds compile each program's C++ files as one unity file (CMAKE_UNITY_BUILD, no batch
# limit): a layer's test files instantiate the same models and ops, and compiled apart each one
# instantiates and optimizes them again (the train layer's tests: 378 s of compiler time apart, 116 s
# as one file). nvcc files are compiled one by one (CMake 3.25 has no unity builds for CUDA). An
# everyday build (no unity) compiles every file on its own, so a file missing an include is caught there.
unity=(-DCMAKE_UNITY_BUILD=ON -DCMAKE_UNITY_BUILD_BATCH_SIZE=0)

# ctest -j2 runs two test programs at once, each with OMP_NUM_THREADS=2, on 2 cores: OpenMP threads
# that spin while waiting then steal the cores the other test needs (measured 20x slower steps on a
# loaded 2-core machine). Tests measure correctness, not speed, so waiting threads sleep.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

t_start=$SECONDS
t_phase=$SECONDS
summary=()
phase() {  # phase "name": closes the previous phase's timer and announces the next
  printf '\n======== %s ========\n' "$1"
  t_phase=$SECONDS
}
done_phase() {
  local took=$((SECONDS - t_phase))
  summary+=("$(printf '%-34s %5d s' "$1" "$took")")
  printf -- '-------- %s: %d s --------\n' "$1" "$took"
}
passed=0
failed=0
run_ctest() {  # run_ctest <build dir> [ctest args...]: runs, shows output, adds up the counts
  local dir=$1
  shift
  local log
  log=$(mktemp)
  # ctest exits non-zero on any failure (or when no test exists): set -e stops the script then.
  ctest --test-dir "$dir" --output-on-failure -j"$jobs" --no-tests=error "$@" 2>&1 | tee "$log"
  local line
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)
  rm -f "$log"
  if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
    failed=$((failed + BASH_REMATCH[1]))
    passed=$((passed + BASH_REMATCH[2] - BASH_REMATCH[1]))
  fi
}

phase "setup"
bash scripts/setup.sh
echo "cmake: $(cmake --version | head -n 1); c++: $(c++ --version | head -n 1); cores: $(nproc)"
nvcc_bin=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
if [[ -x $nvcc_bin ]]; then echo "nvcc: $("$nvcc_bin" --version | grep -m1 release || true)"; fi
done_phase "setup"

phase "release: configure + build (tests, benchmarks, examples, tools)"
cmake -S . -B "$release_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "${unity[@]}" \
  -DCTMLLM_BUILD_TESTS=ON -DCTMLLM_BUILD_BENCHMARKS=ON -DCTMLLM_BUILD_EXAMPLES=ON -DCTMLLM_BUILD_TOOLS=ON
cmake --build "$release_dir" -j"$jobs"
done_phase "release build"

phase "release: ctest"
run_ctest "$release_dir"
done_phase "release ctest"

phase "asan+ubsan: configure + build (tests)"
cmake -S . -B "$asan_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" "${unity[@]}" \
  -DCTMLLM_SANITIZE=address,undefined \
  "-DCTMLLM_ONLY_TEST_LAYERS=core;ops;autograd;io;nn;text;eval;augment;data_world" \
  -DCTMLLM_BUILD_TESTS=ON -DCTMLLM_BUILD_BENCHMARKS=OFF -DCTMLLM_BUILD_EXAMPLES=OFF -DCTMLLM_BUILD_TOOLS=OFF
cmake --build "$asan_dir" -j"$jobs"
done_phase "asan+ubsan build"

phase "asan+ubsan: ctest"
# detect_stack_use_after_return stays off: with it, GCC 12's ASan segfaults on entry to the frame of
# one gradcheck test (ops: "embedding backward passes finite differences", at its first statement,
# whatever that statement is), a fake-stack fault rather than a bug in the code under test.
ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=0:check_initialization_order=1:protect_shadow_gap=0 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_ctest "$asan_dir"
done_phase "asan+ubsan ctest"

phase "install + consumer (find_package against the installed tree)"
if ! install_log=$(cmake --install "$release_dir" --prefix "$prefix" 2>&1); then
  echo "$install_log"
  exit 1
fi
echo "installed $(grep -c 'Installing:' <<<"$install_log") files into $prefix"
expect_cuda=OFF
if grep -qE '^CTMLLM_CUDNN_LIBRARY:FILEPATH=/' "$release_dir/CMakeCache.txt" &&
   grep -qE '^CUDAToolkit_NVCC_EXECUTABLE:FILEPATH=/' "$release_dir/CMakeCache.txt"; then
  expect_cuda=ON  # the project's build found the toolkit and cuDNN, so an installed consumer must too
fi
# 1) as a user gets it: ctmllm::cuda defined when the toolkit is there (no GPU needed)
rm -rf "$consumer_dir"
cmake -S tests/consumer -B "$consumer_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  -DCTMLLM_CONSUMER_EXPECT_PREFIX="$prefix" -DCTMLLM_CONSUMER_EXPECT_CUDA="$expect_cuda"
cmake --build "$consumer_dir" -j"$jobs"
run_ctest "$consumer_dir"
# 2) a machine without the CUDA toolkit (hidden from CMake): find_package must still succeed
rm -rf "$consumer_dir-nocuda"
cmake -S tests/consumer -B "$consumer_dir-nocuda" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON \
  -DCTMLLM_CONSUMER_EXPECT_PREFIX="$prefix" -DCTMLLM_CONSUMER_EXPECT_CUDA=OFF
cmake --build "$consumer_dir-nocuda" -j"$jobs"
run_ctest "$consumer_dir-nocuda"
done_phase "install + consumer"

phase "fuzz: short libFuzzer run of every parser"
CTMLLM_FUZZ_SECONDS=${CTMLLM_FUZZ_SECONDS:-20} bash scripts/fuzz.sh
done_phase "fuzz"

printf '\n======== time per phase ========\n'
printf '%s\n' "${summary[@]}"
printf '%-34s %5d s\n' "total" "$((SECONDS - t_start))"
# All ctest runs above together (each already printed its own summary and passed):
echo "tests: ${passed} passed, ${failed} failed"

