#!/usr/bin/env python3
"""Load generator for stage08_serving, like vLLM's serving benchmark, standard library only.

Requests from a workload file (JSONL: prompt, max_new_tokens) arrive as a Poisson process at
each given rate, over loopback, streamed (SSE); from the client side it measures per request
TTFT (send -> first text), TPOT ((last - first) / (tokens - 1)), every inter-token latency (ITL)
and end-to-end latency, then p50/p90/p99, request throughput and output tokens/s per rate, and the
highest rate whose p90 TTFT and p90 TPOT meet the SLO (the bench's rule, stages/bench).

    python3 stages/08_serving/loadgen.py --url http://127.0.0.1:8000 \
        --workload datasets/workloads/chat.jsonl --rates 1,2,4,8 [--requests 64] [--out r.json]

Bounded: at most --requests per rate, and each rate stops after --max-seconds."""
import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from urllib.parse import urlparse


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


async def one_request(host, port, model, req, timeout):
    """Streams one completion; returns (ok, ttft, token times relative to send, tokens, e2e, error)."""
    body = json.dumps({"model": model, "prompt": req["prompt"], "max_tokens": req["max_new_tokens"],
                       "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}).encode()
    t0 = time.perf_counter()
    times, tokens = [], None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (host.encode(), len(body)) + body)
        await writer.drain()
        status = (await asyncio.wait_for(reader.readline(), timeout)).split()
        if len(status) < 2 or status[1] != b"200":
            writer.close()
            return False, None, [], 0, None, f"HTTP {status[1:2]}"
        buf = b""
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                break
            now = time.perf_counter() - t0
            buf += chunk
            # One "data:" event per token, in HTTP chunks; only the events matter here.
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                line = event[event.find(b"data: "):]
                if not line.startswith(b"data: "):
                    continue
                data = line[6:].strip()
                if data == b"[DONE]":
                    writer.close()
                    e2e = time.perf_counter() - t0
                    return True, times[0] if times else None, times, tokens or len(times), e2e, None
                obj = json.loads(data)
                if obj.get("usage"):
                    tokens = obj["usage"]["completion_tokens"]
                if obj.get("choices") and obj["choices"][0].get("text"):
                    times.append(now)
        writer.close()
        return False, None, times, 0, None, "stream ended early"
    except (OSError, asyncio.TimeoutError, ValueError) as e:
        return False, None, times, 0, None, repr(e)


async def run_rate(host, port, model, reqs, rate, seed, max_seconds, timeout):
    rng = random.Random(seed)
    tasks, t = [], 0.0
    start = time.perf_counter()
    for req in reqs:
        await asyncio.sleep(max(0.0, start + t - time.perf_counter()))
        if time.perf_counter() - start > max_seconds:
            break
        tasks.append(asyncio.create_task(one_request(host, port, model, req, timeout)))
        t += rng.expovariate(rate)
    results = await asyncio.gather(*tasks)
    wall = time.perf_counter() - start
    ok = [r for r in results if r[0]]
    ttft = [r[1] for r in ok if r[1] is not None]
    tpot = [(r[2][-1] - r[2][0]) / (r[3] - 1) for r in ok if r[3] > 1 and len(r[2]) > 1]
    itl = [b - a for r in ok for a, b in zip(r[2], r[2][1:])]
    e2e = [r[4] for r in ok]
    ms = lambda xs, p: round(1000 * percentile(xs, p), 2)  # noqa: E731
    out = {"rate": rate, "sent": len(results), "ok": len(ok), "wall_s": round(wall, 3),
           "request_throughput": round(len(ok) / wall, 3),
           "output_tokens_per_s": round(sum(r[3] for r in ok) / wall, 1),
           "errors": sorted({r[5] for r in results if not r[0]})[:5]}
    for name, xs in (("ttft", ttft), ("tpot", tpot), ("itl", itl), ("e2e", e2e)):
        for p in (50, 90, 99):
            out[f"{name}_p{p}_ms"] = ms(xs, p)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--workload", required=True)
    ap.add_argument("--rates", required=True, help="comma-separated request rates (req/s)")
    ap.add_argument("--requests", type=int, default=64, help="requests per rate, at most")
    ap.add_argument("--max-seconds", type=float, default=120, help="stop sending at a rate after this long")
    ap.add_argument("--timeout", type=float, default=300, help="seconds one request may take")
    ap.add_argument("--slo-ttft-ms", type=float, default=250)
    ap.add_argument("--slo-tpot-ms", type=float, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the results as JSON here")
    a = ap.parse_args()
    u = urlparse(a.url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("error: --url: the load generator talks to loopback only")
    try:
        rates = [float(x) for x in a.rates.split(",")]
        if any(r <= 0 for r in rates):
            raise ValueError
    except ValueError:
        sys.exit(f"error: --rates {a.rates!r}: expected positive numbers separated by commas")
    with open(a.workload) as f:
        reqs = [json.loads(line) for line in f if line.strip()][:a.requests]
    import urllib.request
    with urllib.request.urlopen(a.url + "/v1/models", timeout=10) as r:
        model = json.load(r)["data"][0]["id"]
    rows = []
    for rate in rates:
        row = asyncio.run(run_rate(u.hostname, u.port or 80, model, reqs, rate, a.seed, a.max_seconds, a.timeout))
        row["meets_slo"] = row["ok"] == row["sent"] and row["ttft_p90_ms"] <= a.slo_ttft_ms and \
            row["tpot_p90_ms"] <= a.slo_tpot_ms
        rows.append(row)
        print(f"rate {rate:g}/s: {row['ok']}/{row['sent']} ok, {row['request_throughput']} req/s, "
              f"{row['output_tokens_per_s']} tok/s, TTFT p50/p90/p99 {row['ttft_p50_ms']}/{row['ttft_p90_ms']}/"
              f"{row['ttft_p99_ms']} ms, TPOT p50/p90 {row['tpot_p50_ms']}/{row['tpot_p90_ms']} ms, "
              f"ITL p99 {row['itl_p99_ms']} ms, E2E p50 {row['e2e_p50_ms']} ms"
              f"{'' if row['meets_slo'] else '  (misses the SLO)'}", flush=True)
    best = max((r["rate"] for r in rows if r["meets_slo"]), default=None)
    print(f"highest rate meeting p90 TTFT <= {a.slo_ttft_ms:g} ms and p90 TPOT <= {a.slo_tpot_ms:g} ms: "
          f"{best if best is not None else 'none'}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"url": a.url, "model": model, "workload": a.workload, "slo_ttft_ms": a.slo_ttft_ms,
                       "slo_tpot_ms": a.slo_tpot_ms, "rates": rows, "qps_at_slo": best}, f, indent=1)


if __name__ == "__main__":
    main()
