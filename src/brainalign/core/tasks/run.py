"""One task-tuning run: a base model, a task and a tuning method -> a tuned model directory and its
results row (no Kedro; the ``task_tuning`` pipeline runs one per cell).

Results row (``RESULT_COLUMNS``, one per task x method): task, method, base_model, condition,
trainable_params, total_params, trainable_fraction (the convention of
:func:`~brainalign.core.tasks.methods.count_parameters`: every parameter of the model as trained,
task head included, counted in both), metric (the task type's main dev metric), score (its value at
the kept epoch), majority_baseline (dev accuracy of the most frequent training label for
classification tasks; for token and QA tasks the score of predicting nothing, 0), n_train, n_dev,
epochs (run), best_epoch, seconds.
"""
from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

RESULT_COLUMNS = ["task", "method", "base_model", "condition", "trainable_params", "total_params",
                  "trainable_fraction", "metric", "score", "majority_baseline", "n_train", "n_dev", "epochs",
                  "best_epoch", "seconds"]


def condition_name(base_model: str, method: str, task: str) -> str:
    """The encoding condition of a tuned model: ``<base>-<method>-<task>`` with the base model's
    last path component, characters other than letters, digits, _ and - replaced by _."""
    import re

    base = re.sub(r"[^A-Za-z0-9_-]", "_", str(base_model).rstrip("/").split("/")[-1])
    return f"{base}-{method}-{task}"


def tune(task, base_model: str, method: str, *, method_params: dict | None = None, epochs: int = 3,
         batch_size: int = 16, lr: float = 5e-5, max_length: int = 128, patience: int | None = 2,
         warmup_ratio: float = 0.1, weight_decay: float = 0.01, seed: int = 0, device: str = "auto",
         on_epoch=None, progress: bool = True, name: str | None = None):
    """Tune ``base_model`` on ``task`` with ``method`` and score it on the task's dev split.

    Parameters
    ----------
    task : a :class:`~brainalign.core.tasks.readers.TaskData` with ``train`` and ``dev`` splits.
    base_model : a registered name, local directory or hub name
        (:func:`~brainalign.core.representations.text.resolve_model`).
    method : a name of :data:`~brainalign.core.tasks.methods.METHODS`.
    method_params : the method's parameters (``top_layers``, ``prefix_length``, ``r``, ...).
    name : the name in the condition (``<base>-<name>-<task>``; default ``method``), e.g. a variant
        ``partial-25`` of ``partial``; the result's ``method`` stays the registered method.
    epochs, batch_size, lr, max_length, patience, warmup_ratio, weight_decay, seed, device,
        on_epoch, progress : the training run (:func:`~brainalign.core.tasks.train.train_task_model`).

    Returns
    -------
    tuned : :class:`~brainalign.core.tasks.methods.TunedDirectory` (save it with a
        ``ModelDirectoryDataset``); result : dict with RESULT_COLUMNS; history : list of per-epoch dicts.
    """
    from transformers import AutoTokenizer

    from ..representations.text import resolve_model
    from .methods import TunedDirectory, apply_method, count_parameters
    from .readers import majority_baseline
    from .train import set_seed, train_task_model
    from .types import encode_task, get_task_type

    for split in ("train", "dev"):
        if not task.splits.get(split):
            raise ValueError(f"task {task.name!r} has no {split!r} examples; task tuning needs both")
    start = time.perf_counter()
    path = resolve_model(base_model)
    kind = get_task_type(task.type)
    tokenizer = AutoTokenizer.from_pretrained(path)
    set_seed(seed)
    model = kind.build_model(path, len(task.labels), labels=task.labels)
    params = dict(method_params or {})
    if method in ("prefix", "prompt"):
        params.setdefault("max_length", int(max_length))
    model = apply_method(model, method, task.type, params)
    counts = count_parameters(model)
    enc = encode_task(task, tokenizer, max_length=max_length, splits=["train", "dev"])
    log.info("task %s (%s), method %s: %d train / %d dev examples, %d of %d parameters trainable (%.4f)",
             task.name, task.type, method, len(task.splits["train"]), len(task.splits["dev"]),
             counts["trainable_params"], counts["total_params"], counts["trainable_fraction"])
    model, history, best = train_task_model(
        model, enc["train"], enc["dev"], task.splits["dev"], kind, epochs=int(epochs), batch_size=int(batch_size),
        lr=float(lr), weight_decay=float(weight_decay), warmup_ratio=float(warmup_ratio), patience=patience,
        seed=int(seed), device=device, on_epoch=on_epoch, progress=progress, labels=task.labels)
    baseline = majority_baseline(task, "dev")[1] if task.type in ("sentence", "pair", "span") else 0.0
    condition = condition_name(base_model, name or method, task.name)
    result = {"task": task.name, "method": method, "base_model": str(base_model), "condition": condition,
              **counts, "metric": kind.main_metric, "score": float(best[kind.main_metric]),
              "majority_baseline": float(baseline), "n_train": len(task.splits["train"]),
              "n_dev": len(task.splits["dev"]), "epochs": len(history), "best_epoch": int(best["epoch"]),
              "seconds": round(time.perf_counter() - start, 1)}
    info = {"base_model": str(base_model), "method": method, "variant": name or method, "task": task.name,
            "task_type": task.type,
            "trainable_fraction": counts["trainable_fraction"], "dev_" + kind.main_metric: result["score"],
            "fitted_on_stories": []}
    log.info("task %s, method %s: dev %s %.4f (majority %.4f) after %d epochs, %.0f s", task.name, method,
             kind.main_metric, result["score"], baseline, len(history), result["seconds"])
    model.to("cpu")
    return TunedDirectory(model, tokenizer, info), result, history
