#!/usr/bin/env python3
"""The baseline users know: Hugging Face transformers `generate()` on a randomly initialised
LlamaForCausalLM of the same shape as stage 04's synthetic model, on the same scaled chat
workload (the prompt and output lengths stage04_synthetic recorded in its JSON). No download.

How HF is batched: requests in workload order, `--batch` at a time, prompts left-padded to the
longest in the batch, greedy, every row generating the batch's largest max_new_tokens
(min_new_tokens = max_new_tokens, so a random model's EOS cannot end rows early). generate()
cannot stop a row at its own max_new_tokens or admit a new request mid-batch: that is static
batching, stage 02's scheme. Throughput counts only the tokens the requests asked for, the same
count stage 04 reports.

  python3 scripts/hf_baseline.py --from gpu-logs/stage04-llama3-8b.json --json gpu-logs/hf.json
"""
import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

CONFIGS = {
    "llama3-8b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                      intermediate_size=14336, tie_word_embeddings=False),
    "llama3.2-1b": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                        intermediate_size=8192, tie_word_embeddings=True),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="src", required=True, help="stage04_synthetic's JSON (model and chat lengths)")
    ap.add_argument("--json", required=True, help="write the result here")
    ap.add_argument("--batch", type=int, default=0, help="HF batch size (default: stage 04's batch cap)")
    args = ap.parse_args()
    ours = json.load(open(args.src))
    chat = ours["chat"]
    batch = args.batch or chat["batch"]
    cfg = LlamaConfig(vocab_size=128256, max_position_embeddings=32768, rope_theta=500000.0, rms_norm_eps=1e-5,
                      **CONFIGS[ours["model"]])
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.float16).eval()
    lengths = chat["lengths"]
    gen = torch.Generator(device="cuda").manual_seed(0)

    def run_batch(items):
        longest = max(p for p, _ in items)
        new = max(m for _, m in items)
        ids = torch.full((len(items), longest), 0, dtype=torch.long, device="cuda")
        mask = torch.zeros_like(ids)
        for i, (p, _) in enumerate(items):
            ids[i, longest - p:] = torch.randint(1, cfg.vocab_size, (p,), device="cuda", generator=gen)
            mask[i, longest - p:] = 1
        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                       pad_token_id=0)

    run_batch(lengths[:1])  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(0, len(lengths), batch):
        run_batch(lengths[i:i + batch])
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    useful = sum(m for _, m in lengths)
    result = {"model": ours["model"], "device": torch.cuda.get_device_name(0), "batch": batch, "requests": len(lengths),
              "tokens": useful, "seconds": seconds, "tokens_per_s": useful / seconds,
              "transformers": __import__("transformers").__version__, "torch": torch.__version__,
              "stage04_tokens_per_s": chat["tokens_per_s"], "ratio": chat["tokens_per_s"] / (useful / seconds)}
    json.dump(result, open(args.json, "w"), indent=2)
    print(f"HF generate(): {useful} tokens in {seconds:.1f} s = {useful / seconds:.1f} tokens/s; "
          f"stage 04: {chat['tokens_per_s']:.1f} tokens/s; ratio {result['ratio']:.1f}x")


if __name__ == "__main__":
    main()
