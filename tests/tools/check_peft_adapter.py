#!/usr/bin/env python3
"""Checks that peft loads an adapter written by ctmllm (io::save_adapter) to the same model as the
adapter it came from.

Usage: check_peft_adapter.py WRITTEN_DIR REFERENCE_DIR BASE_DIR
  WRITTEN_DIR    adapter folder written by ctmllm
  REFERENCE_DIR  the peft-saved adapter it was read from (e.g. tests/fixtures/lora/llama_r4/adapter)
  BASE_DIR       the base model folder (config.json; weights are random, only the adapter is compared)
Exit status 0 when every adapter parameter and the effective config agree exactly.

       check_peft_adapter.py --logits LOGITS_FILE WRITTEN_DIR BASE_DIR
  For an adapter created and trained in ctmllm (no peft original): peft loads it onto the real base
  weights and runs LOGITS_FILE's input_ids in float64; its logits must match the file's `logits`
  (computed by ctmllm) within 1e-4 relative.
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


def check_logits(logits_file, written, base_dir):
    from safetensors.torch import load_file
    ref = load_file(logits_file)
    base = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32, attn_implementation="eager")
    model = PeftModel.from_pretrained(base, written).double().eval()
    with torch.no_grad():
        logits = model(input_ids=ref["input_ids"]).logits
    err = float((logits - ref["logits"].double()).norm() / ref["logits"].double().norm())
    cfg = model.peft_config["default"]
    ok = err <= 1e-4
    print(f"{written}: use_dora={cfg.use_dora} use_rslora={cfg.use_rslora} modules_to_save={cfg.modules_to_save}, "
          f"{sum(1 for k, _ in model.named_parameters() if 'lora_' in k)} adapter tensors; "
          f"peft logits vs ctmllm rel err {err:.3g}", "match" if ok else "DIFFER")
    sys.exit(0 if ok else 1)


def main():
    if sys.argv[1] == "--logits":
        check_logits(*sys.argv[2:5])
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
