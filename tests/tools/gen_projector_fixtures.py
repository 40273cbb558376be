#!/usr/bin/env python3
"""Reference fixtures for the projectors that the shared fixture set lacks: the 3D TokenPacker (ctmllm's
reading of the paper, docs/VISION.md) and the plain per-token Linear projector.

Usage: gen_projector_fixtures.py OUTDIR      (ctmllm keeps them in tests/fixtures/vision)

Conventions as tests/tools/gen_fixtures.py: parameters and inputs float32, every reference computed in
float64 from them and stored as float32; the gradients are those of sum(output * dy).

TokenPacker3D is TokenPacker (Li et al. 2024, github.com/CircleRadon/TokenPacker, llava/model/
multimodal_projector/builder.py) carried from a 2-D 24x24 CLIP grid to the ViT's 3-D grid, names kept:
  queries  = ln_q_1(q_proj_1(trilinear downsample of the final ViT tokens by `scale`))   [B, Nq, C]
  keys     = ln_k_1(k_proj_1(concat of the tapped block outputs))                        [B, N, C]
  values   = ln_v_1(v_proj_1(same))                                                      [B, N, C]
  each query attends (clip_attn = nn.MultiheadAttention(C, heads)) only to the s0*s1*s2 keys of its own
  cell, and mlp (Linear C->H, GELU, Linear H->H) maps the result to the LLM width.
"""
import json, os, sys
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

SEED = 42


class TokenPacker3D(nn.Module):
    def __init__(s, grid, in_dim, out_dim, embed_dim, heads, scale, n_taps, eps=1e-6):
        super().__init__()
        s.grid, s.scale = list(grid), list(scale)
        s.q_proj_1 = nn.Linear(in_dim, embed_dim, bias=False)
        s.k_proj_1 = nn.Sequential(nn.Linear(in_dim * n_taps, embed_dim), nn.GELU(), nn.Linear(embed_dim, embed_dim))
        s.v_proj_1 = nn.Sequential(nn.Linear(in_dim * n_taps, embed_dim), nn.GELU(), nn.Linear(embed_dim, embed_dim))
        s.ln_q_1, s.ln_k_1, s.ln_v_1 = (nn.LayerNorm(embed_dim, eps=eps) for _ in range(3))
        s.clip_attn = nn.MultiheadAttention(embed_dim, heads)
        s.mlp = nn.Sequential(nn.Linear(embed_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))

    def cells(s, x):
        """[B, d*h*w, C] -> [s0*s1*s2, B*Nq, C]: the fine tokens of each coarse cell (cells raster-ordered)."""
        B, _, C = x.shape; (d, h, w), (a, b, c) = s.grid, s.scale
        x = x.reshape(B, d // a, a, h // b, b, w // c, c, C).permute(2, 4, 6, 0, 1, 3, 5, 7)
        return x.reshape(a * b * c, B * (d // a) * (h // b) * (w // c), C)

    def forward(s, tokens, taps):
        B, N, E = tokens.shape; d, h, w = s.grid
        coarse = [n // k for n, k in zip(s.grid, s.scale)]
        q = F.interpolate(tokens.transpose(1, 2).reshape(B, E, d, h, w), size=coarse, mode="trilinear")
        q = s.ln_q_1(s.q_proj_1(q.flatten(2).transpose(1, 2)))            # [B, Nq, C]
        multi = torch.cat(taps, -1)                                        # [B, N, E * taps]
        k, v = s.ln_k_1(s.k_proj_1(multi)), s.ln_v_1(s.v_proj_1(multi))    # [B, N, C]
        nq = q.shape[1]
        out = s.clip_attn(q.reshape(1, B * nq, -1), s.cells(k), s.cells(v), need_weights=False)[0]
        return s.mlp(out.reshape(B, nq, -1))


def randomize_norms(m, g=0.1):
    for n, p in m.named_parameters():
        if n.startswith("ln_") and n.endswith("weight"): p.data = 1 + g * torch.randn_like(p)
        elif n.startswith("ln_") and n.endswith("bias"): p.data = g * torch.randn_like(p)
        elif n.endswith("in_proj_bias") or n.endswith("out_proj.bias"): p.data = g * torch.randn_like(p)


def f32(x): return x.detach().to(torch.float32).contiguous()


def write(folder, config, model, inputs, forward):
    """Saves config, weights, and output + gradients of sum(output * dy) for every input and parameter."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f: json.dump(config, f, indent=2)
    save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
              os.path.join(folder, "model.safetensors"), metadata={"generator": "tests/tools/gen_projector_fixtures.py"})
    model = model.double()
    xs = {k: v.double().requires_grad_() for k, v in inputs.items()}
    y = forward(model, xs)
    dy = torch.randn_like(y)
    names = [n for n, _ in model.named_parameters()]
    grads = torch.autograd.grad(y, list(xs.values()) + [p for _, p in model.named_parameters()], dy)
    ref = {k: f32(v) for k, v in inputs.items()}
    ref.update({"output": f32(y), "dy": f32(dy)})
    for k, g in zip(xs, grads): ref["d" + k] = f32(g)
    for n, g in zip(names, grads[len(xs):]): ref["grad." + n] = f32(g)
    save_file(ref, os.path.join(folder, "reference.safetensors"), metadata={"generator": "tests/tools/gen_projector_fixtures.py"})
    print(folder, tuple(y.shape))


def main(out):
    torch.manual_seed(SEED)
    rnd = lambda *s: torch.randn(*s, dtype=torch.float64).float()
    grid, E, H = [4, 4, 6], 24, 40
    taps = [5, 7, 10, 11]
    cfg = {"type": "token_packer", "grid": grid, "in_dim": E, "out_dim": H, "embed_dim": 32, "num_heads": 4,
           "scale": [2, 2, 2], "feature_layers": taps, "norm_eps": 1e-6}
    tp = TokenPacker3D(grid, E, H, 32, 4, [2, 2, 2], len(taps)); randomize_norms(tp)
    n = grid[0] * grid[1] * grid[2]
    inputs = {"input": rnd(2, n, E)}
    for t in taps: inputs[f"hidden.{t}"] = rnd(2, n, E)
    write(os.path.join(out, "projector_token_packer"), cfg, tp, inputs,
          lambda m, xs: m(xs["input"], [xs[f"hidden.{t}"] for t in taps]))

    lin = nn.Linear(E, H)
    write(os.path.join(out, "projector_linear"), {"type": "linear", "grid": grid, "in_dim": E, "out_dim": H}, lin,
          {"input": rnd(2, n, E)}, lambda m, xs: m(xs["input"]))


if __name__ == "__main__":
    if len(sys.argv) != 2: sys.exit(__doc__)
    main(sys.argv[1])
