#!/usr/bin/env python3
"""LR schedule fixture (tests/fixtures/train/schedules.json) from transformers' own schedule functions.

Usage: gen_schedule_fixtures.py [OUT]   (default: tests/fixtures/train/schedules.json next to this script)

Each case: the schedule name, warmup_ratio, total steps, the warm-up steps TrainingArguments derives
(ceil(ratio * total); transformers 5 takes the ratio as a
float warmup_steps < 1), and the LR multiplier LambdaLR applies before each optimizer step 0..total.
"""
import json, math, os, sys
import torch
import transformers
from transformers import get_scheduler

here = os.path.dirname(os.path.abspath(__file__))
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "fixtures", "train", "schedules.json")

cases = []
for name, ratio, total in [("constant", 0.0, 10), ("constant_with_warmup", 0.1, 25), ("constant_with_warmup", 0.0, 5),
                           ("linear", 0.1, 30), ("linear", 0.0, 7), ("linear", 0.25, 9),
                           ("cosine", 0.03, 100), ("cosine", 0.1, 37), ("cosine", 0.0, 12), ("cosine", 0.5, 4)]:
    args = transformers.TrainingArguments(output_dir="/tmp/sched", warmup_steps=ratio, report_to=[])  # transformers 5: a float < 1 is the ratio
    warmup = args.get_warmup_steps(total)
    assert warmup == math.ceil(ratio * total), (name, ratio, total, warmup)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=total)
    factors = []
    for _ in range(total + 1):
        factors.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    cases.append({"name": name, "warmup_ratio": ratio, "total_steps": total, "warmup_steps": warmup, "factors": factors})

os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    json.dump({"generator": f"transformers {transformers.__version__}, torch {torch.__version__}", "cases": cases}, f, indent=1)
print("wrote", out, len(cases), "cases")
