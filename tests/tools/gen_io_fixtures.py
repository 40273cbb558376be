#!/usr/bin/env python3
"""Fixtures for the checkpoint and config readers (tests/fixtures/io) and the fuzz seed corpora.

Usage: gen_io_fixtures.py   (writes next to this script: ../fixtures/io, ../fuzz/corpus)
Needs torch, safetensors, transformers and peft. Everything is small (a few KB per file).

torch/        torch.save checkpoints: state_dict.pth (f32/bf16/f16/f64/int64/bool, a transposed
              tensor, views sharing a storage, an nn.Parameter, M3D-style nested module names,
              a scalar and an empty tensor) with expected.safetensors (the same tensors made
              contiguous); deflated.pth (same archive re-zipped with DEFLATE); nested.pth
              ({"model": state dict, "epoch", a list of tensors, a tied tensor}); legacy.pth
              (pre-1.6 format); malicious.pth (a data.pkl that calls os.system).
model/        one tiny state dict as model.safetensors, sharded safetensors with an index,
              pytorch_model.bin, and sharded .bin with an index.
config/       <family>_v5.json: the llm fixture configs re-saved by transformers 5 (rope_parameters
              layout), gemma2.json, expected.json (what transformers reads from each config file),
              generation_*.json.
peft/dora/    a DoRA + rsLoRA adapter with rank_pattern, alpha_pattern, regex target_modules and
              modules_to_save, saved by peft on the llama_r4 base.
"""
import json, os, pickle, shutil, struct, zipfile
from collections import OrderedDict

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "io")
CORPUS = os.path.join(HERE, "..", "fuzz", "corpus")
LLM = os.path.join(HERE, "..", "fixtures", "llm")


def mkdir(*p):
    d = os.path.join(*p)
    os.makedirs(d, exist_ok=True)
    return d


def contiguous(sd):
    return {k: v.detach().clone().contiguous() for k, v in sd.items()}


def rezip_deflated(src, dst):
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zo:
        for info in zi.infolist():
            zo.writestr(info.filename, zi.read(info.filename))


def torch_fixtures():
    d = mkdir(OUT, "torch")
    g = torch.Generator().manual_seed(0)

    # M3D-style names come from a real module tree, so the OrderedDict carries _metadata too.
    class Attn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = torch.nn.Linear(4, 12, bias=False)

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = Attn()

    class Tower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList([Block()])

    class Outer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vision_tower = torch.nn.Module()
            self.vision_tower.vision_tower = Tower()

    sd = Outer().state_dict()
    base = torch.randn(6, 5, generator=g)
    sd["f32"] = torch.randn(3, 4, generator=g)
    sd["bf16"] = torch.randn(2, 3, generator=g).to(torch.bfloat16)
    sd["f16"] = torch.randn(5, generator=g).to(torch.float16)
    sd["f64"] = torch.randn(2, 2, generator=g).double()
    sd["i64"] = torch.tensor([-(1 << 40), 0, 7, 123456789012], dtype=torch.int64)
    sd["mask"] = torch.tensor([True, False, True])
    sd["transposed"] = base.t()           # non-contiguous, strides (1, 5)
    sd["base"] = base
    sd["rows"] = base[2:4]                # contiguous view at storage offset 10
    sd["every_other"] = base[:, ::2]      # strided view of the same storage
    sd["param"] = torch.nn.Parameter(torch.randn(3, generator=g))
    sd["scalar"] = torch.tensor(2.5)
    sd["empty"] = torch.zeros(0, 3)
    torch.save(sd, os.path.join(d, "state_dict.pth"))
    save_file(contiguous(sd), os.path.join(d, "expected.safetensors"))
    rezip_deflated(os.path.join(d, "state_dict.pth"), os.path.join(d, "deflated.pth"))

    w = torch.randn(2, 3, generator=g)
    nested = {"model": OrderedDict([("w", w), ("tied", w)]), "epoch": 3, "name": "run1",
              "list": [torch.arange(3), torch.ones(2, dtype=torch.float16)], "opt": {0: torch.tensor([1.5])}}
    torch.save(nested, os.path.join(d, "nested.pth"))

    torch.save({"x": torch.ones(2)}, os.path.join(d, "legacy.pth"), _use_new_zipfile_serialization=False)

    # A pickle that would run a shell command: GLOBAL os.system, REDUCE with a tuple argument.
    cmd = b"touch /tmp/ctmllm_pickle_pwned"
    evil = b"\x80\x02cos\nsystem\nq\x00X" + struct.pack("<I", len(cmd)) + cmd + b"\x85R."
    with zipfile.ZipFile(os.path.join(d, "malicious.pth"), "w") as z:
        z.writestr("archive/data.pkl", evil)
        z.writestr("archive/byteorder", "little")

    # Seeds for the torch checkpoint fuzzer: small archives that exercise every path.
    c = mkdir(CORPUS, "torch_checkpoint")
    tiny = OrderedDict([("w", torch.randn(2, 2, generator=g)), ("b", torch.ones(3, dtype=torch.bfloat16))])
    tiny["t"] = tiny["w"].t()
    tiny["p"] = torch.nn.Parameter(torch.zeros(1))
    torch.save(tiny, os.path.join(c, "tiny.pth"))
    rezip_deflated(os.path.join(c, "tiny.pth"), os.path.join(c, "tiny_deflated.pth"))
    shutil.copy(os.path.join(d, "nested.pth"), os.path.join(c, "nested.pth"))
    shutil.copy(os.path.join(d, "malicious.pth"), os.path.join(c, "malicious.pth"))
    # The fuzz target also feeds its input to the unpickler alone: pickle seeds.
    with zipfile.ZipFile(os.path.join(c, "tiny.pth")) as z:
        pkl = next(n for n in z.namelist() if n.endswith("/data.pkl"))
        with open(os.path.join(c, "tiny_data.pkl"), "wb") as f:
            f.write(z.read(pkl))
    with open(os.path.join(c, "values_p4.pkl"), "wb") as f:
        f.write(pickle.dumps({"a": 1, "b": [1.5, -3, 2**40, None, True], "c": ("x", "y" * 300)}, protocol=4))
    with open(os.path.join(c, "ordered_p5.pkl"), "wb") as f:
        f.write(pickle.dumps(OrderedDict([("k", "v")]), protocol=5))

    s = mkdir(CORPUS, "safetensors")
    save_file({"a": torch.randn(2, 3, generator=g), "b": torch.arange(4), "c": torch.ones(2, dtype=torch.bfloat16)},
              os.path.join(s, "small.safetensors"), metadata={"format": "pt"})
    save_file({"s": torch.tensor(1.0), "e": torch.zeros(0)}, os.path.join(s, "scalar_empty.safetensors"))


def model_fixtures():
    g = torch.Generator().manual_seed(1)
    sd = OrderedDict([
        ("model.embed_tokens.weight", torch.randn(10, 4, generator=g)),
        ("model.layers.0.self_attn.q_proj.weight", torch.randn(4, 4, generator=g)),
        ("model.layers.0.mlp.up_proj.weight", torch.randn(6, 4, generator=g).to(torch.bfloat16)),
        ("model.norm.weight", torch.randn(4, generator=g)),
        ("lm_head.weight", torch.randn(10, 4, generator=g)),
    ])
    shards = [["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight"],
              ["model.layers.0.mlp.up_proj.weight", "model.norm.weight", "lm_head.weight"]]
    save_file(contiguous(sd), os.path.join(mkdir(OUT, "model", "safetensors"), "model.safetensors"), metadata={"format": "pt"})
    torch.save(sd, os.path.join(mkdir(OUT, "model", "bin"), "pytorch_model.bin"))
    for kind, ext in (("sharded", "safetensors"), ("bin_sharded", "bin")):
        d = mkdir(OUT, "model", kind)
        stem = "model" if ext == "safetensors" else "pytorch_model"
        weight_map = {}
        for i, names in enumerate(shards):
            fname = f"{stem}-{i + 1:05d}-of-{len(shards):05d}.{ext}"
            part = OrderedDict((n, sd[n]) for n in names)
            if ext == "safetensors":
                save_file(contiguous(part), os.path.join(d, fname), metadata={"format": "pt"})
            else:
                torch.save(part, os.path.join(d, fname))
            weight_map.update({n: fname for n in names})
        total = sum(v.numel() * v.element_size() for v in sd.values())
        with open(os.path.join(d, f"{stem}.{ext}.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def config_fixtures():
    from transformers import AutoConfig, Gemma2Config, GenerationConfig
    d = mkdir(OUT, "config")
    expected = {}

    def record(key, cfg):
        mt = cfg.model_type
        heads = cfg.num_attention_heads
        rp = dict(cfg.rope_parameters)
        act = cfg.hidden_activation if mt in ("gemma", "gemma2") else cfg.hidden_act
        sliding = getattr(cfg, "sliding_window", None)
        if mt == "qwen2" and not cfg.use_sliding_window:
            sliding = None
        eos = cfg.eos_token_id
        expected[key] = {
            "model_type": mt, "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
            "intermediate_size": cfg.intermediate_size, "num_hidden_layers": cfg.num_hidden_layers,
            "num_attention_heads": heads, "num_key_value_heads": cfg.num_key_value_heads,
            "head_dim": getattr(cfg, "head_dim", None) or cfg.hidden_size // heads,
            "max_position_embeddings": cfg.max_position_embeddings, "rms_norm_eps": cfg.rms_norm_eps,
            "hidden_act": act, "tie_word_embeddings": cfg.tie_word_embeddings,
            "attention_bias": True if mt == "qwen2" else getattr(cfg, "attention_bias", False),
            "rope_type": rp.get("rope_type", "default"), "rope_theta": rp["rope_theta"],
            "factor": rp.get("factor"), "low_freq_factor": rp.get("low_freq_factor"),
            "high_freq_factor": rp.get("high_freq_factor"),
            "original_max_position_embeddings": rp.get("original_max_position_embeddings"),
            "partial_rotary_factor": rp.get("partial_rotary_factor", getattr(cfg, "partial_rotary_factor", 1.0)) or 1.0,
            "sliding_window": sliding, "bos_token_id": cfg.bos_token_id, "pad_token_id": cfg.pad_token_id,
            "eos_token_id": eos if isinstance(eos, list) else [eos], "dtype": str(cfg.dtype).replace("torch.", ""),
        }

    for fam in ("llama", "mistral", "phi3", "qwen2", "gemma"):
        src = os.path.join(LLM, fam)
        cfg = AutoConfig.from_pretrained(src)
        record(f"llm/{fam}/config.json", cfg)
        tmp = os.path.join(d, "_tmp")
        cfg.save_pretrained(tmp)
        shutil.move(os.path.join(tmp, "config.json"), os.path.join(d, f"{fam}_v5.json"))
        shutil.rmtree(tmp)
        record(f"io/config/{fam}_v5.json", AutoConfig.from_pretrained(os.path.join(d, f"{fam}_v5.json")))

    g2 = Gemma2Config(vocab_size=384, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=24, query_pre_attn_scalar=24, dtype="bfloat16")
    g2.save_pretrained(os.path.join(d, "_tmp"))
    shutil.move(os.path.join(d, "_tmp", "config.json"), os.path.join(d, "gemma2_v5.json"))
    shutil.rmtree(os.path.join(d, "_tmp"))
    record("io/config/gemma2_v5.json", AutoConfig.from_pretrained(os.path.join(d, "gemma2_v5.json")))

    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2, sort_keys=True)

    # Llama-3.1-8B-Instruct's generation_config.json, and one with every field we read.
    with open(os.path.join(d, "generation_llama31.json"), "w") as f:
        json.dump({"bos_token_id": 128000, "do_sample": True, "eos_token_id": [128001, 128008, 128009],
                   "temperature": 0.6, "top_p": 0.9, "transformers_version": "4.42.3"}, f, indent=2)
    full = GenerationConfig(do_sample=True, temperature=0.7, top_k=20, top_p=0.8, min_p=0.05, repetition_penalty=1.1,
                            no_repeat_ngram_size=3, num_beams=4, length_penalty=0.9, max_new_tokens=512,
                            eos_token_id=2, pad_token_id=0, bos_token_id=1)
    full.save_pretrained(os.path.join(d, "_tmp"))
    shutil.move(os.path.join(d, "_tmp", "generation_config.json"), os.path.join(d, "generation_full.json"))
    shutil.rmtree(os.path.join(d, "_tmp"))


def peft_fixtures():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(2)
    base = os.path.join(HERE, "..", "fixtures", "lora", "llama_r4", "base")
    m = LlamaForCausalLM(LlamaConfig.from_pretrained(base))
    lc = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.05, target_modules=r".*\.(q_proj|v_proj)", use_dora=True,
                    use_rslora=True, modules_to_save=["norm"], rank_pattern={"v_proj": 2},
                    alpha_pattern={"layers.1.self_attn.q_proj": 3})
    pm = get_peft_model(m, lc)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n or "modules_to_save" in n:
                p.add_(0.1 * torch.randn_like(p))
    d = os.path.join(OUT, "peft", "dora")
    pm.save_pretrained(d)
    os.remove(os.path.join(d, "README.md"))


if __name__ == "__main__":
    torch_fixtures()
    model_fixtures()
    config_fixtures()
    peft_fixtures()
    print("wrote", os.path.normpath(OUT), "and", os.path.normpath(CORPUS))
