#!/usr/bin/env python3
"""Runs ctmllm's CPU benchmarks and the reference implementations' same workloads in one go and
prints the ratios: ops, the ViT and the projector, a training step and LLM prefill/decode against
PyTorch, the tokenizer against HF tokenizers; peak RSS beside the times where both sides report it.

Usage: compare_cpu.py [BUILD_DIR] [--threads N] [--only ops|vision|tokenizer|train|llm]
Needs torch and tokenizers (pip install torch tokenizers).
ratio = reference time / ctmllm time: above 1 means ctmllm is faster.
"""
import json, os, re, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


# (benchmark program, reference script) pairs; workload names match between the two.
SUITES = {
    "ops": ("ctmllm_bench_ops", "torch_cpu_reference.py"),
    "vision": ("ctmllm_bench_vision", "torch_cpu_reference.py"),
    "tokenizer": ("ctmllm_bench_tokenizer", "tokenizers_reference.py"),
    "train": ("ctmllm_bench_train", "torch_cpu_reference.py"),
    "llm": ("ctmllm_bench_llm", "torch_cpu_reference.py"),
}
# Counters printed as rates, with the reference's derived from its time (same work per iteration).
RATES = {"FLOP/s": (1e9, "GFLOP/s"), "bytes/s": (1e6, "MB/s"), "tokens/s": (1, "tok/s")}


def run_suite(suite, build, program, reference, threads, tmp):
    env = dict(os.environ, OMP_NUM_THREADS=threads)
    ours_json, ref_json = os.path.join(tmp, program + ".json"), os.path.join(tmp, program + ".ref.json")
    subprocess.run([os.path.join(build, "benchmarks", program), "--benchmark_min_time=1",
                    f"--benchmark_out={ours_json}", "--benchmark_out_format=json"],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, os.path.join(HERE, reference), ref_json, "--threads", threads, "--suite", suite],
                   check=True)
    # Iterations(N) and UseRealTime() append "/iterations:N" and "/real_time" to the names.
    return ({re.sub(r"(/iterations:\d+)?(/real_time)?$", "", b["name"]): b for b in json.load(open(ours_json))["benchmarks"]},
            json.load(open(ref_json)))


def main():
    args = [a for i, a in enumerate(sys.argv[1:]) if not a.startswith("--") and sys.argv[i] not in ("--threads", "--only")]
    build = args[0] if args else os.path.join(HERE, "..", "build")
    threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "2"
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    print(f"{'workload':28s} {'ctmllm':>11s} {'reference':>11s} {'ratio':>7s} {'peak MiB ctmllm/ref':>20s}"
          "  rate ctmllm / reference")
    with tempfile.TemporaryDirectory() as tmp:
        for suite, (program, reference) in SUITES.items():
            if only and suite != only:
                continue
            ours, ref = run_suite(suite, build, program, reference, threads, tmp)
            ref_peaks = ref.get("_peak_RSS_MiB", {})
            for name, b in ours.items():
                t = b["real_time"] * scale[b["time_unit"]]
                r = ref.get(name)
                peaks = "/".join(f"{p:.0f}" if p else "-" for p in (b.get("peak_RSS_MiB"), ref_peaks.get(name)))
                rate = next((f"{b[k] / div:.1f}" + (f" / {b[k] * t / r / div:.1f}" if r else "") + f" {unit}"
                             for k, (div, unit) in RATES.items() if k in b), "")
                if "roofline_fraction" in b:  # decode: both read the same bf16 weights per step
                    rate += f", roofline {b['roofline_fraction']:.0%}" + (f" / {b['roofline_fraction'] * t / r:.0%}" if r else "")
                elif "GB/s" in b:
                    rate = f"{b['GB/s']:.1f} GB/s"
                print(f"{name:28s} {t * 1e3:9.3f}ms " + (f"{r * 1e3:9.3f}ms {r / t:7.2f}" if r else f"{'-':>11s} {'-':>7s}")
                      + f" {peaks:>20s}  {rate}")
            print(f"  reference: {ref['_meta']}")


if __name__ == "__main__":
    main()
