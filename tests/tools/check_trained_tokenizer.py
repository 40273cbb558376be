"""Checks a tokenizer trained by ctmllm's text::train_bpe against Hugging Face tokenizers / transformers.

Write the files first (the hidden Catch2 case of tests/text/test_bpe_trainer.cpp):
    CTMLLM_TRAINED_TOKENIZER_DIR=/tmp/trained ./ctmllm_text_tests "[.hf_reference]"
then:
    python tests/tools/check_trained_tokenizer.py /tmp/trained

1. trains HF's BpeTrainer on the same corpus with the same settings (Llama-3 Split + ByteLevel,
   initial alphabet = all 256 byte symbols) and compares its vocab and merges with ctmllm's;
2. loads ctmllm's tokenizer.json with tokenizers.Tokenizer.from_file and the directory with
   transformers.PreTrainedTokenizerFast, and compares ids (with and without special tokens), decoded
   text, bos/eos/pad and the chat template rendering with what ctmllm produced.
Exits 1 on any difference. Tested with tokenizers 0.23.3, transformers 5.24.
"""
import json
import sys

from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast


def hf_trained(ref, pattern):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=ref["vocab_size"], min_frequency=ref["min_frequency"],
                                  special_tokens=ref["special_tokens"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(ref["corpus"], trainer)
    return json.loads(tok.to_str())["model"]


def main(folder):
    ref = json.load(open(f"{folder}/ctmllm_reference.json", encoding="utf-8"))
    ours = json.load(open(f"{folder}/tokenizer.json", encoding="utf-8"))
    failures = 0

    # 1. training
    hf = hf_trained(ref, ours["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"])
    ours_merges = [tuple(m) for m in ours["model"]["merges"]]
    hf_merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in hf["merges"]]
    same_prefix = next((i for i, (a, b) in enumerate(zip(ours_merges, hf_merges)) if a != b),
                       min(len(ours_merges), len(hf_merges)))
    same_set = len(set(ours_merges) & set(hf_merges))
    print(f"training: {len(ours_merges)} merges (HF {len(hf_merges)}); identical in order for the first "
          f"{same_prefix}; {same_set} in common; vocab identical: {ours['model']['vocab'] == hf['vocab']}")
    if ours_merges != hf_merges or ours["model"]["vocab"] != hf["vocab"]:
        failures += 1
        if same_prefix < min(len(ours_merges), len(hf_merges)):
            print(f"  first difference at merge {same_prefix}: ours {ours_merges[same_prefix]} HF {hf_merges[same_prefix]}")

    # 2. loading and encoding
    fast = Tokenizer.from_file(f"{folder}/tokenizer.json")
    tf = PreTrainedTokenizerFast.from_pretrained(folder)
    mismatches = 0
    for text, ids, ids_special in zip(ref["texts"], ref["ids"], ref["ids_with_special"]):
        got = {
            "tokenizers": fast.encode(text, add_special_tokens=False).ids,
            "tokenizers+special": fast.encode(text, add_special_tokens=True).ids,
            "transformers": tf.encode(text, add_special_tokens=False),
            "transformers+special": tf.encode(text, add_special_tokens=True),
        }
        want = {"tokenizers": ids, "tokenizers+special": ids_special, "transformers": ids,
                "transformers+special": ids_special}
        for name in got:
            if got[name] != want[name]:
                mismatches += 1
                print(f"  {name} ids differ for {text[:60]!r}: {got[name][:12]} vs ctmllm {want[name][:12]}")
        if fast.decode(ids, skip_special_tokens=False) != text or tf.decode(ids) != text:
            mismatches += 1
            print(f"  decode differs for {text[:60]!r}")
    print(f"encoding: {len(ref['texts'])} texts x 4 ways, {mismatches} differences")
    failures += mismatches > 0

    chat = tf.apply_chat_template([{"role": "system", "content": "You read CT."},
                                   {"role": "user", "content": "<im_patch>Findings?"}],
                                  tokenize=False, add_generation_prompt=True)
    specials = (tf.bos_token, tf.eos_token, tf.pad_token, tf.bos_token_id, tf.eos_token_id, tf.pad_token_id)
    print(f"chat template equal: {chat == ref['chat']}; bos/eos/pad: {specials}")
    failures += chat != ref["chat"]
    print("OK" if failures == 0 else f"FAILED ({failures})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
