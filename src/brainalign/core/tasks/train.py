"""Training loop for task models: AdamW, linear warm-up and decay, early stopping on the dev metric.

:func:`train_task_model` trains any model that a task type of :mod:`.types` builds (or a peft
wrapper of one): only parameters with ``requires_grad`` are optimised, so freezing done by a tuning
method (partial fine-tuning, prompt tuning) is respected. Decisions:

* Optimiser: ``torch.optim.AdamW`` over the trainable parameters; weight decay on matrices only
  (parameters with 2 or more dimensions), none on biases and LayerNorm weights (the usual BERT rule).
* Schedule: :func:`linear_warmup_decay` (the same as transformers'
  ``get_linear_schedule_with_warmup``): the factor rises linearly from 0 to 1 over the first
  ``ceil(warmup_ratio * total_steps)`` optimiser steps, then falls linearly to 0 at
  ``total_steps = epochs * ceil(n_train_rows / batch_size)``; stopping early does not re-plan it.
* Early stopping: after each epoch the dev set is scored with the task type's ``evaluate``; the
  epoch with the highest ``main_metric`` (accuracy, entity F1, QA F1; the first on ties) is kept,
  and training stops after ``patience`` epochs without improvement. The trainable parameters of
  the best epoch (a CPU copy) are loaded back at the end; frozen parameters never change.
* Determinism: ``random``, ``numpy`` and ``torch`` are seeded with ``seed``; the batch order of
  each epoch is a permutation drawn from a ``torch.Generator`` seeded with ``seed`` (so it does not
  depend on anything else that draws random numbers). ``build_model`` initialises new heads from
  torch's global generator: call :func:`set_seed` before it for a run reproducible end to end.
* Device: ``"auto"`` uses CUDA when available (forward passes under bf16 autocast; weights and
  optimiser state stay float32), CPU otherwise. The model is returned on that device, in eval mode.
"""
from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence

from .types import TaskType, _autocast, _labels_of_model, get_task_type, slice_batch

log = logging.getLogger(__name__)

__all__ = ["train_task_model", "linear_warmup_decay", "make_optimizer", "make_scheduler", "set_seed",
           "schedule_steps"]


def set_seed(seed: int) -> None:
    """Seed ``random``, ``numpy`` and ``torch`` (CPU and every CUDA device)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def linear_warmup_decay(step: int, total_steps: int, warmup_steps: int) -> float:
    """Learning-rate factor at optimiser step ``step`` (0-based: the factor of the ``step``-th update).

    ``step / warmup_steps`` while ``step < warmup_steps``, then
    ``max(0, (total_steps - step) / (total_steps - warmup_steps))``.
    """
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def schedule_steps(n_rows: int, batch_size: int, epochs: int, warmup_ratio: float) -> tuple[int, int, int]:
    """``(steps_per_epoch, total_steps, warmup_steps)`` of a run."""
    steps_per_epoch = math.ceil(n_rows / batch_size)
    total = steps_per_epoch * epochs
    return steps_per_epoch, total, math.ceil(warmup_ratio * total)


def make_optimizer(model, lr: float, weight_decay: float = 0.01):
    """AdamW over the parameters with ``requires_grad``; no decay on biases/norm weights (ndim < 2)."""
    import torch

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("train_task_model: the model has no trainable parameter (requires_grad is False "
                         "everywhere); did the tuning method freeze everything?")
    decay = [p for _, p in named if p.dim() >= 2]
    no_decay = [p for _, p in named if p.dim() < 2]
    groups = [g for g in ({"params": decay, "weight_decay": weight_decay},
                          {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    return torch.optim.AdamW(groups, lr=lr)


def make_scheduler(optimizer, total_steps: int, warmup_steps: int):
    """``LambdaLR`` with :func:`linear_warmup_decay`."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: linear_warmup_decay(step, total_steps, warmup_steps))


def _check_args(epochs, batch_size, lr, warmup_ratio, patience, max_grad_norm) -> None:
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"train_task_model: epochs must be an integer >= 1, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"train_task_model: batch_size must be an integer >= 1, got {batch_size!r}")
    if not lr > 0:
        raise ValueError(f"train_task_model: lr must be > 0, got {lr!r}")
    if not 0 <= warmup_ratio <= 1:
        raise ValueError(f"train_task_model: warmup_ratio must lie in [0, 1], got {warmup_ratio!r}")
    if patience is not None and (not isinstance(patience, int) or patience < 1):
        raise ValueError(f"train_task_model: patience must be None or an integer >= 1, got {patience!r}")
    if max_grad_norm is not None and max_grad_norm < 0:
        raise ValueError(f"train_task_model: max_grad_norm must be >= 0 or None, got {max_grad_norm!r}")


def train_task_model(model, train_enc: dict, dev_enc: dict | None, dev_examples: Sequence[dict] | None,
                     task_type: str | TaskType, *, epochs: int, batch_size: int, lr: float,
                     weight_decay: float = 0.01, warmup_ratio: float = 0.1, patience: int | None = 2,
                     seed: int, device: str | None = "auto",
                     on_epoch: Callable[[int, dict], None] | None = None, progress: bool = True,
                     max_grad_norm: float | None = 1.0, labels: Sequence[str] | None = None,
                     eval_batch_size: int | None = None):
    """Train a task model with early stopping on the dev set.

    Parameters
    ----------
    model : a ``torch.nn.Module`` from a task type's ``build_model`` (or a peft wrapper of one).
    train_enc : encoded training examples (``TaskType.encode``); rows from ``task_type.train_rows``
        are used (QA leaves out questions whose answer is past the window).
    dev_enc, dev_examples : encoded dev examples and the examples themselves (their gold is scored).
        ``None`` for both: no evaluation and no early stopping; the last epoch is kept.
    task_type : a name of :data:`~.types.TASK_TYPES` or a :class:`~.types.TaskType`.
    epochs, batch_size, lr : the run's size and peak learning rate.
    weight_decay : AdamW decay on weight matrices.
    warmup_ratio : share of all planned optimiser steps spent warming up.
    patience : stop after this many epochs without a better dev ``main_metric``; None: never.
    seed : seeds ``random``/``numpy``/``torch`` and the batch order.
    device : ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
    on_epoch : called after each epoch as ``on_epoch(epoch, entry)`` with the history entry (e.g. to
        log to MLflow).
    progress : show a tqdm bar per epoch.
    max_grad_norm : clip the gradient norm of the trainable parameters; None or 0: no clipping.
    labels : label names for scoring; default the model's ``config.id2label`` (set by
        ``build_model(..., labels=...)``).
    eval_batch_size : batch size of dev evaluation (default ``2 * batch_size``).

    Returns
    -------
    model : the model with the best epoch's trainable parameters, on ``device``, in eval mode.
    history : one dict per epoch run: ``epoch`` (1-based), ``train_loss`` (mean batch loss),
        ``lr`` (learning rate of the epoch's last update), ``seconds``, and the dev metrics
        prefixed with ``dev_`` (e.g. ``dev_accuracy``).
    best : the dev metrics of the kept epoch (unprefixed) plus ``epoch``; without a dev set,
        ``{"epoch": last, "train_loss": ...}``.
    """
    import torch
    from tqdm.auto import tqdm

    from ..representations.text import resolve_device

    kind = get_task_type(task_type)
    _check_args(epochs, batch_size, lr, warmup_ratio, patience, max_grad_norm)
    if (dev_enc is None) != (dev_examples is None):
        raise ValueError("train_task_model: give both dev_enc and dev_examples, or neither")
    if labels is None:
        labels = _labels_of_model(model)
    labels = [str(x) for x in labels]
    eval_batch_size = eval_batch_size or 2 * batch_size

    set_seed(seed)
    device = torch.device(resolve_device(device))
    model.to(device)
    rows = kind.train_rows(train_enc)
    n_rows = int(rows.numel())
    if n_rows == 0:
        raise ValueError(f"train_task_model: no trainable rows in train_enc ({kind.name}; for qa: every "
                         f"gold answer lies past max_length)")
    steps_per_epoch, total_steps, warmup_steps = schedule_steps(n_rows, batch_size, epochs, warmup_ratio)
    optimizer = make_optimizer(model, lr, weight_decay)
    scheduler = make_scheduler(optimizer, total_steps, warmup_steps)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for _, p in trainable)
    log.info("%s: training %d of %d parameters on %s for up to %d epochs (%d rows, %d steps, %d warm-up)",
             kind.name, n_trainable, sum(p.numel() for p in model.parameters()), device, epochs, n_rows,
             total_steps, warmup_steps)
    generator = torch.Generator().manual_seed(seed)

    history: list[dict] = []
    best: dict | None = None
    best_value = -math.inf
    best_state: dict | None = None
    stale = 0
    for epoch in range(1, epochs + 1):
        model.train()
        start_time = time.perf_counter()
        order = rows[torch.randperm(n_rows, generator=generator)]
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"{kind.name} epoch {epoch}/{epochs}", disable=not progress,
                   leave=False)
        for step in bar:
            batch = slice_batch(train_enc, order[step * batch_size:(step + 1) * batch_size], device)
            with _autocast(device):
                loss = kind.loss(model, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"train_task_model: the loss is {loss.item()} at epoch {epoch}, step "
                                         f"{step + 1} (learning rate too high?)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm:
                torch.nn.utils.clip_grad_norm_([p for _, p in trainable], max_grad_norm)
            optimizer.step()
            last_lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        bar.close()
        entry = {"epoch": epoch, "train_loss": sum(losses) / len(losses), "lr": last_lr,
                 "seconds": time.perf_counter() - start_time}
        if dev_enc is not None:
            metrics = kind.evaluate(model, dev_enc, dev_examples, labels, batch_size=eval_batch_size, device=device)
            entry.update({f"dev_{k}": v for k, v in metrics.items()})
            value = metrics[kind.main_metric]
            if value > best_value:
                best_value, stale = value, 0
                best = {**metrics, "epoch": epoch}
                best_state = {n: p.detach().to("cpu", copy=True) for n, p in trainable}
            else:
                stale += 1
        else:
            best = {"epoch": epoch, "train_loss": entry["train_loss"]}
        history.append(entry)
        log.info("%s epoch %d: %s", kind.name, epoch,
                 ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in entry.items()))
        if on_epoch is not None:
            on_epoch(epoch, dict(entry))
        if patience is not None and dev_enc is not None and stale >= patience:
            log.info("%s: stopping early after epoch %d (best epoch %d, %s=%.4g)", kind.name, epoch,
                     best["epoch"], kind.main_metric, best_value)
            break
    if best_state is not None and best["epoch"] != history[-1]["epoch"]:
        with torch.no_grad():
            for n, p in trainable:
                p.copy_(best_state[n].to(p.device))
    model.eval()
    return model, history, best
