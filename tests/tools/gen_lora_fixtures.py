#!/usr/bin/env python3
"""DoRA fixture (tests/fixtures/lora/llama_dora_r4) from peft, on the base model of lora/llama_r4.

Usage: gen_lora_fixtures.py [FIXTURES_DIR]   (default: tests/fixtures next to this script)

peft LoraConfig(use_dora=True, r=4, alpha=8) on q/v/o/down_proj with rank_pattern {down_proj: 2} and
alpha_pattern {o_proj: 4}, so per-module rank and scaling are exercised too. lora_B ~ 0.2·randn (peft
initialises it to zero, which would make the adapter the identity) and the magnitude vectors scaled
by 1 + 0.1·randn (peft initialises them to ‖W + s·B·A‖ row by row, which would make the DoRA factor 1).
The adapter is saved as peft saves it; the references are computed in float64 in eval mode (dropout
off): logits, the causal-LM loss on `labels`, the gradient of every trainable tensor under peft's
in-model name (grad.base_model.model.<module>.lora_{A,B}.default.weight,
grad.base_model.model.<module>.lora_magnitude_vector.default.weight) and merge_and_unload's logits.
"""
import os
import sys

import torch
import peft
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import f32, save_st  # noqa: E402

SEED = 42


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
    base_dir = os.path.join(root, "lora", "llama_r4", "base")
    out = os.path.join(root, "lora", "llama_dora_r4")
    m = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32, attn_implementation="eager").eval()
    lc = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, bias="none", use_dora=True,
                         target_modules=["q_proj", "v_proj", "o_proj", "down_proj"],
                         rank_pattern={"down_proj": 2}, alpha_pattern={"o_proj": 4})
    pm = peft.get_peft_model(m, lc)
    torch.manual_seed(SEED + 60)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.copy_(0.2 * torch.randn_like(p))
        for n, p in pm.named_parameters():
            if "lora_magnitude_vector" in n:
                p.mul_(1 + 0.1 * torch.randn_like(p))
    pm.save_pretrained(os.path.join(out, "adapter"))
    pm = pm.double()
    g = torch.Generator().manual_seed(SEED + 61)
    vocab = m.config.vocab_size
    ids = torch.randint(3, vocab, (2, 11), generator=g)
    labels = ids.clone()
    labels[:, :4] = -100
    res = pm(input_ids=ids, labels=labels)
    params = [(n, p) for n, p in pm.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(res.loss, [p for _, p in params])
    ref = {"input_ids": ids, "labels": labels, "logits": f32(res.logits), "loss": f32(res.loss).reshape(1)}
    for (n, _), gr in zip(params, grads):
        ref["grad." + n] = f32(gr)
    with torch.no_grad():
        merged = pm.merge_and_unload()
        ref["merged_logits"] = f32(merged(input_ids=ids).logits)
    save_st(os.path.join(out, "reference.safetensors"), ref,
            {"loss": "HF causal LM loss: shift by one, ignore -100, mean", "base": "lora/llama_r4/base",
             "peft": peft.__version__, "torch": torch.__version__})
    print("dora ok loss", float(res.loss), "trainable tensors", len(params))


if __name__ == "__main__":
    main()
