#!/usr/bin/env python3
"""Streaming overhead: decode tokens/s of one request streamed by stage08_serving (client side:
(tokens - 1) / (last token - first token), SSE over loopback) against the offline engine on the
same prompt (stage03 --json: the same span from its token times). Runs alternate, R times each;
prints medians and min-max.

    python3 stages/08_serving/stream_overhead.py --server build/stages/08_serving/stage08_serving \
        --stage03 build/stages/03_continuous_batching/stage03_continuous_batching \
        --model datasets/models/SmolLM2-135M-Instruct.Q4_1.gguf [--tokens 128] [--repeat 5]"""
import argparse
import json
import re
import statistics
import subprocess
import sys
import time
import urllib.request

PROMPT = "Once upon a time, in a small village by the sea,"


def offline(a):
    out = subprocess.run([a.stage03, "--model", a.model, "--prompt", PROMPT, "--max-new-tokens", str(a.tokens),
                          "--json"], capture_output=True, text=True, timeout=600, check=True).stdout
    t = json.loads(out[out.index("{"):])["outputs"][0]["token_time_s"]
    return (len(t) - 1) / (t[-1] - t[0])


def streamed(url, model, a):
    body = json.dumps({"model": model, "prompt": PROMPT, "max_tokens": a.tokens, "temperature": 0,
                       "stream": True}).encode()
    req = urllib.request.Request(url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
    times = []
    with urllib.request.urlopen(req, timeout=600) as r:
        for line in r:
            if line.startswith(b"data: {") and json.loads(line[6:])["choices"][0]["text"]:
                times.append(time.perf_counter())
    return (len(times) - 1) / (times[-1] - times[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--stage03", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    srv = subprocess.Popen([a.server, "--model", a.model, "--port", "0"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        m = re.search(r"http://[\d.]+:\d+", srv.stdout.readline())
        if not m:
            sys.exit("error: the server did not start")
        url = m.group(0)
        with urllib.request.urlopen(url + "/v1/models", timeout=10) as r:
            model = json.load(r)["data"][0]["id"]
        off, on = [], []
        for i in range(a.repeat):  # alternate, so a noisy neighbour hits both alike
            off.append(offline(a))
            on.append(streamed(url, model, a))
            print(f"run {i + 1}: offline {off[-1]:.1f} tok/s, streamed {on[-1]:.1f} tok/s", flush=True)
        ratios = [b / o for o, b in zip(off, on)]
        print(f"offline  median {statistics.median(off):.1f} tok/s (min {min(off):.1f}, max {max(off):.1f})")
        print(f"streamed median {statistics.median(on):.1f} tok/s (min {min(on):.1f}, max {max(on):.1f})")
        print(f"streamed / offline, per pair: median {statistics.median(ratios):.3f} "
              f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
    finally:
        srv.terminate()
        srv.wait(timeout=30)


if __name__ == "__main__":
    main()
