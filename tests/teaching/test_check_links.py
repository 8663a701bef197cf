#!/usr/bin/env python3
"""ctest: scripts/check_links on small fake trees.

- a missing file, a missing heading anchor (in the same file or another) and a link that leaves
  the repository are each reported with file:line, exit code 1;
- GitHub-style slugs (punctuation dropped, markup dropped, repeated headings numbered), links
  in code (fenced or inline) ignored, URLs not fetched: a tree of good links passes;
- in HTML, a missing file or a missing id is reported; Doxygen's summary-bar anchors are not;
- a document named in a source comment that the repository lacks is reported.
"""

import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOL = ROOT / "scripts" / "check_links"
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAILED: {what}")


def tree(base, files):
    base.mkdir(parents=True)
    for rel, text in files.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_text(text)
    return base


def run(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True)


GOOD_MD = """# Top

## Numbers on this machine (AMD, `2` cores)

## Step 1: the `KvCache`, drawn

## Repeat

## Repeat

See [below](#numbers-on-this-machine-amd-2-cores), [the cache](#step-1-the-kvcache-drawn),
[again](#repeat-1), [the other page](sub/other.md#a-heading), ![plot](img.png), [a folder](sub),
[a site](https://example.org/nothing#here) and <img src="img.png">.

```sh
see [not a link](missing-in-code.md)
```

Inline `[not a link](missing-inline.md)` either.
"""

with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    good = tree(tmp / "good", {"README.md": GOOD_MD, "img.png": "x", "sub/other.md": "# A heading!\n"})
    r = run("--root", good)
    check(r.returncode == 0, f"good tree passes: {r.stdout}{r.stderr}")

    bad_cases = {
        "missing file": ("see [x](nope.md)\n", "README.md:1: nope.md: no such file"),
        "missing anchor": ("# Title\n\n[x](#titel)\n", "README.md:3: #titel: no heading with the anchor #titel"),
        "anchor in another file": ("[x](sub/other.md#b)\n", "README.md:1: sub/other.md#b: no heading"),
        "outside the repository": ("[x](../outside.md)\n", "README.md:1: ../outside.md: points outside"),
        "image": ("![plot](plots/p.png)\n", "README.md:1: plots/p.png: no such file"),
    }
    for name, (text, want) in bad_cases.items():
        base = tree(tmp / name.replace(" ", "_"), {"README.md": text, "sub/other.md": "# A\n"})
        (tmp / "outside.md").write_text("# outside\n")
        r = run("--root", base)
        check(r.returncode == 1 and want in r.stdout, f"{name}: exit 1 and '{want}': {r.returncode} {r.stdout!r}")

    # A document cited in a comment must exist (checked in git checkouts: the tracked files).
    cited = "DESIGN" + ".md"  # not spelled out here, or this file would cite it
    repo = tree(tmp / "cites", {"README.md": "# x\n", "src/a.cpp": f"// see {cited} and README.md\n"})
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    if subprocess.run(git[:3] + ["init", "-q"]).returncode == 0:
        subprocess.run(git + ["add", "."], check=True)
        r = run("--root", repo)
        check(r.returncode == 1 and f"src/a.cpp:1: {cited}: names a document" in r.stdout and
              "README.md: names" not in r.stdout, f"cited document: {r.stdout!r}")

    site = tree(tmp / "site", {
        "index.html": '<div class="summary"><a href="#nested-classes">Classes</a></div>\n'
                      '<a href="page.html#here">ok</a>\n<img src="missing.png">\n<a href="page.html#gone">x</a>\n'
                      '<a href="https://example.org">ext</a>\n',
        "page.html": '<h2><a id="here"></a>Here</h2>\n',
    })
    md_root = tree(tmp / "html_md", {"README.md": "# x\n"})
    r = run("--root", md_root, "--html", site)
    check(r.returncode == 1, f"html: exit 1: {r.returncode}")
    check("missing.png: no such file" in r.stdout, f"html: missing image reported: {r.stdout!r}")
    check("page.html#gone: no id or name 'gone'" in r.stdout, f"html: missing id reported: {r.stdout!r}")
    check("page.html#here" not in r.stdout and "nested-classes" not in r.stdout,
          f"html: good links and Doxygen's summary bar not reported: {r.stdout!r}")
    check(run("--root", md_root, "--html", tmp / "no-such-site").returncode == 2, "html: missing folder is exit 2")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
