#!/usr/bin/python3
"""Train the committed default models: a BPE tokenizer and two Llama models that share it.

Needs Debian's python3-torch, python3-sentencepiece, python3-numpy, python3-matplotlib and
libopenblas0-pthread: Debian's torch calls the system libblas.so.3, which is the slow reference
BLAS unless OpenBLAS provides it (about 6 vs 175 GFLOP/s on 2 cores here).
Run from the repo root, after scripts/make_corpus (CPU is enough):
    /usr/bin/python3 scripts/train_tiny.py --time-budget-minutes 40
    python3 scripts/export_tiny.py          # pyenv python with `gguf`: writes the GGUF files

The architecture is exactly what the engine computes (tests/reference/forward_numpy.py):
RMSNorm, interleaved RoPE (pair (2i, 2i+1) rotated by pos * theta^(-2i/head_dim)), causal
grouped-query attention scaled by 1/sqrt(head_dim), SwiGLU MLP, final RMSNorm, classifier tied
to the token embedding, no biases.

The time budget is split between the target (--target-share) and the draft. Each model's
learning-rate schedule (warmup + cosine) is planned in steps: after a few timed steps the
script fixes the number of steps that fits the model's share of the budget, and stops early
only if the budget runs out. Passing --target-steps/--draft-steps (the card records the values
of the committed run) replays the same schedule without timing, i.e. the run is reproducible
from the seed.

Writes (all under the repo):
  datasets/models/tiny_tokenizer.model        the sentencepiece model
  build/tiny_export/{target,draft}.npz        weights (float32; the target's rounded to fp16)
                                              + config + vocabulary, for export_tiny.py
  datasets/test/golden_tiny-{target,draft}.json   teacher-forced logits (float64 torch forward)
  datasets/eval/ppl_reference.json            the perplexity check's windows, token ids, values
  datasets/train_loss.png, datasets/train_log.json
"""
import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
import torch.nn.functional as F

VOCAB = 2048
CTX = 256
TARGET = dict(dim=256, n_layers=6, n_heads=8, n_kv_heads=2, hidden=704, ctx=CTX, theta=10000.0, eps=1e-5)
DRAFT = dict(dim=96, n_layers=2, n_heads=4, n_kv_heads=2, hidden=256, ctx=CTX, theta=10000.0, eps=1e-5)
TOKENIZER = "datasets/models/tiny_tokenizer.model"
EVAL_FILES = ["datasets/eval/heldout_kjv.txt", "datasets/eval/heldout_austen.txt"]
# The C++ perplexity check: the fewest leading documents of each held-out file that fill
# PPL_WINDOWS_PER_FILE windows of PPL_WINDOW tokens, tokenized as in training.
PPL_WINDOW = 256
PPL_WINDOWS_PER_FILE = 8


# ---------------------------------------------------------------------------- tokenizer
def train_tokenizer(corpus, seed):
    Path(TOKENIZER).parent.mkdir(parents=True, exist_ok=True)
    spm.set_random_generator_seed(seed)
    spm.SentencePieceTrainer.train(
        input=corpus, model_prefix=TOKENIZER[:-len(".model")], model_type="bpe", vocab_size=VOCAB,
        byte_fallback=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=True, split_digits=True, character_coverage=1.0, unk_id=0, bos_id=1,
        eos_id=2, pad_id=-1, max_sentence_length=1 << 17, num_threads=2, minloglevel=2)
    Path(TOKENIZER[:-len(".model")] + ".vocab").unlink(missing_ok=True)  # a by-product; the .model has it all


def encode_docs(sp, docs):
    """One stream: <s> doc </s> <s> doc </s> ... (how prompts look: BOS + text)."""
    out = []
    for ids in sp.encode(docs):
        out.append(1)
        out.extend(ids)
        out.append(2)
    return np.array(out, dtype=np.int64)


def read_docs(path):
    return [l for l in Path(path).read_text(encoding="utf-8").split("\n") if l]


# ---------------------------------------------------------------------------- the model
class Llama(torch.nn.Module):
    def __init__(self, c, vocab):
        super().__init__()
        self.c = c
        dim, hd = c["dim"], c["dim"] // c["n_heads"]
        kv = hd * c["n_kv_heads"]
        L = torch.nn.Linear
        self.tok = torch.nn.Embedding(vocab, dim)
        self.layers = torch.nn.ModuleList()
        for _ in range(c["n_layers"]):
            self.layers.append(torch.nn.ModuleDict(dict(
                attn_norm=RMSNorm(dim, c["eps"]), q=L(dim, dim, bias=False), k=L(dim, kv, bias=False),
                v=L(dim, kv, bias=False), o=L(dim, dim, bias=False), ffn_norm=RMSNorm(dim, c["eps"]),
                gate=L(dim, c["hidden"], bias=False), up=L(dim, c["hidden"], bias=False),
                down=L(c["hidden"], dim, bias=False))))
        self.norm = RMSNorm(dim, c["eps"])
        # GPT-2 style init: N(0, 0.02), residual projections scaled down by depth.
        for n, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * c["n_layers"]) if n.endswith(("o.weight", "down.weight")) else 0.02
                torch.nn.init.normal_(p, 0.0, std)
        hd_range = torch.arange(0, hd, 2, dtype=torch.float64) / hd
        self.register_buffer("inv_freq", c["theta"] ** (-hd_range), persistent=False)

    def rope(self, x):
        """Interleaved RoPE on x [B, T, heads, hd]: pairs (2i, 2i+1)."""
        T = x.shape[1]
        ang = torch.arange(T, dtype=torch.float64)[:, None] * self.inv_freq.double()[None, :]
        cos = torch.cos(ang).to(x.dtype)[None, :, None, :]
        sin = torch.sin(ang).to(x.dtype)[None, :, None, :]
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)

    def forward(self, tokens):
        c = self.c
        B, T = tokens.shape
        H, KV = c["n_heads"], c["n_kv_heads"]
        hd = c["dim"] // H
        x = self.tok(tokens)
        mask = torch.full((T, T), float("-inf"), dtype=x.dtype).triu(1)
        for l in self.layers:
            h = l["attn_norm"](x)
            q = self.rope(l["q"](h).view(B, T, H, hd)).transpose(1, 2)         # [B, H, T, hd]
            k = self.rope(l["k"](h).view(B, T, KV, hd)).transpose(1, 2)        # [B, KV, T, hd]
            v = l["v"](h).view(B, T, KV, hd).transpose(1, 2)
            k = k.repeat_interleave(H // KV, dim=1)  # query head j uses kv head j // group
            v = v.repeat_interleave(H // KV, dim=1)
            s = q @ k.transpose(-1, -2) / math.sqrt(hd) + mask
            a = torch.softmax(s, dim=-1) @ v
            x = x + l["o"](a.transpose(1, 2).reshape(B, T, c["dim"]))
            h = l["ffn_norm"](x)
            x = x + l["down"](F.silu(l["gate"](h)) * l["up"](h))
        return self.norm(x) @ self.tok.weight.T  # tied classifier

    def gguf_tensors(self):
        """name -> float32 numpy array, [out, in] matrices, as llama.cpp names them."""
        t = {"token_embd.weight": self.tok.weight}
        for i, l in enumerate(self.layers):
            p = f"blk.{i}."
            for ours, theirs in (("attn_norm", "attn_norm"), ("q", "attn_q"), ("k", "attn_k"), ("v", "attn_v"),
                                 ("o", "attn_output"), ("ffn_norm", "ffn_norm"), ("gate", "ffn_gate"),
                                 ("up", "ffn_up"), ("down", "ffn_down")):
                t[p + theirs + ".weight"] = l[ours].weight
        t["output_norm.weight"] = self.norm.weight
        return {k: v.detach().to(torch.float32).numpy().copy() for k, v in t.items()}


class RMSNorm(torch.nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def n_params(model):
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------- training
def batches(stream, batch, ctx, gen):
    while True:
        starts = torch.randint(0, len(stream) - ctx - 1, (batch,), generator=gen)
        idx = starts[:, None] + torch.arange(ctx + 1)[None, :]
        yield stream[idx]


def train(name, c, stream, args, budget_s, planned_steps, log):
    torch.manual_seed(args.seed + (0 if name == "target" else 1))
    gen = torch.Generator().manual_seed(args.seed + (10 if name == "target" else 11))
    model = Llama(c, VOCAB).to(args.device)
    print(f"{name}: {n_params(model):,} parameters, config {c}", flush=True)
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    lr = args.lr_target if name == "target" else args.lr_draft
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95))
    warmup = 50
    data = batches(stream, args.batch, c["ctx"], gen)
    t0 = time.time()
    steps = planned_steps  # None: decide after the timing steps
    losses = []
    step = 0
    while True:
        if steps is not None and step >= steps:
            break
        if time.time() - t0 > budget_s:
            print(f"{name}: time budget reached after {step} of {steps} planned steps", flush=True)
            break
        total = steps if steps is not None else 10 ** 9
        if step < warmup:
            cur = lr * (step + 1) / warmup
        else:
            cur = 0.1 * lr + 0.9 * lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
        for g in opt.param_groups:
            g["lr"] = cur
        xy = next(data).to(args.device)
        logits = model(xy[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), xy[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss))
        step += 1
        if steps is None and step == 10:
            per_step = (time.time() - t0) / step
            steps = max(warmup + 10, int(budget_s / per_step * 0.97))
            print(f"{name}: {per_step:.3f} s/step, {args.batch * c['ctx'] / per_step:.0f} tokens/s -> planning "
                  f"{steps} steps ({steps * args.batch * c['ctx'] / 1e6:.1f}M tokens)", flush=True)
        if step % 50 == 0:
            print(f"{name}: step {step}/{steps} loss {np.mean(losses[-50:]):.3f} lr {cur:.2e} "
                  f"{time.time() - t0:.0f}s", flush=True)
    elapsed = time.time() - t0
    log[name] = dict(params=n_params(model), config=c, steps=step, planned_steps=steps, batch=args.batch,
                     tokens=step * args.batch * c["ctx"], seconds=elapsed, lr=lr, losses=losses)
    return model.cpu()


@torch.no_grad()
def round_to_fp16(model):
    for p in model.parameters():
        if p.dim() == 2:
            p.copy_(p.half().float())


@torch.no_grad()
def perplexity(model, stream, ctx, batch=8):
    """exp(mean NLL) over non-overlapping windows of ctx tokens (each window predicts its
    tokens 1..ctx-1 from the ones before, starting fresh at position 0)."""
    n = (len(stream) // ctx) * ctx
    w = torch.from_numpy(stream[:n]).view(-1, ctx)
    nll, count = 0.0, 0
    for i in range(0, len(w), batch):
        x = w[i:i + batch]
        logits = model(x[:, :-1]).double()
        nll += float(F.cross_entropy(logits.reshape(-1, VOCAB), x[:, 1:].reshape(-1), reduction="sum"))
        count += x[:, 1:].numel()
    return math.exp(nll / count), count


# ---------------------------------------------------------------------------- outputs
def vocab_arrays(sp):
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        if sp.is_unknown(i):
            t = 2
        elif sp.is_control(i):
            t = 3
        elif sp.is_byte(i):
            t = 6
        else:
            t = 1
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        types.append(t)
    return tokens, scores, types


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="build/corpus/train.txt")
    ap.add_argument("--time-budget-minutes", type=float, default=40.0, help="both models' training together")
    ap.add_argument("--target-share", type=float, default=0.75, help="fraction of the budget for the target")
    ap.add_argument("--target-steps", type=int, help="replay a fixed number of steps (no timing)")
    ap.add_argument("--draft-steps", type=int)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr-target", type=float, default=2e-3)
    ap.add_argument("--lr-draft", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--trial", action="store_true", help="only time a few steps of each model")
    ap.add_argument("--checks-only", action="store_true",
                    help="no training: rewrite the golden logits and ppl_reference.json from build/tiny_export")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    t_start = time.time()

    if args.checks_only:
        sp = spm.SentencePieceProcessor(model_file=TOKENIZER)
        write_checks(load_exported("target"), load_exported("draft"), sp, args.seed)
        return
    if not Path(TOKENIZER).exists() or not (args.trial or args.checks_only):
        t = time.time()
        train_tokenizer(args.corpus, args.seed)
        print(f"tokenizer: {time.time() - t:.0f}s", flush=True)
    sp = spm.SentencePieceProcessor(model_file=TOKENIZER)
    train_stream = torch.from_numpy(encode_docs(sp, read_docs(args.corpus)))
    print(f"train stream: {len(train_stream):,} tokens", flush=True)
    eval_streams = [encode_docs(sp, read_docs(f)) for f in EVAL_FILES]

    if args.trial:
        for name, c in (("target", TARGET), ("draft", DRAFT)):
            train(name, c, train_stream, args, 1e9, 4, {})
            m = Llama(c, VOCAB)
            t = time.time()
            xy = next(batches(train_stream, args.batch, c["ctx"], torch.Generator().manual_seed(0)))
            for _ in range(3):
                loss = F.cross_entropy(m(xy[:, :-1]).reshape(-1, VOCAB), xy[:, 1:].reshape(-1))
                loss.backward()
            per = (time.time() - t) / 3
            print(f"trial {name}: {n_params(m):,} params, {per:.2f} s/step fwd+bwd, "
                  f"{args.batch * c['ctx'] / per:.0f} tokens/s", flush=True)
        return

    budget = args.time_budget_minutes * 60
    log = {"seed": args.seed, "time_budget_minutes": args.time_budget_minutes, "corpus_tokens": len(train_stream)}
    t_train = time.time()
    target = train("target", TARGET, train_stream, args, budget * args.target_share, args.target_steps, log)
    draft_budget = max(60.0, budget - (time.time() - t_train))
    draft = train("draft", DRAFT, train_stream, args, draft_budget, args.draft_steps, log)
    log["training_seconds"] = time.time() - t_train

    # The target ships with fp16 matrices: every check below uses the rounded weights.
    round_to_fp16(target)
    target.eval()
    draft.eval()
    tokens, scores, types = vocab_arrays(sp)
    out = Path("build/tiny_export")
    out.mkdir(parents=True, exist_ok=True)
    for name, model in (("target", target), ("draft", draft)):
        ppl_all = [perplexity(model, s, CTX) for s in eval_streams]
        log[name]["heldout_ppl"] = {Path(f).stem: dict(ppl=p, tokens=n) for f, (p, n) in zip(EVAL_FILES, ppl_all)}
        tot = sum(n for _, n in ppl_all)
        log[name]["heldout_ppl_all"] = math.exp(sum(math.log(p) * n for p, n in ppl_all) / tot)
        print(f"{name}: held-out perplexity {log[name]['heldout_ppl']} overall {log[name]['heldout_ppl_all']:.3f}",
              flush=True)
        np.savez(out / f"{name}.npz", config=json.dumps(model.c), vocab_size=VOCAB,
                 tokens=np.array(tokens, dtype=object), scores=np.array(scores, dtype=np.float32),
                 types=np.array(types, dtype=np.int32), **model.gguf_tensors())

    write_checks(target, draft, sp, args.seed)

    log["total_seconds"] = time.time() - t_start
    Path("datasets/train_log.json").write_text(json.dumps(log) + "\n")
    plot(log)


def write_checks(target, draft, sp, seed):
    """The golden logits and the perplexity reference that the C++ tests compare against."""
    # Golden teacher-forced logits (float64 forward of the exported weights).
    rng = np.random.default_rng(seed)
    golden_text = read_docs(EVAL_FILES[1])[5]
    for name, model in (("target", target), ("draft", draft)):
        m64 = model.double()
        seqs = []
        base = [1] + sp.encode(golden_text)
        for n, src in ((1, "heldout"), (16, "random"), (40, "heldout")):
            if src == "random":
                toks = [int(t) for t in rng.integers(0, VOCAB, size=n)]
            else:
                toks = base[:n]
            with torch.no_grad():
                lg = m64(torch.tensor([toks]))[0].numpy()
            seqs.append({"tokens": toks, "logits": [[float(f"{v:.8g}") for v in row] for row in lg]})
        model.float()
        doc = {"model": f"tiny-{name}.gguf", "generator": "scripts/train_tiny.py (torch float64 forward)",
               "sequences": seqs}
        p = Path(f"datasets/test/golden_tiny-{name}.json")
        p.write_text(json.dumps(doc) + "\n")
        print(p, p.stat().st_size, "bytes", flush=True)

    # The C++ perplexity check's reference: windows, their token ids and the perplexities.
    ref = {"generator": "scripts/train_tiny.py", "window": PPL_WINDOW,
           "how": "each file: the first `docs` lines, each encoded as <s> + sp.encode(line) + </s>, "
                  "concatenated; the first `windows` non-overlapping windows of `window` tokens; "
                  "perplexity = exp(mean NLL of tokens 1..window-1 of every window given the ones before)",
           "files": [], "models": {}}
    slices = []
    for f in EVAL_FILES:
        all_docs, ndocs = read_docs(f), 0
        need = PPL_WINDOW * PPL_WINDOWS_PER_FILE
        while len(encode_docs(sp, all_docs[:ndocs])) < need:  # the fewest leading docs that fill the windows
            ndocs += 1
        s = encode_docs(sp, all_docs[:ndocs])[:need]
        ref["files"].append({"path": f, "docs": ndocs, "windows": PPL_WINDOWS_PER_FILE, "tokens": s.tolist()})
        slices.append(s)
    for name, model in (("target", target), ("draft", draft)):
        nll, count = 0.0, 0
        for s in slices:
            p, n = perplexity(model, s, PPL_WINDOW)
            nll += math.log(p) * n
            count += n
        ref["models"][f"tiny-{name}.gguf"] = {"ppl": math.exp(nll / count), "predicted_tokens": count}
    Path("datasets/eval/ppl_reference.json").write_text(json.dumps(ref) + "\n")
    print("ppl reference:", ref["models"], flush=True)



def load_exported(name):
    """A model rebuilt from build/tiny_export/NAME.npz (for --checks-only)."""
    z = np.load(f"build/tiny_export/{name}.npz", allow_pickle=True)
    model = Llama(json.loads(str(z["config"])), VOCAB)
    t = {k: torch.from_numpy(z[k]) for k in z.files if k.endswith(".weight")}
    with torch.no_grad():
        model.tok.weight.copy_(t["token_embd.weight"])
        model.norm.weight.copy_(t["output_norm.weight"])
        for i, l in enumerate(model.layers):
            for ours, theirs in (("attn_norm", "attn_norm"), ("q", "attn_q"), ("k", "attn_k"), ("v", "attn_v"),
                                 ("o", "attn_output"), ("ffn_norm", "ffn_norm"), ("gate", "ffn_gate"),
                                 ("up", "ffn_up"), ("down", "ffn_down")):
                l[ours].weight.copy_(t[f"blk.{i}.{theirs}.weight"])
    return model.eval()


def plot(log):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in ("target", "draft"):
        L = np.array(log[name]["losses"])
        k = 20
        smooth = np.convolve(L, np.ones(k) / k, mode="valid")
        toks = (np.arange(len(smooth)) + k) * log[name]["batch"] * log[name]["config"]["ctx"] / 1e6
        ax.plot(toks, smooth, label=f"{name} ({log[name]['params'] / 1e6:.2f}M params)")
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("training loss (nats/token, 20-step mean)")
    ax.set_title("Tiny default models: KJV Bible + Jane Austen, BPE 2048")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig("datasets/train_loss.png", dpi=100)


if __name__ == "__main__":
    main()
