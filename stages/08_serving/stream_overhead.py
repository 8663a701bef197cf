#!/usr/bin/env python3
"""Streaming overhead: decode tokens/s of one request streamed by stage08_serving (client side,
SSE over loopback) against the offline engine on the same prompt (stage03 --json, its token
times). Both rates are taken over the same span, tokens --skip .. the last, so a cold first step
(the offline process is fresh, the server is not) does not count. The runs come in interleaved
pairs (offline then streamed, then streamed then offline, ...), so a noisy neighbour hits both
alike; the figure is the median of the per-pair ratios, with min and max.

    python3 stages/08_serving/stream_overhead.py --server build/stages/08_serving/stage08_serving \\
        --stage03 build/stages/03_continuous_batching/stage03_continuous_batching \\
        --model datasets/models/SmolLM2-135M-Instruct.Q4_1.gguf [--tokens 128] [--repeat 5]"""
import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlparse

PROMPT = "Once upon a time, in a small village by the sea,"


def rate(times, skip):
    """Tokens per second from token `skip` to the last."""
    if len(times) < skip + 2:
        raise RuntimeError(f"only {len(times)} tokens: too few to skip {skip} and time the rest")
    span = times[-1] - times[skip]
    if span <= 0:  # every timed token came in one read (a tiny model on a busy machine): no rate to give
        raise RuntimeError(f"tokens {skip} to {len(times) - 1} arrived at the same instant: too fast to time; "
                           f"use more tokens or a larger model")
    return (len(times) - 1 - skip) / span


def offline(stage03, model, tokens, skip, engine_cpus=None):
    out = subprocess.run([stage03, "--model", model, "--prompt", PROMPT, "--max-new-tokens", str(tokens), "--json"],
                         capture_output=True, text=True, timeout=600, check=True,
                         preexec_fn=on_cpus(engine_cpus)).stdout
    return rate(json.loads(out[out.index("{"):])["outputs"][0]["token_time_s"], skip)


def streamed(url, served, tokens, skip):
    """Client-side decode tokens/s of one streamed request, tokens `skip` .. the last."""
    return rate(stream_times(url, served, tokens), skip)


def stream_times(url, served, tokens):
    """The arrival time of each token's event (perf_counter seconds) for one streamed request.
    One event per token is what the server sends for this prompt's text; the usage chunk says
    how many tokens there were, and a mismatch (a token that completed no character) is an error.

    The client is as cheap as a client can be, since on 2 cores its CPU time is taken from the
    engine's threads: a plain socket, one recv per wake-up, and per event only a byte search
    (the time of a token is when the read that holds its event returned). JSON is parsed once, for
    the usage chunk at the end. urllib's chunked-transfer reader and a json.loads per event cost
    several times as much per token, which the figure would otherwise charge to the server."""
    u = urlparse(url)
    body = json.dumps({"model": served, "prompt": PROMPT, "max_tokens": tokens, "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}}).encode()
    times, buf, raw = [], b"", []
    with socket.create_connection((u.hostname, u.port), timeout=600) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (u.hostname.encode(), len(body)) + body)
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            now = time.perf_counter()
            raw.append(chunk)
            buf += chunk
            # Events are "data: {...}\n\n"; a token's event has a non-empty "text"; the chunked
            # framing between events does not matter here.
            while True:
                end = buf.find(b"\n\n")
                if end < 0:
                    break
                event, buf = buf[:end], buf[end + 2:]
                if b'"text":"' in event and b'"text":""' not in event:
                    times.append(now)
    text = b"".join(raw)
    if not text.startswith(b"HTTP/1.1 200"):
        raise RuntimeError("the streamed request failed: " + text[:200].decode(errors="replace"))
    n = None
    for line in text.split(b"\n"):
        if line.startswith(b"data: {") and b'"usage"' in line:
            usage = json.loads(line[6:]).get("usage")
            n = usage["completion_tokens"] if usage else n
    if n is not None and n not in (len(times), len(times) + 1):  # + 1: an end-of-text token has no text
        raise RuntimeError(f"{len(times)} text events for {n} tokens: the rate would be wrong")
    return times


def on_cpus(cpus):
    """A subprocess preexec_fn that runs the child on these CPUs (None: wherever it may run)."""
    return None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))


def measure(server, stage03, model, tokens=128, repeat=5, skip=8, log=print, engine_cpus=None):
    """The pairs and their medians, as a dict (tokens/s). engine_cpus: the CPUs the server and the
    offline engine run on (the caller pins itself, the client, elsewhere); None: anywhere."""
    srv = subprocess.Popen([server, "--model", model, "--port", "0"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, preexec_fn=on_cpus(engine_cpus))
    try:
        m = re.search(r"http://[\d.]+:\d+", srv.stdout.readline())
        if not m:
            raise RuntimeError("the server did not start")
        url = m.group(0)
        with urllib.request.urlopen(url + "/v1/models", timeout=10) as r:
            served = json.load(r)["data"][0]["id"]
        stream_times(url, served, min(tokens, skip + 2))  # the server's first request warms it up
        off, on = [], []
        for i in range(repeat):
            if i % 2 == 0:
                off.append(offline(stage03, model, tokens, skip, engine_cpus))
                on.append(streamed(url, served, tokens, skip))
            else:
                on.append(streamed(url, served, tokens, skip))
                off.append(offline(stage03, model, tokens, skip, engine_cpus))
            log(f"pair {i + 1}: offline {off[-1]:.1f} tok/s, streamed {on[-1]:.1f} tok/s, ratio {on[-1] / off[-1]:.3f}")
    finally:
        srv.terminate()
        srv.wait(timeout=30)
    ratios = [b / o for o, b in zip(off, on)]
    return {"model": model, "prompt": PROMPT, "tokens": tokens, "skip": skip, "pairs": repeat,
            "offline_tok_s": off, "streamed_tok_s": on, "ratios": ratios,
            "offline_median": statistics.median(off), "streamed_median": statistics.median(on),
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True)
    ap.add_argument("--stage03", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", type=int, default=128, help="tokens per request (default 128)")
    ap.add_argument("--repeat", type=int, default=5, help="pairs of runs (default 5)")
    ap.add_argument("--skip", type=int, default=8, help="tokens left out of the rate at the start (default 8)")
    a = ap.parse_args()
    if a.repeat < 1 or a.skip < 0 or a.tokens < a.skip + 2:
        sys.exit(f"error: --repeat {a.repeat} --skip {a.skip} --tokens {a.tokens}: need repeat >= 1 and "
                 "tokens >= skip + 2")
    r = measure(a.server, a.stage03, a.model, a.tokens, a.repeat, a.skip)
    print(f"offline  median {r['offline_median']:.1f} tok/s (min {min(r['offline_tok_s']):.1f}, "
          f"max {max(r['offline_tok_s']):.1f})")
    print(f"streamed median {r['streamed_median']:.1f} tok/s (min {min(r['streamed_tok_s']):.1f}, "
          f"max {max(r['streamed_tok_s']):.1f})")
    print(f"streamed / offline, per pair: median {r['ratio_median']:.3f} (min {r['ratio_min']:.3f}, "
          f"max {r['ratio_max']:.3f})")


if __name__ == "__main__":
    main()
