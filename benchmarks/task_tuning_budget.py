"""Task-tuning scores at a stated budget on the real task sets (issue "task_tuning", Done means 1-2).

Runs brainalign.core.tasks.run.tune for each (task, method) given and prints / writes the results
rows (task, method, trainable fraction, dev metric, score, majority baseline, n_train, epochs,
seconds). Example (2 CPU cores, about 40 min)::

    python benchmarks/task_tuning_budget.py --tasks sst2 --methods full partial prefix prompt lora \
        --train 2000 --epochs 2 --out docs/figures/task_tuning_sst2.csv
    python benchmarks/task_tuning_budget.py --tasks conll2003 --methods full --train 2000 --epochs 2

The dev split is used whole unless --dev is given.
"""
from __future__ import annotations

import argparse
import logging
import os

import pandas as pd

from brainalign.core.tasks.readers import load_task
from brainalign.core.tasks.run import RESULT_COLUMNS, tune

LR = {"full": 5e-5, "partial": 1e-4, "lora": 5e-4, "prefix": 1e-2, "prompt": 3e-2}
METHOD_PARAMS = {"partial": {"top_layers": 2}, "prefix": {"prefix_length": 16}, "prompt": {"num_virtual_tokens": 20},
                 "lora": {"r": 8}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="+", default=["sst2"])
    ap.add_argument("--methods", nargs="+", default=["full"])
    ap.add_argument("--train", type=int, default=2000, help="training examples (seeded shuffle)")
    ap.add_argument("--dev", type=int, default=None, help="dev examples (default: all)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--model", default="all-MiniLM-L6-v2")
    ap.add_argument("--nlu-root", default=os.environ.get("BRAINALIGN_NLU_DIR", "../shared/data/nlu"))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--lr", nargs="*", default=[], metavar="METHOD=LR",
                    help="peak learning rates replacing the defaults above, e.g. full=1e-4 lora=2e-3")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    lrs = dict(LR)
    for item in args.lr:
        method, _, value = item.partition("=")
        if method not in LR or not value:
            raise SystemExit(f"--lr {item!r}: expected METHOD=LR with METHOD one of {sorted(LR)}")
        lrs[method] = float(value)
    rows = []
    for task in args.tasks:
        cap = {"train": args.train} if args.dev is None else {"train": args.train, "dev": args.dev}
        data = load_task(task, args.nlu_root, max_examples=cap, seed=0)
        for method in args.methods:
            _, result, _ = tune(data, args.model, method, method_params=METHOD_PARAMS.get(method), epochs=args.epochs,
                                batch_size=args.batch_size, lr=lrs[method], max_length=args.max_length,
                                device=args.device, progress=False)
            rows.append(result)
            print(pd.DataFrame([result])[RESULT_COLUMNS].to_string(index=False), flush=True)
    table = pd.DataFrame(rows)[RESULT_COLUMNS]
    print(table.to_string(index=False))
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
