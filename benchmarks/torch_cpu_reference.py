#!/usr/bin/env python3
"""PyTorch's time for the same CPU workloads as ctmllm's benchmark programs, measured in the same run.

Usage: torch_cpu_reference.py OUT.json [--threads N] [--suite ops|vision|train|llm] [--workload NAME]
Writes {workload name: seconds per iteration}; names match the Google Benchmark names (less
"/iterations:N" and "/real_time") of benchmarks/bench_ops.cpp (suite ops), bench_vision.cpp (vision),
bench_train.cpp (train) and bench_llm.cpp (llm) so compare_cpu.py can pair them. The vision and llm
suites also write "_peak_RSS_MiB": {workload name: MiB}; each of their workloads runs in a fresh
interpreter (--workload NAME) so that its peak is its own.
"""
import json, math, os, resource, subprocess, sys, time

import torch
import torch.nn.functional as F


def median_time(fn, min_time=1.0, warmup=2):
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 3:
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def main():
    out = sys.argv[1]
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 2
    suite = sys.argv[sys.argv.index("--suite") + 1] if "--suite" in sys.argv else "ops"
    workload = sys.argv[sys.argv.index("--workload") + 1] if "--workload" in sys.argv else None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if workload:
        res = {workload: WORKLOADS[suite]()[workload](),
               "_peak_RSS_MiB": {workload: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}  # KiB on Linux
    elif suite in WORKLOADS:
        res = {"_peak_RSS_MiB": {}}
        for name in WORKLOADS[suite]():
            subprocess.run([sys.executable, __file__, out, "--threads", str(threads), "--suite", suite,
                            "--workload", name], check=True)
            one = json.load(open(out))
            res["_peak_RSS_MiB"].update(one.pop("_peak_RSS_MiB"))
            res.update(one)
    else:
        res = {"train": train_suite}.get(suite, ops_suite)()
    res["_meta"] = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


def vision_workloads():
    # The M3D-CLIP ViT-B and the SPP projector exactly as the fixture generator defines them.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "tools"))
    from gen_fixtures import ViT3D, SPP

    @torch.no_grad()
    def vit():
        m = ViT3D(1, [32, 256, 256], [4, 16, 16], 768, 12, 12, 3072).eval()
        x = torch.rand(1, 1, 32, 256, 256)
        return median_time(lambda: m(x), min_time=0, warmup=1)

    @torch.no_grad()
    def spp():
        m = SPP([8, 16, 16], 768, 4096).eval()
        f = torch.randn(1, 2048, 768)
        return median_time(lambda: m(f))
    return {"vit3d_b_fwd_fp32": vit, "spp_to4096_fp32": spp}


def llm_workloads():
    # bench_llm.cpp's decoder: Qwen2.5-0.5B's shape, random weights, bf16 (torch's bf16 CPU matmuls run
    # at least as fast as its float32 ones here, so no float32 variant), SDPA attention, KV cache.
    from transformers import Qwen2Config, Qwen2ForCausalLM
    config = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, head_dim=64, max_position_embeddings=32768,
                         rms_norm_eps=1e-6, tie_word_embeddings=True,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6})

    def model():
        # Built directly in bf16, so the float32 copy never exists and the peak is the bf16 model's.
        return Qwen2ForCausalLM._from_config(config, dtype=torch.bfloat16).eval()

    def prompt_ids(batch, length):  # as bench_llm.cpp
        return (torch.arange(batch * length) * 7919 % config.vocab_size).reshape(batch, length)

    @torch.no_grad()
    def prefill(length):
        m, ids = model(), prompt_ids(1, length)
        return median_time(lambda: m(input_ids=ids, use_cache=True, logits_to_keep=1), min_time=0, warmup=1)

    @torch.no_grad()
    def decode(batch, prompt=128, steps=32):
        # Greedy steps after the prompt's prefill, one token per row per step; mean over the steps, as
        # bench_llm.cpp's decode (Iterations(32), no warm-up step).
        m = model()
        out = m(input_ids=prompt_ids(batch, prompt), use_cache=True, logits_to_keep=1)
        cache, logits = out.cache, out.logits
        start = time.perf_counter()
        for _ in range(steps):
            out = m(input_ids=logits[:, -1].argmax(-1, keepdim=True), cache=cache, use_cache=True)
            cache, logits = out.cache, out.logits
        return (time.perf_counter() - start) / steps

    @torch.no_grad()
    def beam_reorder(beams=4, prompt=512):
        # bench_llm.cpp's beam_reorder: a 4-beam cache after a 512-token prompt, rows [1, 0, 0, 2];
        # transformers reorders with an index_select of every layer's keys and values (a new cache of
        # bf16 rows, where ctmllm moves float rows in place).
        from transformers import DynamicCache
        cache = DynamicCache(config=config)
        for layer in range(config.num_hidden_layers):
            kv = torch.rand(beams, config.num_key_value_heads, prompt, config.head_dim, dtype=torch.bfloat16)
            cache.update(kv, kv.clone(), layer)
        rows = torch.tensor([1, 0, 0, 2])
        return median_time(lambda: cache.reorder_cache(rows))
    return {"prefill/128": lambda: prefill(128), "decode/1": lambda: decode(1), "decode/3": lambda: decode(3),
            "beam_reorder": beam_reorder}


WORKLOADS = {"vision": vision_workloads, "llm": llm_workloads}


def train_suite():
    # bench_train.cpp's step: forward, causal-LM loss, backward, clip_grad_norm_(1.0), AdamW, float32.
    from transformers import LlamaConfig, LlamaForCausalLM
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    models = {
        "train_step_tiny_llama": (LlamaForCausalLM.from_pretrained(
            os.path.join(root, "tests", "fixtures", "train", "llama_adamw", "base"), dtype=torch.float32), 2, 64),
        "train_step_mid_llama": (LlamaForCausalLM(LlamaConfig.from_json_file(
            os.path.join(root, "benchmarks", "train_mid_llama.json"))).float(), 2, 256),
    }
    res = {}
    for name, (model, batch, seq) in models.items():
        model.train()
        vocab = model.config.vocab_size
        ids = ((torch.arange(batch * seq) * 7919 + 13) % vocab).reshape(batch, seq)  # as bench_train.cpp
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)

        def step():
            opt.zero_grad(set_to_none=True)
            model(input_ids=ids, labels=ids).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        res[name] = median_time(step, min_time=3, warmup=1)
        res["_attention"] = model.config._attn_implementation  # for the record: sdpa
    return res


def ops_suite():
    res = {}
    with torch.no_grad():
        # linear: x [2048, 768] @ w[3072, 768]^T (+ no bias): the ViT MLP up-projection GEMM
        x = torch.randn(2048, 768); w = torch.randn(3072, 768)
        res["gemm_2048x768x3072_f32"] = median_time(lambda: F.linear(x, w))
        # attention at the ViT-B shape, the way the M3D code computes it (matmul-softmax-matmul) and via SDPA
        q, k, v = (torch.randn(1, 12, 2049, 64) for _ in range(3))
        res["attention_vitb_f32"] = median_time(lambda: F.softmax(q @ k.transpose(-1, -2) * 64 ** -0.5, -1) @ v)
        res["attention_vitb_f32:sdpa"] = median_time(lambda: F.scaled_dot_product_attention(q, k, v))
        # layer norm over the ViT's tokens
        t = torch.randn(2049, 768); g = torch.randn(768); b = torch.randn(768)
        res["layer_norm_2049x768_f32"] = median_time(lambda: F.layer_norm(t, (768,), g, b, 1e-5))
        # patch embedding of a 1x1x32x256x256 CT into 768-d tokens (Conv3d kernel = stride = 4x16x16)
        vol = torch.rand(1, 1, 32, 256, 256); cw = torch.randn(768, 1, 4, 16, 16) * 0.02; cb = torch.randn(768)
        res["patch_embed_vitb_f32"] = median_time(lambda: F.conv3d(vol, cw, cb, stride=(4, 16, 16)))
        # SwiGLU's hidden activation as transformers computes it (silu, then the product)
        sg = torch.randn(128, 4864); su = torch.randn(128, 4864)
        res["swiglu_128x4864_f32"] = median_time(lambda: F.silu(sg) * su)
    return res


if __name__ == "__main__":
    main()
