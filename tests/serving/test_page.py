"""The live page (GET /) in headless Chromium (Debian's `chromium`; exit 77 without it): the page
loads with no network but the server's, sends a prompt (?send=...), shows the streamed text, which
must be the server's own greedy completion, and draws the KV block grid, one square per block.

    test_page.py --server BIN --model GGUF [--screenshot PNG]"""
import argparse
import html
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from serving_harness import SKIP, Server, check  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--screenshot")
    a = ap.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        print("skipped: no chromium (Debian: apt-get install chromium)")
        sys.exit(SKIP)
    prompt = "Once upon a time"
    with Server(a.server, a.model) as s:
        name = Path(a.model).stem
        st, want = s.request("POST", "/v1/completions", {"model": name, "prompt": prompt, "max_tokens": 64,
                                                         "temperature": 0})
        check(st == 200, f"completion: {st} {want}")
        url = f"{s.url}/?send={urllib.parse.quote(prompt)}"
        flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=8000"]
        dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
        reply = re.search(r'<div id="reply">(.*?)</div>', dom, re.S)
        check(reply is not None, f"no reply box in the page: {dom[:300]!r}")
        got = html.unescape(reply.group(1))
        check(got == want["choices"][0]["text"], f"the page shows {got!r}, the API gives {want['choices'][0]['text']!r}")
        blocks = dom.count('class="blk')
        n_blocks = s.request("GET", "/v1/engine/state")[1]["num_blocks"]
        check(blocks == n_blocks, f"the grid has {blocks} squares, the pool {n_blocks} blocks")
        check(re.search(r'id="nsteps">([1-9]\d*)<', dom), "the page shows the engine's steps")
        if a.screenshot:
            subprocess.run(flags + ["--window-size=1200,640", f"--screenshot={a.screenshot}", url],
                           capture_output=True, timeout=120)
        s.wait_idle()
    print(f"the page streamed {len(got)} characters (= the API's text) and drew {blocks} KV blocks")
    print("PASS")


if __name__ == "__main__":
    main()
