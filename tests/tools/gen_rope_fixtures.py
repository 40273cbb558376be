#!/usr/bin/env python3
"""RoPE fixtures (tests/fixtures/ops/rope_*.safetensors) from transformers' own rotary embedding classes.

Usage: gen_rope_fixtures.py [OUTDIR]   (default: tests/fixtures/ops next to this script)

Each file holds x [batch, heads, seq, head_dim], position_ids int64 [batch, seq], the module's inv_freq,
y = apply_rotary_pos_emb(x, cos, sin), an upstream gradient dy and dx. cos/sin come from the rotary
module's forward, which computes the angles position * inv_freq in float32 (transformers' choice);
the rotation itself runs in float64 and everything is stored as float32. The RoPE parameters are in
the metadata, as strings.
"""
import math, os, sys
import torch
from transformers import LlamaConfig, Phi3Config
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb as llama_apply
from transformers.models.phi3.modeling_phi3 import Phi3RotaryEmbedding, apply_rotary_pos_emb as phi3_apply

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import f32, rnd, save_st  # noqa: E402

HEADS, HEAD_DIM = 3, 32


def left_padded_positions(mask):
    # What generate() does for left padding: cumsum(mask) - 1, padding slots set to 1.
    pos = mask.long().cumsum(-1) - 1
    return pos.masked_fill(mask == 0, 1)


def make(name, module, apply, positions, meta, g):
    batch, seq = positions.shape
    x = rnd(batch, HEADS, seq, HEAD_DIM, g=g)
    xd = x.double().requires_grad_()
    cos, sin = module(xd, positions)  # float32 angles, cast to float64
    y, _ = apply(xd, xd.detach(), cos, sin)
    dy = rnd(*y.shape, g=g).double()
    (dx,) = torch.autograd.grad(y, [xd], dy)
    # The same rotation with float64 angles: the float32 angle error must stay far below the tests' 1e-5.
    ang = positions[..., None].double() * module.inv_freq.double()
    emb = torch.cat((ang, ang), -1)
    exact, _ = apply(x.double(), x.double(), emb.cos(), emb.sin())
    drift = ((y.detach() - exact).norm() / exact.norm()).item()
    assert drift < 3e-6, (name, drift)
    meta = {"op": "rope", "convention": "rotate_half", "layout": "[batch, heads, seq, head_dim]",
            "head_dim": HEAD_DIM, **meta}
    save_st(os.path.join(OUT, name + ".safetensors"),
            {"x": x, "position_ids": positions, "inv_freq": f32(module.inv_freq), "y": f32(y), "dy": f32(dy), "dx": f32(dx)},
            meta)
    print(name, tuple(y.shape), "float32-angle drift %.2e" % drift)


def llama(rope_parameters):
    cfg = LlamaConfig(hidden_size=HEADS * HEAD_DIM, num_attention_heads=HEADS, num_key_value_heads=HEADS,
                      max_position_embeddings=4096, rope_parameters=rope_parameters)
    return LlamaRotaryEmbedding(cfg)


def main():
    g = torch.Generator().manual_seed(42)

    # Default RoPE, left-padded batch.
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1, 1]])
    make("rope_default", llama({"rope_type": "default", "rope_theta": 10000.0}), llama_apply, left_padded_positions(mask),
         {"theta": 10000.0, "rotary_dim": HEAD_DIM, "scaling": "none"}, g)

    # Linear scaling, decoding after a KV cache (a different offset per sequence).
    pos = torch.stack([torch.arange(117, 122), torch.arange(40, 45)])
    make("rope_linear", llama({"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}), llama_apply, pos,
         {"theta": 10000.0, "rotary_dim": HEAD_DIM, "scaling": "linear", "factor": 4.0}, g)

    # Llama 3.1 scaling; a short original context puts frequencies in all three bands.
    rp = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 64}
    module = llama(rp)
    inv = 2 * math.pi * (10000.0 ** (torch.arange(0, HEAD_DIM, 2).double() / HEAD_DIM))
    bands = [(inv < 16).sum().item(), ((inv >= 16) & (inv <= 64)).sum().item(), (inv > 64).sum().item()]
    assert all(b > 0 for b in bands), bands  # high, medium (smoothed), low frequencies
    pos = torch.randint(0, 200, (2, 6), generator=g)
    make("rope_llama3", module, llama_apply, pos,
         {"theta": 10000.0, "rotary_dim": HEAD_DIM, "scaling": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 64}, g)

    # Partial rotary (Phi-3 style): only the first half of each head rotates.
    cfg = Phi3Config(hidden_size=HEADS * HEAD_DIM, num_attention_heads=HEADS, num_key_value_heads=HEADS,
                     max_position_embeddings=4096, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                                    "partial_rotary_factor": 0.5})
    pos = torch.stack([torch.arange(3, 10), torch.arange(60, 67)])
    make("rope_partial", Phi3RotaryEmbedding(cfg), phi3_apply, pos,
         {"theta": 10000.0, "rotary_dim": HEAD_DIM // 2, "scaling": "none"}, g)


if __name__ == "__main__":
    OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "ops")
    main()
