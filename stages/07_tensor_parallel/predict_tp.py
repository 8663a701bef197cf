#!/usr/bin/env python3
"""predict_tp.py: a MODEL (not a measurement) of a tensor-parallel decode step for Llama-3-8B
and Llama-3-70B shapes at TP = 1, 2, 4, 8, with NVLink- and PCIe-class all-reduce bandwidth.

    step time(K) = max(weight bytes / (K x HBM bandwidth), 2 x params x tokens / (K x FLOP/s))
                   + 2 x layers x (latency + 2(K-1)/K x tokens x dim x 2 bytes / busBW)   (K > 1)

Assumptions (all stated, none measured here):
  - one H100-class GPU per rank: 3.35 TB/s HBM, 990 TFLOP/s dense fp16, 80 GB; fp16 weights and
    activations; perfect split of the weights (the classifier and norms split too); no overlap
    of communication with compute; the KV cache's reads ignored (short contexts);
  - busBW 140 GB/s (NVLink class) or 8 GB/s (PCIe class, below the issue's < 10 GB/s), all-reduce
    latency 10 us (NVLink) / 30 us (PCIe);
  - two all-reduces per layer of tokens x dim fp16 values (stage 07's Megatron split).
Usage: predict_tp.py [--hbm-gbs 3350] [--tflops 990] [--gpu-gb 80]
"""
import argparse

MODELS = {  # name: (params, dim, layers)
    "Llama-3-8B": (8.03e9, 4096, 32),
    "Llama-3-70B": (70.6e9, 8192, 80),
}
LINKS = {"NVLink": (140e9, 10e-6), "PCIe": (8e9, 30e-6)}


def step_seconds(params, dim, layers, tokens, k, hbm, flops, bus, lat):
    compute = max(params * 2 / (k * hbm), 2 * params * tokens / (k * flops))
    comm = 0.0 if k == 1 else 2 * layers * (lat + 2 * (k - 1) / k * tokens * dim * 2 / bus)
    return compute, comm


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hbm-gbs", type=float, default=3350.0)
    ap.add_argument("--tflops", type=float, default=990.0)
    ap.add_argument("--gpu-gb", type=float, default=80.0)
    a = ap.parse_args()
    hbm, flops = a.hbm_gbs * 1e9, a.tflops * 1e12
    print("# MODEL, not a measurement: see the assumptions in predict_tp.py's docstring")
    print("| model | link | batch | TP | weights/GPU GB | compute ms | all-reduce ms | step ms | speedup vs TP=1 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, (params, dim, layers) in MODELS.items():
        for link, (bus, lat) in LINKS.items():
            for tokens in (1, 16, 128):
                base = sum(step_seconds(params, dim, layers, tokens, 1, hbm, flops, bus, lat))
                for k in (1, 2, 4, 8):
                    gb = params * 2 / k / 1e9
                    c, m = step_seconds(params, dim, layers, tokens, k, hbm, flops, bus, lat)
                    fits = "" if gb <= a.gpu_gb else " (does not fit)"
                    print(f"| {name} | {link} | {tokens} | {k} | {gb:.1f}{fits} | {c * 1e3:.2f} | {m * 1e3:.2f} | "
                          f"{(c + m) * 1e3:.2f} | {base / (c + m):.2f}x |")


if __name__ == "__main__":
    main()
