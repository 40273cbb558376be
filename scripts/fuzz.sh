#!/usr/bin/env bash
# Short libFuzzer runs of every parser target in tests/fuzz (clang, ASan + UBSan): each target is
# built, then fed its committed seed corpus plus CTMLLM_FUZZ_SECONDS (default 20) of mutations.
# New inputs go to a scratch folder, so the committed corpus stays as it is. Any crash, leak or
# sanitizer report fails the script; the reproducer is left in build-fuzz/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
seconds=${CTMLLM_FUZZ_SECONDS:-20}
out=$root/build-fuzz
mkdir -p "$out"
clangxx=$(command -v clang++-14 || command -v clang++ || true)
[[ -n $clangxx ]] || { echo "fuzz.sh: clang++ not found (scripts/setup.sh installs clang-14)"; exit 1; }

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
for src in tests/fuzz/fuzz_*.cpp; do
  name=$(basename "$src" .cpp)
  corpus=tests/fuzz/corpus/${name#fuzz_}
  echo "== $name: build"
  "$clangxx" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -DCTMLLM_TEST_FIXTURES="\"$root/tests/fixtures\"" -I include -isystem /usr/include/eigen3 "$src" -lz -o "$out/$name"
  scratch=$out/$name.corpus
  rm -rf "$scratch" && mkdir -p "$scratch"
  echo "== $name: ${seconds}s on $corpus"
  (cd "$out" && "./$name" -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=1 "$scratch" "$root/$corpus" 2>&1 | tail -n 12)
done
echo "fuzz: all targets ran clean"
