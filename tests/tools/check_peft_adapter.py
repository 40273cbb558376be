#!/usr/bin/env python3
"""Checks that peft loads an adapter written by ctmllm (io::save_adapter) to the same model as the
adapter it came from.

Usage: check_peft_adapter.py WRITTEN_DIR REFERENCE_DIR BASE_DIR
  WRITTEN_DIR    adapter folder written by ctmllm
  REFERENCE_DIR  the peft-saved adapter it was read from (e.g. tests/fixtures/lora/llama_r4/adapter)
  BASE_DIR       the base model folder (config.json; weights are random, only the adapter is compared)
Exit status 0 when every adapter parameter and the effective config agree exactly.
"""
import sys

import torch
from peft import PeftModel
from transformers import AutoConfig, AutoModelForCausalLM


def load(adapter_dir, base_dir):
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base_dir))
    model = PeftModel.from_pretrained(base, adapter_dir)
    state = {k: v.detach().clone() for k, v in model.named_parameters() if "lora_" in k or "modules_to_save" in k}
    return model.peft_config["default"], state


def main():
    written, reference, base = sys.argv[1:4]
    cw, sw = load(written, base)
    cr, sr = load(reference, base)
    ok = True
    for key in ("r", "lora_alpha", "lora_dropout", "target_modules", "use_dora", "use_rslora", "bias",
                "modules_to_save", "rank_pattern", "alpha_pattern", "fan_in_fan_out"):
        if getattr(cw, key) != getattr(cr, key):
            print(f"config {key}: {getattr(cw, key)!r} != {getattr(cr, key)!r}")
            ok = False
    if sorted(sw) != sorted(sr):
        print("parameter names differ:", sorted(set(sw) ^ set(sr)))
        ok = False
    for k in sorted(set(sw) & set(sr)):
        if not torch.equal(sw[k], sr[k]):
            print("parameter differs:", k)
            ok = False
    print(f"{written}: {len(sw)} adapter parameters", "match" if ok else "DIFFER")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
