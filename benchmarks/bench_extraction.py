"""Word-feature extraction: batched exact and strided modes against a word-by-word reference.

Story: the packaged stories (``src/brainalign/data/stories/*.txt``) concatenated and cut to
``--words`` words. For every model the same run times, one after the other:

``reference``  written here, independent of brainalign: for each word the tokenizer and the model
               on its window alone (the word and its ``--context`` preceding words; batch of one,
               no padding), the word's feature the mean hidden state of its sub-tokens.
``story_order`` :func:`extract_word_features` exact mode, windows batched in story order
               (``sort_by_length=False``: the batching of the code before this change).
``exact``      :func:`extract_word_features` exact mode (default): windows sorted by token length.
``strided``    (causal models) :func:`extract_word_features` ``mode="strided"``: windows of 2N
               words every N words; its features differ from the exact ones (more context), so
               it is checked against its own reference: the model run on each word's actual
               prefix (a sample of ``--strided-check`` words).

Models: the packaged all-MiniLM-L6-v2 (bidirectional; BERT tokenizer), a tiny random GPT-2
(2 layers, width 64) and a random GPT-2 of small realistic size (6 layers, width 384, 6 heads;
``--no-small-gpt2`` skips it), the GPT-2s with a word-level tokenizer built on the story (about
1.1 tokens per word; GPT-2's BPE gives about 1.3). All hidden states are pooled (every layer).

Printed (and written with ``--json FILE``): seconds and words/s of each, speed-up over the
reference and over story order, largest |difference| from the reference (float32).
Use ``--threads`` (default 1): on a shared machine a busy second core makes multi-threaded
torch on small tensors many times slower, which would flatter the batched modes.

    python benchmarks/bench_extraction.py --words 2000 --context 20 --json extraction.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from brainalign.core.representations import text as T

ROOT = Path(__file__).resolve().parents[1]
STORIES = ROOT / "src" / "brainalign" / "data" / "stories"


def story_words(n: int) -> list[str]:
    words = [w for f in sorted(STORIES.glob("*.txt")) for w in f.read_text(encoding="utf-8").split()]
    while len(words) < n:
        words = words + words
    return words[:n]


def reference(tok, model, windows: list[list[str]], layers: list[int]) -> dict[int, np.ndarray]:
    """Each window run alone; the mean hidden state of its last word's sub-tokens."""
    import torch

    out = {layer: np.zeros((len(windows), model.config.hidden_size), np.float32) for layer in layers}
    for i, win in enumerate(windows):
        enc = tok(win, is_split_into_words=True, return_tensors="pt")
        sel = [t for t, w in enumerate(enc.word_ids(0)) if w == len(win) - 1]
        with torch.no_grad():
            hidden = model(**enc, output_hidden_states=True).hidden_states
        for layer in layers:
            out[layer][i] = hidden[layer][0, sel].mean(0).numpy() if sel else 0.0
    return out


def max_diff(a: dict, b: dict, rows=None) -> float:
    rows = slice(None) if rows is None else rows
    return float(max(np.abs(np.asarray(a[k])[rows] - np.asarray(b[k])[rows]).max() for k in a))


def timed(fn, repeat: int):
    best, res = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        res = fn()
        best = min(best, time.perf_counter() - t)
    return res, best


def bench_model(label: str, tok, model, words: list[str], ctx: int, batch: int, repeat: int,
                strided_check: int) -> dict:
    layers = list(range(T.n_layers(model)))
    n = len(words)
    T.extract_word_features(words[:2 * batch], tok, model, layers, context_words=ctx, batch_size=batch)  # warm-up
    row: dict = {"model": label, "words": n, "context_words": ctx, "batch_size": batch, "layers": len(layers),
                 "causal": T.is_causal(model)}
    windows = [words[max(0, i - ctx): i + 1] for i in range(n)]
    ref, row["reference_s"] = timed(lambda: reference(tok, model, windows, layers), 1)
    runs = {"story_order": dict(sort_by_length=False), "exact": {}}
    if row["causal"]:
        runs["strided"] = dict(mode="strided")
    feats, best = {}, dict.fromkeys(runs, np.inf)
    for _ in range(repeat):          # interleaved, so that a busy spell of the machine hits all alike
        for key, kw in runs.items():
            feats[key], t = timed(lambda: T.extract_word_features(
                words, tok, model, layers, context_words=ctx, batch_size=batch, **kw), 1)
            best[key] = min(best[key], t)
    for key in runs:
        row[f"{key}_s"] = best[key]
    order, exact = feats["story_order"], feats["exact"]
    row["story_order_max_abs_diff"] = max_diff(order, ref)
    row["exact_max_abs_diff"] = max_diff(exact, ref)
    row["exact_speedup_vs_reference"] = row["reference_s"] / row["exact_s"]
    row["exact_speedup_vs_story_order"] = row["story_order_s"] / row["exact_s"]
    if row["causal"]:
        strided = feats["strided"]
        row["strided_speedup_vs_reference"] = row["reference_s"] / row["strided_s"]
        row["strided_speedup_vs_exact"] = row["exact_s"] / row["strided_s"]
        # its own reference: each sampled word run on the prefix it saw (hand rule: module docstring)
        sample = np.unique(np.linspace(0, n - 1, min(strided_check, n)).astype(int))
        starts = [0 if j < 2 * ctx else (j // ctx - 1) * ctx for j in sample]
        pref = reference(tok, model, [words[s: j + 1] for s, j in zip(starts, sample)], layers)
        row["strided_checked_words"] = len(sample)
        row["strided_max_abs_diff_vs_prefix_runs"] = float(max(
            np.abs(np.asarray(strided[k])[sample] - pref[k]).max() for k in layers))
        last = layers[-1]
        row["strided_vs_exact_max_abs_diff_last_layer"] = max_diff({last: strided[last]}, {last: exact[last]})
    for key in ("reference", "story_order", "exact", "strided"):
        if f"{key}_s" in row:
            row[f"{key}_words_per_s"] = n / row[f"{key}_s"]
    return row


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--words", type=int, default=2000)
    ap.add_argument("--context", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each batched mode, interleaved (the fastest counts)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    ap.add_argument("--strided-check", type=int, default=200, help="words checked against prefix runs")
    ap.add_argument("--models", default="minilm,tiny_gpt2,small_gpt2")
    ap.add_argument("--no-small-gpt2", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_gpt2 import make_tiny_gpt2

    words = story_words(args.words)
    wanted = [m for m in args.models.split(",") if m and not (args.no_small_gpt2 and m == "small_gpt2")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in wanted:
            if name == "minilm":
                tok, model = T.load_model("all-MiniLM-L6-v2", "cpu")
            elif name == "tiny_gpt2":
                tok, model = T.load_model(str(make_tiny_gpt2(Path(tmp) / name, words, hidden=64, layers=2)), "cpu")
            elif name == "small_gpt2":
                tok, model = T.load_model(str(make_tiny_gpt2(Path(tmp) / name, words, hidden=384, layers=6,
                                                             heads=6)), "cpu")
            else:
                raise SystemExit(f"unknown model {name!r}")
            row = bench_model(name, tok, model, words, args.context, args.batch_size, args.repeat,
                              args.strided_check)
            row["torch_threads"] = torch.get_num_threads()
            rows.append(row)
            print(f"\n{name}: {row['words']} words, context {row['context_words']}, {row['layers']} hidden states, "
                  f"{'causal' if row['causal'] else 'bidirectional'}, {row['torch_threads']} thread(s)")
            print(f"  reference (word by word) {row['reference_s']:8.2f} s  "
                  f"{row['reference_words_per_s']:8.0f} words/s")
            print(f"  story-order batches      {row['story_order_s']:8.2f} s  {row['story_order_words_per_s']:8.0f} "
                  f"words/s  max|diff| {row['story_order_max_abs_diff']:.1e}")
            print(f"  exact (sorted batches)   {row['exact_s']:8.2f} s  {row['exact_words_per_s']:8.0f} words/s  "
                  f"max|diff| {row['exact_max_abs_diff']:.1e}  x{row['exact_speedup_vs_reference']:.2f} vs reference, "
                  f"x{row['exact_speedup_vs_story_order']:.2f} vs story order")
            if row["causal"]:
                print(f"  strided                  {row['strided_s']:8.2f} s  "
                      f"{row['strided_words_per_s']:8.0f} words/s  "
                      f"x{row['strided_speedup_vs_reference']:.2f} vs reference, "
                      f"x{row['strided_speedup_vs_exact']:.2f} vs exact; max|diff| vs prefix runs "
                      f"{row['strided_max_abs_diff_vs_prefix_runs']:.1e} ({row['strided_checked_words']} words); "
                      f"vs exact (last layer, other context) {row['strided_vs_exact_max_abs_diff_last_layer']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
