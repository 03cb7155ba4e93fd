"""Brain-tuning one backbone on one fold's training samples (:func:`brain_tune`).

Two objectives (``objective``):

``heads`` (the published recipe) — the mean squared error of every tuned subject's standardised
responses (z-scored with the statistics of the samples fitted) predicted by the linear heads,
averaged over targets and then over subjects; backbone and heads trained together by chunks of
``chunk_trs`` volumes.

``ridge_cv`` — the loss is the held-out error of the closed-form ridge readout itself: the fitted
samples are cut into two halves (by story when they span several runs, else each run in two),
ridge (each subject's alpha, chosen at epoch 0) is solved on one half in the dual form
``W = X_a^T (X_a X_a^T + alpha I)^-1 Y_a`` (differentiable in the features) and scored on the other,
both ways; one full-batch step per epoch step. The backbone is thus trained for what the encoding
evaluation measures, how well a ridge fitted on some stories predicts others, instead of the
in-sample fit of heads that can absorb the training noise; the heads are refitted in closed form
before every validation. Heads start at
the closed-form ridge solution on the untuned backbone (alpha chosen on the validation samples), so
epoch 0 is the best linear readout of the untuned model and any later gain is the backbone's.
AdamW with two learning rates (backbone, heads), linear warm-up over the first ``warmup`` share of
the steps then linear decay to 0, gradient norm clipped at ``clip``; early stopping on the
validation loss with ``patience`` epochs; the weights of the best epoch (possibly epoch 0, the
untuned backbone) are kept. On CUDA, bf16 autocast and gradient checkpointing when asked for.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

import numpy as np

from ..encoding.metrics import pearson_r
from .data import BrainTuningError, SampleIndex, chunks, training_matrix
from .model import BrainTuner, ridge_head

log = logging.getLogger(__name__)


@dataclass
class TuningConfig:
    """Optimisation settings of :func:`brain_tune` (``brain_tuning`` parameters, docs/methods.md)."""

    layer: int | None = None            # hidden state read by the heads (None: the last)
    delays: tuple = (1, 2, 3, 4)        # FIR delays (TRs)
    epochs: int = 3
    lr_backbone: float = 5e-5
    lr_head: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.1                 # share of the steps with a linear warm-up
    clip: float = 1.0                   # gradient norm clipping
    chunk_trs: int = 32                 # target volumes per optimisation step
    batch_size: int = 32                # windows per backbone forward pass
    patience: int = 2                   # epochs without a better validation loss before stopping
    head_alphas: tuple = (1e-1, 1e0, 1e1, 1e2, 1e3, 1e4)
    train_top_layers: int | None = None  # None: every backbone block; k: only the top k blocks; 0: frozen
    seed: int = 0
    device: str = "cpu"
    bf16: bool = True                   # autocast on CUDA
    gradient_checkpointing: bool = True  # on CUDA
    objective: str = "heads"            # heads | ridge_cv (module docstring)
    steps_per_epoch: int = 4            # ridge_cv: full-batch steps per epoch


def set_trainable(backbone, top_layers: int | None) -> int:
    """Freeze the backbone except its top ``top_layers`` blocks (None: leave what is trainable
    as loaded, e.g. a speech model's frozen feature encoder; 0: freeze everything). Returns the
    number of trainable backbone parameters."""
    if top_layers is not None:
        backbone.requires_grad_(False)
        if int(top_layers) > 0:
            from ..tasks.methods import TuningError, encoder_layers

            try:
                blocks = encoder_layers(backbone)
            except TuningError as exc:
                raise BrainTuningError(f"brain_tuning.train_top_layers: {exc}") from None
            for block in list(blocks)[-int(top_layers):]:
                block.requires_grad_(True)
    return int(sum(p.numel() for p in backbone.parameters() if p.requires_grad))


OBJECTIVES = ("heads", "ridge_cv")


def ridge_cv_loss(Xa, Xb, Ya, Yb, alpha: float):
    """Mean squared error on ``(Xb, Yb)`` of the ridge fitted on ``(Xa, Ya)`` (unpenalised
    intercept), in the dual form so that it is differentiable in the features.

    Parameters
    ----------
    Xa : tensor (n_a, d), Xb : tensor (n_b, d) features; Ya : (n_a, t), Yb : (n_b, t) responses.
    alpha : the ridge penalty.

    Returns
    -------
    scalar tensor: ``mean((Yb - (Xb - mx) W - my)^2)`` with ``W = (Xa - mx)^T (K + alpha I)^-1 (Ya - my)``,
    ``K = (Xa - mx)(Xa - mx)^T``, ``mx``, ``my`` the means over the rows of ``Xa``, ``Ya``: the
    prediction of the primal ridge ``(Xc^T Xc + alpha I)^-1 Xc^T Yc`` (the same matrix).
    """
    import torch

    mx, my = Xa.mean(0, keepdim=True), Ya.mean(0, keepdim=True)
    A, B = Xa - mx, Xb - mx
    K = A @ A.T + float(alpha) * torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    C = torch.linalg.solve(K, Ya - my)
    pred = (B @ A.T) @ C + my
    return ((pred - Yb) ** 2).mean()


def cv_halves(index: SampleIndex, chunk_list: list[np.ndarray], fit: np.ndarray) -> np.ndarray:
    """Half (0 or 1) of every chunk for the ``ridge_cv`` objective: whole runs of consecutive fitted
    samples alternate between the halves when there are several (one story each, as a rule); a single
    run is cut in the middle (chunk boundaries). Raises BrainTuningError when a half would be empty."""
    segs = index.segments(fit)
    first = [int(np.searchsorted(np.asarray([sg[0] for sg in segs]), c[0], side="right") - 1) for c in chunk_list]
    if len(segs) >= 2:
        halves = np.asarray([k % 2 for k in first])
    else:
        n = len(chunk_list)
        halves = (np.arange(n) >= n // 2).astype(int)
    if halves.min() == halves.max():
        raise BrainTuningError("brain_tuning.objective ridge_cv needs the fitted samples in at least two chunks "
                               f"(got {len(chunk_list)} chunk(s) of {len(fit)} samples); lower chunk_trs")
    return halves


def brain_tune(backbone, stimulus, responses: dict, columns: dict, index: SampleIndex, fit: np.ndarray,
               val: np.ndarray, config: TuningConfig, on_epoch=None, desc: str = "brain_tuning"):
    """Tune ``backbone`` so that its pooled volume vectors, through FIR delays and one linear
    head per subject, predict the subjects' responses on the ``fit`` samples.

    Parameters
    ----------
    backbone : a transformers model (``output_hidden_states``), trained in place.
    stimulus : a :data:`.stimulus.STIMULI` object over the study's stories.
    responses : subject -> story -> float32 (n_trs, n_targets) kept responses.
    columns : subject -> int array, the response columns its head predicts (:func:`.data.select_targets`).
    index : the study's samples; fit, val : the samples optimised on and those that stop the training.
    config : :class:`TuningConfig`.
    on_epoch : optional callback ``(epoch, entry dict)`` (MLflow metrics).

    Returns
    -------
    model : the :class:`BrainTuner` at its best epoch (its ``backbone`` is ``backbone``, weights
        of the best epoch loaded).
    history : list of dicts, one per epoch (0 = untuned backbone with ridge heads): epoch,
        train_loss (NaN at 0), val_loss, val_r (mean over subjects and targets), seconds.
    summary : dict with best_epoch, head_alpha (per subject), trainable_backbone_params,
        total_backbone_params, n_fit, n_val.
    """
    import torch

    if config.objective not in OBJECTIVES:
        raise BrainTuningError(f"brain_tuning.objective must be one of {OBJECTIVES}, got {config.objective!r}")
    torch.manual_seed(int(config.seed))
    rng = np.random.default_rng(int(config.seed))
    device = torch.device(config.device)
    backbone.to(device)
    n_blocks = int(getattr(backbone.config, "encoder_layers", None) or backbone.config.num_hidden_layers)
    layer = int(config.layer) if config.layer is not None else n_blocks
    if not 0 <= layer <= n_blocks:
        raise BrainTuningError(f"{desc}: brain_tuning.layer {layer} is out of range (hidden states 0..{n_blocks})")
    hidden = int(getattr(backbone.config, "hidden_size", 0) or getattr(backbone.config, "d_model"))
    model = BrainTuner(backbone, stimulus, layer, config.delays, {s: len(c) for s, c in columns.items()}, hidden,
                       batch_size=config.batch_size).to(device)
    trainable = set_trainable(backbone, config.train_top_layers)
    for key in ("layerdrop", "encoder_layerdrop"):   # a dropped block would shift the pooled hidden state
        if hasattr(backbone.config, key):
            setattr(backbone.config, key, 0.0)
    total = int(sum(p.numel() for p in backbone.parameters()))
    use_cuda = device.type == "cuda"
    if use_cuda and config.gradient_checkpointing and trainable and hasattr(backbone, "gradient_checkpointing_enable"):
        backbone.gradient_checkpointing_enable()

    # standardised targets, fitted statistics only
    fit, val = np.sort(np.asarray(fit, np.int64)), np.sort(np.asarray(val, np.int64))
    both = np.union1d(fit, val)
    Y = {}
    for s, cols in columns.items():
        Yall = training_matrix(responses[s], index, both, cols)
        Yfit = Yall[np.searchsorted(both, fit)]
        mu, sd = Yfit.mean(0), Yfit.std(0)
        sd[sd == 0] = 1.0
        Y[s] = torch.as_tensor((Yall - mu) / sd, dtype=torch.float32, device=device)
    fit_chunks = chunks(index, fit, config.chunk_trs)
    val_chunks = chunks(index, val, config.chunk_trs)

    def rows(c):
        return torch.as_tensor(np.searchsorted(both, c), device=device)

    def target_volumes(c):
        return index.stories[int(index.story[c[0]])], index.volume[c]

    def design_of(chunk_list):
        """The FIR design of the chunks' volumes, in their order, one backbone pass per run of chunks
        of one story (each volume's vector computed once, not once per chunk)."""
        parts, k = [], 0
        while k < len(chunk_list):
            story_k = int(index.story[chunk_list[k][0]])
            j = k
            while j < len(chunk_list) and int(index.story[chunk_list[j][0]]) == story_k:
                j += 1
            vols = np.concatenate([index.volume[c] for c in chunk_list[k:j]])
            parts.append(model.design(index.stories[story_k], vols))
            k = j
        return torch.cat(parts)

    # epoch 0: vector statistics and ridge heads on the untuned backbone
    backbone.eval()
    with torch.no_grad():
        vecs = []
        for c in fit_chunks:
            story, vols = target_volumes(c)
            vecs.append(model.stimulus.vectors(backbone, layer, story, vols, config.batch_size).float())
        allv = torch.cat(vecs)
        model.mu.copy_(allv.mean(0))
        sd = allv.std(0)
        # a (near-)constant dimension is left unscaled: dividing by ~0 would blow its gradient up to inf
        model.sd.copy_(torch.where(sd > 1e-4 * sd.max(), sd, torch.ones_like(sd)))
        Xfit = design_of(fit_chunks).cpu().numpy()
        Xval = design_of(val_chunks).cpu().numpy()
    fit_rows = np.concatenate([np.searchsorted(both, c) for c in fit_chunks])
    val_rows = np.concatenate([np.searchsorted(both, c) for c in val_chunks])
    alphas = {}
    for s in columns:
        Yf, Yv = Y[s].cpu().numpy()[fit_rows], Y[s].cpu().numpy()[val_rows]
        best = None
        for a in config.head_alphas:
            W, b = ridge_head(Xfit, Yf, a)
            err = float(((Xval @ W + b - Yv) ** 2).mean())
            if best is None or err < best[0]:
                best = (err, a, W, b)
        _, alphas[s], W, b = best
        with torch.no_grad():
            model.heads[s].weight.copy_(torch.as_tensor(W.T, dtype=torch.float32))
            model.heads[s].bias.copy_(torch.as_tensor(b, dtype=torch.float32))

    def refit_heads() -> None:
        """Closed-form ridge heads on the fitted samples with the current backbone (ridge_cv)."""
        model.eval()
        with torch.no_grad(), _autocast(use_cuda and config.bf16):
            X = design_of(fit_chunks).float().cpu().numpy()
            for s in columns:
                W, b = ridge_head(X, Y[s].cpu().numpy()[fit_rows], alphas[s])
                model.heads[s].weight.copy_(torch.as_tensor(W.T, dtype=torch.float32))
                model.heads[s].bias.copy_(torch.as_tensor(b, dtype=torch.float32))

    def evaluate() -> tuple[float, float]:
        if config.objective == "ridge_cv":
            refit_heads()
        model.eval()
        preds = {s: [] for s in columns}
        with torch.no_grad(), _autocast(use_cuda and config.bf16):
            Xv = design_of(val_chunks)
            for s in columns:
                preds[s].append(model.heads[s](Xv).float())
        losses, rs = [], []
        for s in columns:
            P = torch.cat(preds[s])
            T = Y[s][torch.as_tensor(val_rows, device=device)]
            losses.append(float(((P - T) ** 2).mean()))
            rs.append(float(np.mean(pearson_r(P.cpu().numpy(), T.cpu().numpy()))))
        return float(np.mean(losses)), float(np.mean(rs))

    t_start = time.perf_counter()
    val_loss, val_r = evaluate()
    history = [{"epoch": 0, "train_loss": float("nan"), "val_loss": val_loss, "val_r": val_r,
                "seconds": time.perf_counter() - t_start}]
    log.info("%s: epoch 0 (untuned backbone, ridge heads): validation loss %.4f, r %.4f", desc, val_loss, val_r)
    if on_epoch:
        on_epoch(0, history[-1])
    best_loss, best_epoch = val_loss, 0
    best_state = copy.deepcopy(model.state_dict()) if config.epochs > 0 else None
    params_backbone = [p for p in backbone.parameters() if p.requires_grad]
    groups = [{"params": list(model.heads.parameters()), "lr": float(config.lr_head)}]
    if params_backbone:
        groups.insert(0, {"params": params_backbone, "lr": float(config.lr_backbone)})
    ridge_cv = config.objective == "ridge_cv"
    if ridge_cv:
        if not params_backbone:
            raise BrainTuningError("brain_tuning.objective ridge_cv trains the backbone only, but no backbone "
                                   "parameter is trainable (train_top_layers 0)")
        groups = [{"params": params_backbone, "lr": float(config.lr_backbone)}]
        halves = cv_halves(index, fit_chunks, fit)
        fit_half = np.concatenate([np.full(len(c), h) for c, h in zip(fit_chunks, halves)])
        half_rows = [torch.as_tensor(np.flatnonzero(fit_half == h), device=device) for h in (0, 1)]
        fit_rows_t = torch.as_tensor(fit_rows, device=device)
    opt = torch.optim.AdamW(groups, weight_decay=float(config.weight_decay))
    steps_per_epoch = int(config.steps_per_epoch) if ridge_cv else len(fit_chunks)
    n_steps = max(1, int(config.epochs) * steps_per_epoch)
    n_warm = int(np.ceil(float(config.warmup) * n_steps))

    def schedule(step: int) -> float:
        if step < n_warm:
            return (step + 1) / n_warm
        return max(0.0, (n_steps - step) / max(1, n_steps - n_warm))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    from tqdm.auto import tqdm

    stale = 0
    for epoch in range(1, int(config.epochs) + 1):
        model.train()
        t0 = time.perf_counter()
        losses = []
        for k in tqdm(rng.permutation(steps_per_epoch), desc=f"{desc} epoch {epoch}", leave=False):
            with _autocast(use_cuda and config.bf16):
                if ridge_cv:   # one full-batch step: ridge on each half scored on the other
                    X = design_of(fit_chunks).float()
                    loss = 0.0
                    for s in columns:
                        Ys = Y[s][fit_rows_t]
                        a, b = half_rows
                        loss = loss + 0.5 * (ridge_cv_loss(X[a], X[b], Ys[a], Ys[b], alphas[s])
                                             + ridge_cv_loss(X[b], X[a], Ys[b], Ys[a], alphas[s]))
                    loss = loss / len(columns)
                else:
                    c = fit_chunks[int(k)]
                    out = model(*target_volumes(c))
                    r = rows(c)
                    loss = sum(((out[s].float() - Y[s][r]) ** 2).mean() for s in columns) / len(columns)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], float(config.clip))
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        val_loss, val_r = evaluate()
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss, "val_r": val_r,
                        "seconds": time.perf_counter() - t0})
        log.info("%s: epoch %d: train loss %.4f, validation loss %.4f, r %.4f (%.0f s)", desc, epoch,
                 history[-1]["train_loss"], val_loss, val_r, history[-1]["seconds"])
        if on_epoch:
            on_epoch(epoch, history[-1])
        if val_loss < best_loss:
            best_loss, best_epoch, stale = val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if config.patience is not None and stale >= int(config.patience):
                log.info("%s: early stop after epoch %d (best: epoch %d)", desc, epoch, best_epoch)
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    if use_cuda and hasattr(backbone, "gradient_checkpointing_disable"):
        backbone.gradient_checkpointing_disable()
    model.eval()
    summary = {"best_epoch": int(best_epoch), "best_val_loss": float(best_loss), "head_alpha": alphas,
               "trainable_backbone_params": trainable, "total_backbone_params": total, "layer": layer,
               "n_fit": int(len(fit)), "n_val": int(len(val))}
    return model, history, summary


def _autocast(on: bool):
    import contextlib

    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16) if on else contextlib.nullcontext()
