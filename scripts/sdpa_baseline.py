#!/usr/bin/env python3
"""PyTorch scaled_dot_product_attention at the prefill benchmark's shapes: the baseline of
kernels/cuda/attention_prefill (FlashAttention-2 and cuDNN backends, fp16).

Timed like kernel_harness: CUDA events, warm-up, median of many, L2 flushed before each launch;
FLOPs counted the same way (4 * b * h * s^2 * d, halved for causal). Writes one JSON line per
(backend, shape) to --json, in kernel_harness's row format, so scripts/kernel_table.py can put
the two side by side. Needs only torch (no download).

  python3 scripts/sdpa_baseline.py --json gpu-logs/kernels.jsonl [--quick]
"""
import argparse
import json
import statistics

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

HEADS, KV_HEADS, HEAD_DIM, TOKENS = 32, 8, 128, 16384


def shape_name(batch, seq, heads, kv_heads, head_dim, causal):
    """Must match describe() in kernels/harness/families/attention_prefill.cu."""
    return f"b{batch} q{seq} kv{seq} h{heads}/{kv_heads} d{head_dim} {'causal' if causal else 'full'}"


def flops(batch, seq, heads, head_dim, causal):
    full = 4.0 * batch * heads * seq * seq * head_dim
    return full * (seq + 1) / (2.0 * seq) if causal else full


def time_ms(fn, repeats=30, warmup=5):
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    flush = torch.empty(2 * l2, dtype=torch.uint8, device="cuda")
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for i in range(repeats):
        flush.fill_(i & 0xFF)
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True, help="append JSON rows to this file")
    ap.add_argument("--quick", action="store_true", help="sequence 1024 only")
    ap.add_argument("--gemm-tflops", type=float, default=0.0, help="the harness's GEMM ceiling, for the share column")
    args = ap.parse_args()
    device = torch.cuda.get_device_name(0)
    backends = {"sdpa_flash": SDPBackend.FLASH_ATTENTION, "sdpa_cudnn": SDPBackend.CUDNN_ATTENTION}
    seqs = [1024] if args.quick else [1024, 2048, 4096, 8192, 16384]
    with open(args.json, "a") as out:
        for seq in seqs:
            batch = TOKENS // seq
            for causal in (False, True):
                gen = torch.Generator(device="cuda").manual_seed(seq)
                # SDPA's layout is [batch, heads, seq, dim]; GQA K/V are expanded to all heads
                # (a view for the math; the flash backend reads the expanded tensor).
                q = torch.randn(batch, HEADS, seq, HEAD_DIM, device="cuda", dtype=torch.float16, generator=gen)
                k = torch.randn(batch, KV_HEADS, seq, HEAD_DIM, device="cuda", dtype=torch.float16, generator=gen)
                v = torch.randn_like(k)
                k = k.repeat_interleave(HEADS // KV_HEADS, dim=1)
                v = v.repeat_interleave(HEADS // KV_HEADS, dim=1)
                name = shape_name(batch, seq, HEADS, KV_HEADS, HEAD_DIM, causal)
                for label, backend in backends.items():
                    try:
                        with sdpa_kernel([backend]):
                            ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
                    except RuntimeError as e:
                        print(f"  {label:12s} {name}: not available ({str(e).splitlines()[0]})")
                        continue
                    tflops = flops(batch, seq, HEADS, HEAD_DIM, causal) / (ms * 1e-3) / 1e12
                    pct = 100.0 * tflops / args.gemm_tflops if args.gemm_tflops else 0.0
                    print(f"  {label:12s} {name:40s} {ms:9.4f} ms {tflops:8.2f} TFLOP/s")
                    out.write(json.dumps({"family": "attention_prefill", "version": label, "shape": name, "ms": ms,
                                          "value": tflops, "unit": "TFLOP/s", "ceiling_pct": pct,
                                          "device": device}) + "\n")


if __name__ == "__main__":
    main()
