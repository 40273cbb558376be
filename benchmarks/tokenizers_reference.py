#!/usr/bin/env python3
"""HF tokenizers' time for ctmllm_bench_tokenizer's workload (same corpus, one thread).

Usage: tokenizers_reference.py OUT.json [--threads N] [--suite S]   (pip install tokenizers; always one thread)
"""
import json, os, sys, time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def report_corpus():  # mirrors benchmarks/report_corpus.hpp
    texts = []
    for name in ("llama3", "qwen3", "llama2"):
        with open(os.path.join(ROOT, "tests/fixtures/tokenizer_real", name, "cases.json"), encoding="utf-8") as f:
            texts += [c["text"] for c in json.load(f)["cases"]]
    lines, size = [], 0
    while size < 512 << 10:
        for t in texts:
            lines.append(t); size += len(t.encode())
    return lines


def main():
    tok = Tokenizer.from_file(os.path.join(ROOT, "tests/fixtures/tokenizer_real/llama3/tokenizer.json"))
    lines = report_corpus()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        tok.encode_batch(lines, add_special_tokens=False)  # HF's fastest path; one thread (RAYON_NUM_THREADS)
        times.append(time.perf_counter() - t)
    times.sort()
    import tokenizers
    res = {"tokenize_llama3_reports": times[len(times) // 2],
           "_meta": {"tokenizers": tokenizers.__version__, "threads": 1}}
    with open(sys.argv[1], "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
