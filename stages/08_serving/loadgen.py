#!/usr/bin/env python3
"""Load generator for stage08_serving, like vLLM's serving benchmark: the standard library, and uvloop
where it is installed (faster, not needed).

Requests from a workload file (JSONL: prompt, max_new_tokens) arrive as a Poisson process at
each given rate, over loopback, streamed (SSE); from the client side it measures per request
TTFT (arrival -> first text), TPOT ((last - first) / (tokens - 1)), every inter-token latency
(ITL) and end-to-end latency, then p50/p90/p99, request throughput and output tokens/s per rate,
and the highest rate whose p90 TTFT and p90 TPOT meet the SLO (the bench's rule, stages/bench).

Measured as the bench measures its in-process QPS sweep, so the two can be compared:
- the arrival times are the bench's own (its seeded xorshift generator, `bench_arrivals`): the
  same requests arrive at the same moments;
- TTFT and end-to-end latency count from a request's *scheduled* arrival, as the bench's
  `token_time - arrival_s` does, not from when this client got round to sending it (a client
  that falls behind would otherwise hide its own delay: "coordinated omission").

    python3 stages/08_serving/loadgen.py --url http://127.0.0.1:8000 \
        --workload datasets/workloads/chat.jsonl --rates 1,2,4,8 [--requests 64] [--out r.json]

Bounded: at most --requests per rate, and each rate stops after --max-seconds."""
import argparse
import asyncio
import json
import math
import sys
import time
from urllib.parse import urlparse

MASK64 = (1 << 64) - 1


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def bench_arrivals(n, rate, seed=1):
    """The bench's Poisson arrival times (stages/bench/bench.cpp, worker "rate"), in seconds from
    the start: exponential gaps of mean 1/rate from its seeded xorshift64* generator, bit for bit."""
    state = (seed * 0x9E3779B97F4A7C15 + 1) & MASK64
    t, out = 0.0, []
    for _ in range(n):
        state ^= state >> 12
        state ^= (state << 25) & MASK64
        state ^= state >> 27
        u = ((state * 0x2545F4914F6CDD1D) & MASK64) >> 11
        t += -math.log(1.0 - u / 9007199254740992.0) / rate
        out.append(t)
    return out


class _StreamReader(asyncio.Protocol):
    """One streamed completion on its own connection, read as the bytes come: the event loop calls
    data_received for each read, with no coroutine switch per read (the load generator shares the
    machine with the server, and its CPU time is the engine's). A token's event is found by a byte
    search (a non-empty "text"); only the usage chunk is parsed."""

    def __init__(self, request, t0, done):
        self.request, self.t0, self.done = request, t0, done
        self.transport, self.status, self.buf = None, None, b""
        self.times, self.tokens = [], None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        now = time.perf_counter() - self.t0
        buf = self.buf + data
        if self.status is None:
            end = buf.find(b"\r\n")
            if end < 0:
                self.buf = buf
                return
            parts = buf[:end].split()
            self.status = parts[1] if len(parts) > 1 else b"?"
            if self.status != b"200":
                return self.finish(f"HTTP {self.status.decode(errors='replace')}")
        start = 0
        while True:  # one "data:" event per token, inside HTTP chunks; only the events matter
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            event, start = buf[start:end], end + 2
            at = event.find(b"data: ")
            if at < 0:
                continue
            data = event[at + 6:]
            if data.startswith(b"[DONE]"):
                return self.finish(None)
            if b'"text":"' in data and b'"text":""' not in data:
                self.times.append(now)
            if b'"usage":{' in data:
                try:
                    self.tokens = json.loads(data)["usage"]["completion_tokens"]
                except (ValueError, KeyError, TypeError) as e:
                    return self.finish(f"bad usage chunk: {e!r}")
        self.buf = buf[start:]

    def finish(self, error):
        if not self.done.done():
            self.done.set_result((error, time.perf_counter() - self.t0))
        self.transport.close()

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result((repr(exc) if exc else "stream ended early", None))


async def one_request(host, port, model, req, timeout, t0):
    """Streams one completion scheduled to arrive at perf_counter() time t0; returns (ok, ttft,
    token times relative to t0, tokens, e2e, error, send lag)."""
    body = json.dumps({"model": model, "prompt": req["prompt"], "max_tokens": req["max_new_tokens"],
                       "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}).encode()
    request = (b"POST /v1/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (host.encode(), len(body)) + body)
    lag = time.perf_counter() - t0
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    reader = _StreamReader(request, t0, done)
    try:
        await asyncio.wait_for(loop.create_connection(lambda: reader, host, port), timeout)
        # One deadline for the whole request, counted from its scheduled arrival.
        error, e2e = await asyncio.wait_for(done, max(0.001, t0 + timeout - time.perf_counter()))
    except (OSError, asyncio.TimeoutError, ValueError) as e:
        if reader.transport is not None:
            reader.transport.close()
        return False, None, reader.times, 0, None, repr(e), lag
    if error is not None:
        return False, None, reader.times, 0, None, error, lag
    times = reader.times
    return True, times[0] if times else None, times, reader.tokens or len(times), e2e, None, lag


async def _spin(running):
    """Keeps the event loop polling without sleeping while running[0] (see run_rate's busy_poll)."""
    while running[0]:
        await asyncio.sleep(0)


async def run_rate_async(host, port, model, reqs, rate, seed, max_seconds, timeout, busy_poll=False):
    arrivals = bench_arrivals(len(reqs), rate, seed)
    tasks = []
    running = [True]
    spinner = asyncio.create_task(_spin(running)) if busy_poll else None
    # Time 0 is the first arrival: the bench's engine starts its clock when its run starts and
    # its first request arrives after one gap; both sides count latency from each arrival.
    start = time.perf_counter() - arrivals[0]
    for req, at in zip(reqs, arrivals):
        await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
        if time.perf_counter() - start > max_seconds:
            break
        tasks.append(asyncio.create_task(one_request(host, port, model, req, timeout, start + at)))
    results = await asyncio.gather(*tasks)
    wall = time.perf_counter() - start
    running[0] = False
    if spinner is not None:
        await spinner
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
    for name, xs in (("ttft", ttft), ("tpot", tpot), ("itl", itl), ("e2e", e2e), ("send_lag", [r[6] for r in results])):
        for p in (50, 90, 99):
            out[f"{name}_p{p}_ms"] = ms(xs, p)
    return out


def _event_loop_factory():
    """uvloop's event loop where it is installed (Debian's python3-uvloop, which scripts/setup
    installs): it costs this client about half the CPU per read of asyncio's own loop (measured
    on 2 cores, tiny-target at 96 req/s: 0.29 s vs 0.51 s for 288 streamed requests), CPU that
    the server's engine gets instead. Else asyncio's default loop: the same figures, more CPU."""
    try:
        import uvloop
        return uvloop.new_event_loop
    except ImportError:
        return None


def event_loop_name():
    """The event loop this client runs on, for the results' header."""
    factory = _event_loop_factory()
    return "uvloop" if factory is not None else "asyncio"


def run_rate(url, model, reqs, rate, seed=1, max_seconds=120, timeout=300, slo_ttft_ms=250, slo_tpot_ms=50,
             busy_poll=False):
    """One rate: the row of figures (milliseconds), with meets_slo by the bench's rule.

    busy_poll: the event loop never sleeps (a task yields to it in a loop), so this process takes
    a whole core; for a client on a core of its own (scripts/bench_serving --pin). A client that
    sleeps in epoll must be woken for each event the server sends, and over loopback the kernel
    does that wake-up, an interrupt to the client's CPU, in the server's send: a third of the
    server's writer thread's time in a profile on the 2-core Xeon (KVM), which a client on another
    machine would not cost it. A client that never sleeps needs no wake-up."""
    u = urlparse(url)
    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        row = runner.run(run_rate_async(u.hostname, u.port or 80, model, reqs, rate, seed, max_seconds, timeout,
                                        busy_poll))
    row["meets_slo"] = row["ok"] == row["sent"] and row["ttft_p90_ms"] <= slo_ttft_ms and \
        row["tpot_p90_ms"] <= slo_tpot_ms
    return row


def served_model(url):
    import urllib.request
    with urllib.request.urlopen(url + "/v1/models", timeout=10) as r:
        return json.load(r)["data"][0]["id"]


def read_workload(path, n):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()][:n]


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
    ap.add_argument("--seed", type=int, default=1, help="the arrival generator's seed (the bench's is 1)")
    ap.add_argument("--busy-poll", action="store_true",
                    help="never sleep in the event loop (takes a core): for a client pinned to a core of its own, "
                         "so the server's sends need not wake it (see run_rate)")
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
    reqs = read_workload(a.workload, a.requests)
    model = served_model(a.url)
    rows = []
    for rate in rates:
        row = run_rate(a.url, model, reqs, rate, a.seed, a.max_seconds, a.timeout, a.slo_ttft_ms, a.slo_tpot_ms,
                       a.busy_poll)
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
