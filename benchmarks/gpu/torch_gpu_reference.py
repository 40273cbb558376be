"""PyTorch timings of the workloads in bench_gpu_ops.cu and bench_gpu_models.cu (same names, shapes
and dtypes), each the median of CUDA-event-timed calls after a warm-up, on random inputs. Prints
{name: seconds} as JSON. PyTorch's float32 matmul stays true float32 (TF32 off), as ours does.
Attention is PyTorch's scaled_dot_product_attention (its flash / cuDNN kernels: the bar for our
fallback kernels). The models: the fixtures' ViT3D (tests/tools/gen_fixtures.py) in pure bf16 with
SDPA, and transformers' LlamaForCausalLM at the Llama-3.1-8B shape with random bf16 weights, its
decode step timed as HF generate's (generate 64 tokens after the prefill, minus the prefill, / 63:
the first new token comes from the prefill),
and the paper's training step at full size as PERF.md's anchors run it (ViT + SPP + LlamaForCausalLM
in float32 under bf16 autocast, fused AdamW; frozen-LLM mode and peft LoRA r16), with its peak memory
under <name>_peak_GiB. Without transformers (or peft) those entries are left out; CTMLLM_GPU_BENCH_TRAIN=0
skips the training steps."""
import json
import os
import pathlib
import sys
import time
import traceback

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests" / "tools"))


def median_seconds(fn, warmup=10, reps=50):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    times.sort()
    return times[len(times) // 2]


def main():
    if not torch.cuda.is_available():
        print("{}")
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    sections = [op_timings, vit_forward, llama8b]
    if os.environ.get("CTMLLM_GPU_BENCH_TRAIN", "1") != "0":
        sections += [lambda: train_step(False), lambda: train_step(True)]
    results = {}
    for section in sections:  # one failing section (out of memory, an API change) loses only its rows
        try:
            results.update(section())
        except Exception:
            traceback.print_exc()
        torch.cuda.empty_cache()
    print(json.dumps(results))
    return 0


def op_timings():
    """The rows of bench_gpu_ops.cu. Its tensors are freed on return, before the models are built (the
    training rows report peak memory)."""
    dev, bf = "cuda", torch.bfloat16
    r = lambda *s, dtype=bf: torch.randn(*s, device=dev, dtype=dtype)
    x, w, b = r(8192, 4096), r(4096, 4096), r(4096)
    a32, b32 = r(2048, 2048, dtype=torch.float32), r(2048, 2048, dtype=torch.float32)
    qa, qb = r(64, 1024, 128), r(64, 128, 1024)
    nw, nb = r(4096), r(4096)
    xr = r(8192, 4096)  # the residual of add_rms_norm
    g = r(1 << 26)
    F = torch.nn.functional

    # RoPE as Hugging Face Llama applies it (rotate_half), cos/sin precomputed for 8192 positions.
    rq = r(1, 32, 8192, 128)
    inv_freq = 1.0 / (500000.0 ** (torch.arange(0, 128, 2, device=dev, dtype=torch.float32) / 128))
    ang = torch.outer(torch.arange(8192, device=dev, dtype=torch.float32), inv_freq)
    emb = torch.cat((ang, ang), -1)
    cos, sin = emb.cos().to(bf), emb.sin().to(bf)

    def rope():
        x1, x2 = rq[..., :64], rq[..., 64:]
        return rq * cos + torch.cat((-x2, x1), -1) * sin

    edy = r(8192, 4096)
    eids = torch.randint(0, 128256, (8192,), device=dev)
    gw = r(14336, 4096)
    gx1, gx3 = r(1, 4096), r(3, 4096)
    # SwiGLU as Hugging Face's Llama MLP computes it: silu, then the product (and their backward).
    sg, su, sdy = r(1536, 14336).requires_grad_(), r(1536, 14336).requires_grad_(), r(1536, 14336)
    sy = F.silu(sg) * su

    def swiglu_fwd():
        with torch.no_grad():
            return F.silu(sg) * su

    logits = r(8192, 128256)
    targets = torch.randint(0, 128256, (8192,), device=dev)

    def attention(b, hq, hkv, sq, sk, d, causal, backward):
        q = r(b, hq, sq, d).requires_grad_(backward)
        k = r(b, hkv, sk, d).requires_grad_(backward)
        v = r(b, hkv, sk, d).requires_grad_(backward)
        # PyTorch's is_causal aligns to the top-left corner; ours to the end of the keys. They agree
        # for sq == sk, and a one-query decode step sees the whole cache either way.
        is_causal = causal and sq == sk
        fwd = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=is_causal, enable_gqa=hq != hkv)
        if not backward:
            return fwd
        out, dy = fwd(), r(b, hq, sq, d)
        # autograd.grad rather than backward: backward would also add into q.grad, k.grad, v.grad
        return lambda: torch.autograd.grad(out, (q, k, v), dy, retain_graph=True)

    work = {
        "gemm_bf16_8192x4096x4096": lambda: torch.nn.functional.linear(x, w, b),
        "gemm_f32_2048x2048x2048": lambda: a32 @ b32,
        "bmm_bf16_64x1024x128x1024": lambda: torch.bmm(qa, qb),
        "layer_norm_bf16_8192x4096": lambda: torch.nn.functional.layer_norm(x, (4096,), nw, nb),
        "rms_norm_bf16_8192x4096": lambda: torch.nn.functional.rms_norm(x, (4096,), nw, 1e-6),
        "add_rms_norm_bf16_8192x4096": lambda: torch.nn.functional.rms_norm(x + xr, (4096,), nw, 1e-6),
        "softmax_bf16_8192x4096": lambda: torch.softmax(x, -1),
        "gelu_bf16_64M": lambda: torch.nn.functional.gelu(g),
        "swiglu_fwd_bf16_1536x14336": swiglu_fwd,
        "swiglu_bwd_bf16_1536x14336": lambda: torch.autograd.grad(sy, (sg, su), sdy, retain_graph=True),
        "transpose_copy_bf16_8192x4096": lambda: x.t().contiguous(),
        "rope_bf16_1x32x8192x128": rope,
        "embedding_backward_bf16_8192x128256x4096": lambda: torch.ops.aten.embedding_dense_backward(
            edy, eids, 128256, -1, False),
        "cross_entropy_bf16_8192x128256": lambda: F.cross_entropy(logits, targets),
        # Ours keeps x in float over the bf16 weights; PyTorch's nearest form is all bf16 (the same weight bytes).
        "linear_bf16w_f32x_14336x4096_B1": lambda: F.linear(gx1, gw),
        "linear_bf16w_f32x_14336x4096_B3": lambda: F.linear(gx3, gw),
        "linear_bf16_14336x4096_B1": lambda: F.linear(gx1, gw),
        "linear_bf16_14336x4096_B3": lambda: F.linear(gx3, gw),
        "attention_fwd_bf16_vitb_1x12x2049x64": attention(1, 12, 12, 2049, 2049, 64, False, False),
        "attention_bwd_bf16_vitb_1x12x2049x64": attention(1, 12, 12, 2049, 2049, 64, False, True),
        "attention_fwd_bf16_llama8b_prefill_2048": attention(1, 32, 8, 2048, 2048, 128, True, False),
        "attention_bwd_bf16_llama8b_prefill_2048": attention(1, 32, 8, 2048, 2048, 128, True, True),
        "attention_fwd_bf16_llama8b_decode_4096": attention(1, 32, 8, 1, 4096, 128, True, False),
    }
    return {name: median_seconds(fn) for name, fn in work.items()}


def vit_forward():
    """The 3D ViT-B forward (1x1x32x256x256, patch 4x16x16, 768, 12 layers), bf16 weights and inputs."""
    from gen_fixtures import ViT3D

    vit = ViT3D(1, [32, 256, 256], [4, 16, 16], 768, 12, 12, 3072).cuda().to(torch.bfloat16).eval()
    out = {}
    for batch in (1, 2, 8):
        x = torch.rand(batch, 1, 32, 256, 256, device="cuda", dtype=torch.bfloat16)
        with torch.no_grad():
            out[f"vit3d_b_fwd_bf16_B{batch}"] = median_seconds(lambda: vit(x, sdpa=True), warmup=3, reps=10)
    # Two batch-1 forwards on two streams from this thread (PyTorch's usual way to overlap requests).
    inputs = [torch.rand(1, 1, 32, 256, 256, device="cuda", dtype=torch.bfloat16) for _ in range(2)]
    streams = [torch.cuda.Stream() for _ in range(2)]

    def two_streams():
        for s, x in zip(streams, inputs):
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                vit(x, sdpa=True)
        for s in streams:
            torch.cuda.current_stream().wait_stream(s)

    with torch.no_grad():
        out["vit3d_b_fwd_bf16_B1_two_streams"] = median_seconds(two_streams, warmup=3, reps=20)
    del vit
    torch.cuda.empty_cache()
    return out


def llama8b(new_tokens=64):
    """Llama-3.1-8B shape, random bf16 weights: prefill of 512 embedded tokens, and HF generate's decode step."""
    try:
        from transformers import LlamaForCausalLM
    except ImportError as e:
        print(f"llama8b: no transformers ({e})", file=sys.stderr)
        return {}
    config = llama8b_config()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).eval()
    torch.set_default_dtype(torch.float32)
    out = {}
    for batch in (1, 3):
        emb = torch.randn(batch, 512, 4096, device="cuda", dtype=torch.bfloat16) * 0.02
        mask = torch.ones(batch, 512, dtype=torch.long, device="cuda")
        with torch.no_grad():
            prefill = median_seconds(lambda: model(inputs_embeds=emb, use_cache=False, logits_to_keep=1), 2, 5)

            def generate():
                model.generate(inputs_embeds=emb, attention_mask=mask, max_new_tokens=new_tokens,
                               min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
                torch.cuda.synchronize()

            generate()
            best = float("inf")
            for _ in range(2):
                t0 = time.perf_counter()
                generate()
                best = min(best, time.perf_counter() - t0)
        out[f"llama8b_prefill512_bf16_B{batch}"] = prefill
        # generate's first forward is the prefill; the other new_tokens - 1 are decode steps. (PERF.md's
        # anchors divide by new_tokens: 1/128 lower than a step.)
        out[f"llama8b_decode_step_bf16_B{batch}"] = (best - prefill) / (new_tokens - 1)
    del model
    torch.cuda.empty_cache()
    return out


def llama8b_config():
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072,
                       rms_norm_eps=1e-5, rope_theta=500000.0,
                       rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                       tie_word_embeddings=False, bos_token_id=128000, eos_token_id=128001)


def train_step(lora):
    """One training step of ViT-B + SPP + Llama-3.1-8B shape, batch 2 x 768 tokens (256 visual tokens after
    the first, the first 300 labels ignored): float32 weights under bf16 autocast, fused AdamW over the ViT,
    SPP, embed_tokens, lm_head (and the LoRA r16 adapters on every decoder linear). 2 warm-up steps, median
    of 5; the peak memory since the setup."""
    name = "train_lora_r16_B2_L768_step" if lora else "train_frozen_llm_B2_L768_step"
    try:
        from transformers import LlamaForCausalLM
        from gen_fixtures import SPP, ViT3D
        if lora:
            import peft
    except ImportError as e:
        print(f"{name}: {e}", file=sys.stderr)
        return {}
    with torch.device("cuda"):
        lm = LlamaForCausalLM(llama8b_config())
    if lora:
        lm = peft.get_peft_model(lm, peft.LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, bias="none",
                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                 "down_proj"]))
    for n, p in lm.named_parameters():
        p.requires_grad_(("embed_tokens" in n) or ("lm_head" in n) or ("lora_" in n))
    vit = ViT3D(1, [32, 256, 256], [4, 16, 16], 768, 12, 12, 3072).cuda()
    spp = SPP([8, 16, 16], 768, 4096).cuda()
    params = [p for p in list(lm.parameters()) + list(vit.parameters()) + list(spp.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-5, weight_decay=0.0, fused=True)
    x = torch.rand(2, 1, 32, 256, 256, device="cuda")
    ids = torch.randint(0, 128000, (2, 768), device="cuda")
    labels = ids.clone()
    labels[:, :300] = -100
    embed = lm.get_input_embeddings()

    def step():
        with torch.autocast("cuda", torch.bfloat16):
            v = spp(vit(x, sdpa=True)[:, 1:])
            e = embed(ids)
            e = torch.cat([e[:, :1], v.to(e.dtype), e[:, 1 + v.shape[1]:]], 1)
            loss = lm(inputs_embeds=e, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    torch.cuda.reset_peak_memory_stats()
    seconds = median_seconds(step, warmup=2, reps=5)
    out = {name: seconds, name + "_peak_GiB": torch.cuda.max_memory_allocated() / 2**30}
    del lm, vit, spp, opt, params
    torch.cuda.empty_cache()
    return out


if __name__ == "__main__":
    sys.exit(main())
