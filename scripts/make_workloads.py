#!/usr/bin/env python3
"""Generate the committed workloads datasets/workloads/*.jsonl (seeded, reproducible).

Run from the repo root (any python3 with numpy and sentencepiece, e.g. /usr/bin/python3):
    python3 scripts/make_workloads.py [--seed 7]

Each line: {"id", "prompt", "max_new_tokens", "arrival_s"} (read by common/workload.h). Prompts
are spans of held-out text (datasets/eval/heldout_*.txt), cut at word boundaries to a token
budget measured with the default models' tokenizer (datasets/models/tiny_tokenizer.model).
Every request satisfies 1 (BOS) + prompt tokens + max_new_tokens <= CTX (256, the models'
context). Arrival times: a Poisson process (exponential gaps) at the given rate.

  chat.jsonl   64 requests, chat-like: prompt and output lengths drawn from log-normal
               distributions, the long-tailed shape of the ShareGPT conversations used by the
               vLLM paper (Kwon et al., SOSP 2023, sec. 6.1, fig. 11), where outputs are on
               average longer than prompts; scaled down to a 256-token context (see
               datasets/README.md for the parameters and how far to trust them). 4 req/s.
  short.jsonl  32 identical-shape requests: 16-token prompts, 32 new tokens, all at t = 0
               (offline throughput runs).
  long.jsonl   16 long-context requests: ~192-token prompts, 48 new tokens, 0.5 req/s.
  shared_prefix.jsonl
               48 requests for prefix caching: every prompt is the same "system prompt" (one
               span of ~96 tokens with BOS, chosen once) + " " + a distinct span of 16-32 tokens
               (uniform), so ~80% of each prompt is shared; the prefix tokenizes to the same ids
               at the start of every prompt (checked). max_new_tokens uniform in [16, 48]. 4 req/s.
               Drawn from its own generator (seed + 100) so the other files are unchanged.
  batch16.jsonl
               16 requests of ~32-token prompts, 64 new tokens each, all at t = 0: the batching
               workload of scripts/bench_threads (batch 1, 4, 16 against stage 01 on SmolLM2).
               Its own generator (seed + 200).
  copy.jsonl   8 requests "Repeat the following passage exactly, word for word: <passage>", the
               passage whole sentences of held-out text (48-96 tokens), 128 new tokens, all at t = 0: a workload whose
               output copies its prompt, where prompt lookup (stage 06) pays. Meant for an
               instruction-tuned model with --chat (SmolLM2-135M-Instruct). Its own generator
               (seed + 300).
"""
import argparse
import json
from pathlib import Path

import numpy as np
import sentencepiece as spm

CTX = 256
SP = spm.SentencePieceProcessor(model_file="datasets/models/tiny_tokenizer.model")
DOCS = [l for f in ("datasets/eval/heldout_kjv.txt", "datasets/eval/heldout_austen.txt")
        for l in Path(f).read_text(encoding="utf-8").split("\n") if l]
WORDS = [d.split(" ") for d in DOCS]
COPY_INSTRUCTION = "Repeat the following passage exactly, word for word: "


def n_tokens(text):
    return 1 + len(SP.encode(text))  # with BOS, as the engine encodes a prompt


def prompt_of(rng, budget):
    """A span of held-out text starting at a random word, as many words as fit in `budget`
    tokens (BOS included); long spans may run across documents."""
    d = int(rng.integers(len(WORDS)))
    w = int(rng.integers(max(1, len(WORDS[d]) - 8)))
    words = []
    while True:
        if w >= len(WORDS[d]):
            d, w = (d + 1) % len(WORDS), 0
        cand = words + [WORDS[d][w]]
        if n_tokens(" ".join(cand)) > budget:
            break
        words, w = cand, w + 1
    text = " ".join(words)
    assert words and n_tokens(text) <= budget
    return text


def sentence_end(word):
    return word.endswith((".", "!", "?")) and word not in ("Mr.", "Mrs.", "Dr.", "St.")


def passage_of(rng, budget, least):
    """Whole sentences of one held-out document, from a sentence's start, as many as fit in
    `budget` tokens (BOS included) and at least `least`: a passage that reads as a passage."""
    while True:
        d = int(rng.integers(len(WORDS)))
        starts = [0] + [i + 1 for i, w in enumerate(WORDS[d][:-1]) if sentence_end(w)]
        w = starts[int(rng.integers(len(starts)))]
        words, best = [], None
        for word in WORDS[d][w:]:
            words.append(word)
            if n_tokens(" ".join(words)) > budget:
                break
            if sentence_end(word):
                best = " ".join(words)
        if best and n_tokens(best) >= least and best[0].isupper():
            return best


def arrivals(rng, n, rate):
    if rate <= 0:
        return [0.0] * n
    return [round(float(t), 4) for t in np.cumsum(rng.exponential(1.0 / rate, size=n))]


def write(name, reqs):
    path = Path("datasets/workloads") / f"{name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in reqs:
            assert n_tokens(r["prompt"]) + r["max_new_tokens"] <= CTX, r
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    p = [n_tokens(r["prompt"]) for r in reqs]
    o = [r["max_new_tokens"] for r in reqs]
    print(f"{path}: {len(reqs)} requests, prompt tokens mean {np.mean(p):.1f} median {np.median(p):.0f} "
          f"max {max(p)}, max_new_tokens mean {np.mean(o):.1f} median {np.median(o):.0f} max {max(o)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)

    # chat: log-normal prompt (median 40 tokens) and output (median 64 tokens) lengths, sigma 0.8
    # in log space: a long right tail, output ~1.6x the prompt at the median. Clipped to the context.
    n = 64
    t = arrivals(rng, n, 4.0)
    reqs = []
    for i in range(n):
        p_len = int(np.clip(round(rng.lognormal(np.log(40), 0.8)), 8, 160))
        o_len = int(np.clip(round(rng.lognormal(np.log(64), 0.8)), 4, CTX - p_len))
        prompt = prompt_of(rng, p_len)
        o_len = min(o_len, CTX - n_tokens(prompt))
        reqs.append({"id": f"chat-{i:03d}", "prompt": prompt, "max_new_tokens": o_len, "arrival_s": t[i]})
    write("chat", reqs)

    write("short", [{"id": f"short-{i:03d}", "prompt": prompt_of(rng, 16), "max_new_tokens": 32, "arrival_s": 0.0}
                    for i in range(32)])

    t = arrivals(rng, 16, 0.5)
    write("long", [{"id": f"long-{i:03d}", "prompt": prompt_of(rng, 192), "max_new_tokens": 48, "arrival_s": t[i]}
                   for i in range(16)])

    # shared_prefix: its own generator, created after the others, so their streams are untouched.
    rng = np.random.default_rng(a.seed + 100)
    n = 48
    prefix = prompt_of(rng, 96)
    pre_ids = SP.encode(prefix)
    t = arrivals(rng, n, 4.0)
    reqs, seen = [], {prefix}
    for i in range(n):
        s_len = int(rng.integers(16, 33))  # suffix tokens (no BOS of its own)
        o_len = int(rng.integers(16, 49))
        while True:
            suffix = prompt_of(rng, s_len + 1)
            full = prefix + " " + suffix
            if suffix not in seen and SP.encode(full)[:len(pre_ids)] == pre_ids:
                break
        seen.add(suffix)
        assert SP.encode(full)[:len(pre_ids)] == pre_ids
        reqs.append({"id": f"shared-{i:03d}", "prompt": full, "max_new_tokens": o_len, "arrival_s": t[i]})
    write("shared_prefix", reqs)
    share = [n_tokens(prefix) / n_tokens(r["prompt"]) for r in reqs]
    print(f"  shared prefix {n_tokens(prefix)} tokens (with BOS); shared share of each prompt "
          f"mean {np.mean(share):.1%} min {min(share):.1%} max {max(share):.1%}")
    # batch16: its own generator too (seed + 200).
    rng = np.random.default_rng(a.seed + 200)
    write("batch16", [{"id": f"batch16-{i:03d}", "prompt": prompt_of(rng, 32), "max_new_tokens": 64, "arrival_s": 0.0}
                      for i in range(16)])
    # copy: its own generator too (seed + 300).
    rng = np.random.default_rng(a.seed + 300)
    write("copy", [{"id": f"copy-{i:03d}", "prompt": COPY_INSTRUCTION + passage_of(rng, 96, 48), "max_new_tokens": 128,
                    "arrival_s": 0.0} for i in range(8)])


if __name__ == "__main__":
    main()
