"""Extra text-metric references for tests/eval: tests/fixtures/metrics/metric_cases.json.

Complements text_metrics.json (made by gen_fixtures.py, section metrics) with the options and inputs
it does not cover: 13a tokenizer outputs, lowercase, the four BLEU smoothing methods, effective
order, several references, chrF sentence scores, chrF++, eps smoothing, white space, and ROUGE on
text with punctuation, digits and non-ASCII letters.

    pip install sacrebleu==2.6.0 torchmetrics rouge-score
    python tests/tools/gen_metric_fixtures.py tests/fixtures/metrics/metric_cases.json
"""
import json
import sys

import sacrebleu
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
from torchmetrics.text.rouge import ROUGEScore

TEXTS = [
    "The liver is normal in size. No focal lesion.",
    "A 2.3 cm cyst (left kidney), 3-4 mm stones; see fig. 2.",
    "Lesion of 1,5 cm, grade-2, \"stable\" & <unchanged> vs. prior.",
    "&quot;Quoted&quot; &amp; &lt;tag&gt; <skipped> text",
    "hyphen-\nated line\nbreak",
    "Ünïcödé lèsion — in the Σπλήν, ПЕЧЕНЬ and 肝臓.",
    "non\u00a0breaking\u2003spaces\u3000and\ttabs  ",
    "KELVIN \u212a and \u0130stanbul ÀÉÎÕÜ",
    "Mixed CASE Report With Pleural Effusion.",
    "",
    "   ",
    "...",
    "1.5.2018, 10,000 and .5 and 5. and ,x",
    "it's the patient's 2nd CT: {a} [b] ~c~ `d` ^e^ _f_ |g| $h$ #i# @j@ %k% *l* +m+ =n= !o! ?p?",
]

PAIRS = [
    ("The liver is normal in size. No focal lesion.", ["The liver is normal in size and shape, with no focal lesion."]),
    ("Mixed CASE Report With Pleural Effusion.", ["mixed case report with pleural effusion."]),
    ("A 2.3 cm cyst in the left kidney.", ["A cyst measuring 2.3 cm is seen in the left kidney.", "Left renal cyst, 2.3 cm."]),
    ("Ünïcödé lèsion in the Σπλήν.", ["ünïcödé lèsion in the σπλήν."]),
    ("No pleural effusion.", ["Small bilateral pleural effusions.", "No effusion."]),
    ("", ["The spleen is normal."]),
    ("The spleen is normal.", [""]),
    ("", [""]),
    ("Normal.", ["Normal study."]),
    ("Heart heart heart heart.", ["The heart is normal in size."]),
    ("Liver, spleen, pancreas: unremarkable (normal)!", ["Liver spleen pancreas unremarkable normal"]),
]


def bleu_case(h, refs, **kw):
    return BLEU(**kw).sentence_score(h, refs).score


def main(out):
    tok = Tokenizer13a()
    res = {"sacrebleu_version": sacrebleu.__version__, "tokenize_13a": [[t, tok(t.rstrip())] for t in TEXTS],
           "lowercase": [[t, t.lower()] for t in TEXTS]}
    bleu = []
    for h, refs in PAIRS:
        bleu.append({"hyp": h, "refs": refs, "sentence_default": sacrebleu.sentence_bleu(h, refs).score,
                     "sentence_lowercase": sacrebleu.sentence_bleu(h, refs, lowercase=True).score,
                     "none": bleu_case(h, refs, smooth_method="none"),
                     "floor": bleu_case(h, refs, smooth_method="floor"),
                     "floor_0.5": bleu_case(h, refs, smooth_method="floor", smooth_value=0.5),
                     "add-k": bleu_case(h, refs, smooth_method="add-k"),
                     "exp_effective": bleu_case(h, refs, smooth_method="exp", effective_order=True),
                     "exp_order2": bleu_case(h, refs, max_ngram_order=2)})
    res["bleu"] = bleu
    hyps = [h for h, _ in PAIRS]
    streams = [[refs[k] if k < len(refs) else refs[0] for _, refs in PAIRS] for k in range(2)]
    res["corpus"] = {"hyps": hyps, "ref_streams": streams,
                     "bleu": sacrebleu.corpus_bleu(hyps, streams).score,
                     "bleu_one_stream": sacrebleu.corpus_bleu(hyps, streams[:1]).score,
                     "bleu_lowercase": sacrebleu.corpus_bleu(hyps, streams, lowercase=True).score,
                     "chrf": sacrebleu.corpus_chrf(hyps, streams).score,
                     "chrf_plus_plus": sacrebleu.corpus_chrf(hyps, streams, word_order=2).score}
    chrf = []
    for h, refs in PAIRS:
        chrf.append({"hyp": h, "refs": refs, "default": sacrebleu.sentence_chrf(h, refs).score,
                     "plus_plus": sacrebleu.sentence_chrf(h, refs, word_order=2).score,
                     "eps": sacrebleu.sentence_chrf(h, refs, eps_smoothing=True).score,
                     "whitespace": CHRF(whitespace=True).sentence_score(h, refs).score,
                     "lowercase": CHRF(lowercase=True).sentence_score(h, refs).score,
                     "beta1_order3": CHRF(beta=1, char_order=3).sentence_score(h, refs).score})
    res["chrf"] = chrf
    rs = ROUGEScore(rouge_keys=("rouge1", "rouge2", "rougeL"))
    res["rouge"] = [{"hyp": h, "ref": refs[0], **{k: float(v) for k, v in rs(h, refs[0]).items()}} for h, refs in PAIRS]
    with open(out, "w", encoding="utf-8") as f:
        json.dump(res, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main(sys.argv[1])
