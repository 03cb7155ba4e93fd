"""Backbone + FIR delays + one linear head per participant (the brain-tuning model).

For a run of volumes ``v`` of one story, the backbone gives the pooled vector ``x_i`` of every
volume ``i`` in ``v - d`` (:mod:`.stimulus`), standardised with fixed statistics (``mu``, ``sd``:
the untuned backbone's, over the training volumes), and the prediction of subject ``s`` is

    y_hat_s[v] = b_s + sum_k W_s[k] x[v - delays[k]]      (x[i] = 0 for i < 0)

the design of :func:`brainalign.core.timing.resample.fir_delays` (blocks in the order of
``delays``), so a head is exactly a ridge encoding model of the pooled features.
"""
from __future__ import annotations

import numpy as np
import torch


class BrainTuner(torch.nn.Module):
    """``backbone`` (a transformers model returning ``hidden_states``) read at ``layer`` through
    ``stimulus`` (:data:`.stimulus.STIMULI`), FIR ``delays`` (TRs) and a linear head per subject.

    Parameters
    ----------
    heads : subject -> number of targets its head predicts.
    hidden_size : the backbone's pooled vector size.
    """

    def __init__(self, backbone, stimulus, layer: int, delays, heads: dict[str, int], hidden_size: int,
                 batch_size: int = 32):
        super().__init__()
        self.backbone, self.stimulus, self.layer = backbone, stimulus, int(layer)
        self.delays = tuple(int(d) for d in delays)
        if not self.delays or min(self.delays) < 0:
            raise ValueError(f"brain_tuning.delays must be non-negative TRs, got {delays!r}")
        self.batch_size = int(batch_size)
        self.subjects = list(heads)
        self.heads = torch.nn.ModuleDict({s: torch.nn.Linear(hidden_size * len(self.delays), int(n))
                                          for s, n in heads.items()})
        self.register_buffer("mu", torch.zeros(hidden_size))
        self.register_buffer("sd", torch.ones(hidden_size))

    def volume_vectors(self, story: str, volumes: np.ndarray):
        """Standardised pooled vectors (len(volumes), hidden_size) of the given volumes (>= 0)."""
        x = self.stimulus.vectors(self.backbone, self.layer, story, volumes, self.batch_size)
        return (x - self.mu) / self.sd

    def design(self, story: str, volumes: np.ndarray):
        """The FIR design (len(volumes), hidden_size * len(delays)) of target volumes ``volumes``."""
        volumes = np.asarray(volumes, np.int64)
        lagged = volumes[None, :] - np.asarray(self.delays)[:, None]          # (n_delays, n)
        need = np.unique(lagged[lagged >= 0])
        x = self.volume_vectors(story, need)
        zero = torch.zeros((1, x.shape[1]), device=x.device, dtype=x.dtype)
        x = torch.cat([x, zero])
        pos = np.where(lagged >= 0, np.searchsorted(need, np.maximum(lagged, 0)), len(need))
        return torch.cat([x[torch.as_tensor(pos[k], device=x.device)] for k in range(len(self.delays))], dim=1)

    def forward(self, story: str, volumes: np.ndarray) -> dict:
        """subject -> predictions (len(volumes), n_targets) of the standardised responses."""
        X = self.design(story, volumes)
        return {s: self.heads[s](X) for s in self.subjects}


def ridge_head(X: np.ndarray, Y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ridge with an unpenalised intercept: (W (n_features, n_targets), b (n_targets,))
    minimising ``|Y - X W - b|^2 + alpha |W|^2`` (float64 solve)."""
    X = np.asarray(X, np.float64)
    Y = np.asarray(Y, np.float64)
    mx, my = X.mean(0), Y.mean(0)
    Xc, Yc = X - mx, Y - my
    G = Xc.T @ Xc + float(alpha) * np.eye(X.shape[1])
    W = np.linalg.solve(G, Xc.T @ Yc)
    return W, my - mx @ W
