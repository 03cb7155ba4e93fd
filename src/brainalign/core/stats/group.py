"""Group-level statistics across subjects: sign-flip and Wilcoxon tests, bootstrap CIs, BH-FDR.

The unit of inference is the subject (DESIGN.md, scoring conventions: "across subjects a paired
test"). Each subject contributes one number per ROI (its mean r over the ROI's targets, or the
difference of two such means); targets within a subject are never treated as independent samples.

Decisions
---------
* Tests are **two-sided**. A sign-flip or Wilcoxon test of ``d = values - null`` asks whether the
  subjects' differences are symmetric about 0; the direction is read off ``mean`` (and the sign of
  ``statistic``). A one-sided test would need the direction fixed before seeing the data, which a
  table of many contrasts rarely does, and it halves p for free.
* The p-value reported as ``p`` by :func:`group_tests` is the **sign-flip permutation p** on the
  mean of ``d``: under H0 (each subject's difference is symmetric about 0) every flip of signs is
  equally likely, so the test is exact for any distribution of ``d`` and any n, with no normality
  assumption (a t-test has one) and no rank transform (the Wilcoxon test discards magnitudes, and
  its exact p is restricted to ties-free data). With few subjects the enumeration is exact: p is a
  multiple of ``1 / 2**n``, and the smallest reachable p is ``2 / 2**n`` (the observed signs and
  their mirror image), e.g. 0.0078 for 8 subjects. The Wilcoxon signed-rank p (scipy) is reported
  beside it as ``p_wilcoxon``.
* The permutation statistic is the mean of ``d``. Flipping signs leaves ``sum(d**2)`` unchanged, so
  ``|t|`` of a one-sample t-test is a monotone function of ``|mean|`` over the flips: the sign-flip
  p on the mean and on t are identical. ``statistic`` is that t value (``mean / sem``), reported as
  a standardised effect, not used for p.
* Exact enumeration of all ``2**n`` sign vectors when ``2**n <= n_perm``; there the p is
  ``#{|perm| >= |obs|} / 2**n`` (the identity flip is one of the 2**n, so p >= 1/2**n). Otherwise
  ``n_perm`` random sign vectors and ``p = (1 + #{|perm| >= |obs|}) / (n_perm + 1)`` (the
  DESIGN.md convention, with the observed data counted once). Ties are compared with a relative
  tolerance of 1e-10 so that floating-point rounding of equal sums cannot lower p.
* Confidence intervals are percentile bootstraps of the mean over subjects. With few subjects the
  percentile interval is slightly narrow (it uses the plug-in SD, divisor n, and normal rather than
  t quantiles): simulated coverage of a nominal 95 % interval for Gaussian data is about 88 % at
  n = 8, 91 % at n = 12 and 94 % at n = 30. Read the CI as descriptive; the p-value is exact.
* q-values are Benjamini-Hochberg over the whole family of one :func:`group_tests` call (all
  contrasts x ROIs in it): that is the family the resulting table makes claims in.
* At least :data:`MIN_SUBJECTS` (3) subjects are required; with 2 the smallest sign-flip p is 0.5.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

#: fewest subjects a group test accepts
MIN_SUBJECTS = 3
#: columns of the table returned by :func:`group_tests`, in order
GROUP_TEST_COLUMNS = ["contrast", "roi", "n_subjects", "statistic", "mean", "p", "q", "ci_low",
                      "ci_high", "test", "p_wilcoxon"]

_REL_TOL = 1e-10
_CHUNK = 8192


def bh_fdr(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values).

    ``q_(i) = min_{j >= i} p_(j) * m / j`` over the p-values sorted ascending, capped at 1; q is
    therefore monotone in p (equal p give equal q) and ``q >= p``.

    Parameters
    ----------
    p : array-like of any shape, values in [0, 1], no NaN. The family is all of its elements.

    Returns
    -------
    q : float array of the same shape as ``p``.

    Raises
    ------
    ValueError : when ``p`` holds NaN or a value outside [0, 1].
    """
    p = np.asarray(p, dtype=np.float64)
    flat = p.ravel()
    if np.isnan(flat).any():
        raise ValueError(f"bh_fdr: {int(np.isnan(flat).sum())} of {flat.size} p-values are NaN; "
                         "drop or resolve them before correcting (the family size would be ambiguous)")
    if flat.size and (flat.min() < 0 or flat.max() > 1):
        raise ValueError(f"bh_fdr: p-values must lie in [0, 1]; got min {flat.min()}, max {flat.max()}")
    m = flat.size
    if m == 0:
        return p.copy()
    order = np.argsort(flat, kind="mergesort")
    ranked = flat[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    q = np.empty(m)
    q[order] = q_sorted
    return q.reshape(p.shape)


def _as_subject_vector(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_subjects,); got shape {x.shape}")
    if np.isnan(x).any():
        raise ValueError(f"{name} holds {int(np.isnan(x).sum())} NaN of {x.size} subjects")
    if x.size < MIN_SUBJECTS:
        raise ValueError(f"{name}: {x.size} subjects; a group test needs at least {MIN_SUBJECTS}")
    return x


def sign_flip_p(d, n_perm: int = 10000, seed=0) -> tuple[float, str]:
    """Two-sided sign-flip permutation p of the mean of ``d`` (H0: d symmetric about 0).

    Parameters
    ----------
    d : array (n_subjects,) of per-subject differences, no NaN.
    n_perm : exact enumeration of all ``2**n`` sign vectors when ``2**n <= n_perm``, else this many
        random sign vectors.
    seed : int or numpy Generator (Monte Carlo case only).

    Returns
    -------
    (p, method) with method ``"exact (2**n flips)"`` or ``"monte carlo (n_perm flips)"``.
    See the module docstring for the two p formulas.
    """
    d = _as_subject_vector(d, "d")
    n = d.size
    obs = abs(d.mean())
    tol = _REL_TOL * (np.abs(d).mean() + np.finfo(float).tiny)
    if n < 63 and 2 ** n <= n_perm:
        total = 2 ** n
        count = 0
        bits = np.arange(n, dtype=np.int64)
        for start in range(0, total, _CHUNK):
            idx = np.arange(start, min(start + _CHUNK, total), dtype=np.int64)
            signs = 1.0 - 2.0 * ((idx[:, None] >> bits[None, :]) & 1)
            count += int((np.abs(signs @ d / n) >= obs - tol).sum())
        return count / total, f"exact ({total} flips)"
    if n_perm < 1:
        raise ValueError(f"n_perm must be >= 1; got {n_perm}")
    rng = np.random.default_rng(seed)
    count = 0
    for start in range(0, n_perm, _CHUNK):
        k = min(_CHUNK, n_perm - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(k, n))
        count += int((np.abs(signs @ d / n) >= obs - tol).sum())
    return (1 + count) / (n_perm + 1), f"monte carlo ({n_perm} flips)"


def _wilcoxon_p(d: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p (scipy defaults); 1.0 when every difference is 0."""
    if not np.any(d != 0):
        return 1.0
    return float(stats.wilcoxon(d, alternative="two-sided").pvalue)


def _test_differences(d: np.ndarray, n_perm: int, seed) -> dict:
    n = d.size
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    sem = sd / np.sqrt(n)
    if sem > 0:
        t = mean / sem
    else:
        t = 0.0 if mean == 0 else float(np.sign(mean) * np.inf)
    p_flip, method = sign_flip_p(d, n_perm=n_perm, seed=seed)
    return {"n": int(n), "mean": mean, "sem": float(sem), "statistic": float(t),
            "p_wilcoxon": _wilcoxon_p(d), "p_signflip": float(p_flip), "signflip_method": method}


def one_sample_vs_null(values, null_values=None, n_perm: int = 10000, seed=0) -> dict:
    """Across subjects: are the subjects' scores different from their null (or from 0)?

    Parameters
    ----------
    values : array (n_subjects,), e.g. each subject's mean r over an ROI's targets.
    null_values : array (n_subjects,), the same subjects' null mean r, or None to test against 0.
    n_perm : sign flips, see :func:`sign_flip_p`.
    seed : int or numpy Generator.

    Returns
    -------
    dict with
        n : number of subjects;
        mean : mean of ``d = values - null_values`` (its sign is the direction of the effect);
        sem : standard error of that mean (ddof=1);
        statistic : one-sample t of d, ``mean / sem`` (descriptive; +-inf when sem is 0);
        p_wilcoxon : two-sided Wilcoxon signed-rank p of d (scipy.stats.wilcoxon defaults);
        p_signflip : two-sided sign-flip permutation p of mean(d);
        signflip_method : "exact (...)" or "monte carlo (...)".

    Raises
    ------
    ValueError : on NaN, shapes that differ or are not 1-D, or fewer than 3 subjects.
    """
    values = _as_subject_vector(values, "values")
    if null_values is None:
        d = values
    else:
        null_values = _as_subject_vector(null_values, "null_values")
        if null_values.shape != values.shape:
            raise ValueError(f"values {values.shape} and null_values {null_values.shape} differ in shape")
        d = values - null_values
    return _test_differences(d, n_perm, seed)


def paired_test(a, b, n_perm: int = 10000, seed=0) -> dict:
    """Across subjects: paired two-sided test of ``d = a - b`` (same subjects, same order).

    Parameters
    ----------
    a, b : arrays (n_subjects,), e.g. each subject's ROI mean r in two conditions.
    n_perm, seed : as in :func:`one_sample_vs_null`.

    Returns
    -------
    dict as :func:`one_sample_vs_null` (``mean`` is the mean of a - b).
    """
    a = _as_subject_vector(a, "a")
    b = _as_subject_vector(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a {a.shape} and b {b.shape} differ in shape; pair the subjects first")
    return _test_differences(a - b, n_perm, seed)


def bootstrap_ci(values, n_boot: int = 10000, level: float = 0.95, seed=0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean over subjects.

    Parameters
    ----------
    values : array (n_subjects,), no NaN; subjects are resampled with replacement.
    n_boot : bootstrap resamples.
    level : coverage, in (0, 1).
    seed : int or numpy Generator.

    Returns
    -------
    (low, high) : the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled means.
    Slightly narrow for few subjects (see module docstring).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"values must be 1-D and non-empty; got shape {values.shape}")
    if np.isnan(values).any():
        raise ValueError(f"values holds {int(np.isnan(values).sum())} NaN")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1); got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1; got {n_boot}")
    rng = np.random.default_rng(seed)
    n = values.size
    means = np.empty(n_boot)
    for start in range(0, n_boot, _CHUNK):
        k = min(_CHUNK, n_boot - start)
        means[start:start + k] = values[rng.integers(0, n, size=(k, n))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _cell(scores: pd.DataFrame, cond, layer) -> pd.DataFrame:
    lay = scores["layer"]
    if pd.api.types.is_integer_dtype(lay):
        try:
            layer = int(layer)
        except (TypeError, ValueError):
            pass
    return scores[(scores["condition"] == cond) & (lay == layer)]


def _subject_means(cell: pd.DataFrame, roi, column: str, label: str) -> pd.Series:
    rows = cell[cell["roi"] == roi]
    n_nan = int(rows[column].isna().sum())
    if n_nan:
        raise ValueError(f"contrast '{label}', ROI '{roi}': {n_nan} of {len(rows)} rows have NaN "
                         f"{column}; resolve them before the group test")
    return rows.groupby("subject", observed=True)[column].mean()


def _parse_contrast(c) -> tuple[str, tuple, tuple | None]:
    err = ValueError(f"contrast {c!r}: expected ('null', condition, layer) or "
                     "('paired', (cond_a, layer_a), (cond_b, layer_b))")
    if not isinstance(c, Sequence) or isinstance(c, str) or len(c) != 3:
        raise err
    kind = c[0]
    if kind == "null":
        return "null", (c[1], c[2]), None
    if kind == "paired":
        a, b = c[1], c[2]
        for x in (a, b):
            if not isinstance(x, Sequence) or isinstance(x, str) or len(x) != 2:
                raise err
        return "paired", tuple(a), tuple(b)
    raise err


def group_tests(scores: pd.DataFrame, contrasts: list, n_perm: int = 10000, n_boot: int = 10000,
                level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Across-subject tests per ROI for a family of contrasts, with BH-FDR over the family.

    Parameters
    ----------
    scores : long score table with columns subject, condition, layer, roi, r [, r_null]
        (one row per subject x condition x layer x target).
    contrasts : list of
        ``("null", condition, layer)`` : r against r_null (per subject, the ROI mean of r minus the
            ROI mean of r_null), or against 0 when the table has no r_null column;
        ``("paired", (cond_a, layer_a), (cond_b, layer_b))`` : ROI mean r in a minus in b, over the
            subjects scored in both.
    n_perm : sign flips per test (exact enumeration when ``2**n_subjects <= n_perm``).
    n_boot, level : bootstrap resamples and coverage of the CI of the mean difference.
    seed : seeds one Generator used, in order, for every test and bootstrap of the call.

    Returns
    -------
    DataFrame, one row per contrast x ROI (ROIs sorted), columns :data:`GROUP_TEST_COLUMNS`:
    contrast (text, "pretrained L2 - null", "pretrained L2 - 0" or "pretrained L2 - random_init L6"),
    roi, n_subjects, statistic (t of the subject differences), mean (mean difference),
    p (two-sided sign-flip p), q (BH over all rows of this table), ci_low / ci_high (percentile
    bootstrap of the mean difference), test (which sign-flip was run), p_wilcoxon.

    Raises
    ------
    ValueError : on a malformed contrast, a contrast cell absent from the table, NaN r / r_null in
        a tested ROI, or fewer than 3 subjects in a contrast/ROI (the message names both).
    """
    missing = [c for c in ("subject", "condition", "layer", "roi", "r") if c not in scores.columns]
    if missing:
        raise ValueError(f"scores lacks column(s) {missing}")
    if not contrasts:
        raise ValueError("no contrasts given")
    has_null = "r_null" in scores.columns
    rng = np.random.default_rng(seed)
    rows = []
    for c in contrasts:
        kind, a, b = _parse_contrast(c)
        cell_a = _cell(scores, *a)
        if cell_a.empty:
            raise ValueError(f"contrast {c!r}: no rows for condition {a[0]!r}, layer {a[1]!r}")
        if kind == "null":
            label = f"{a[0]} L{a[1]} - {'null' if has_null else '0'}"
            cell_b = None
            rois = sorted(cell_a["roi"].unique(), key=str)
        else:
            label = f"{a[0]} L{a[1]} - {b[0]} L{b[1]}"
            cell_b = _cell(scores, *b)
            if cell_b.empty:
                raise ValueError(f"contrast {c!r}: no rows for condition {b[0]!r}, layer {b[1]!r}")
            rois = sorted(set(cell_a["roi"].unique()) | set(cell_b["roi"].unique()), key=str)
        for roi in rois:
            ma = _subject_means(cell_a, roi, "r", label)
            if kind == "null":
                mb = _subject_means(cell_a, roi, "r_null", label) if has_null else None
            else:
                mb = _subject_means(cell_b, roi, "r", label)
            subjects = ma.index if mb is None else ma.index.intersection(mb.index)
            if len(subjects) < MIN_SUBJECTS:
                raise ValueError(f"contrast '{label}', ROI '{roi}': {len(subjects)} subject(s)"
                                 f"{'' if kind == 'null' else ' scored in both cells'}; "
                                 f"a group test needs at least {MIN_SUBJECTS}")
            subjects = sorted(subjects, key=str)
            x = ma.loc[subjects].to_numpy(np.float64)
            d = x if mb is None else x - mb.loc[subjects].to_numpy(np.float64)
            res = _test_differences(d, n_perm, rng)
            low, high = bootstrap_ci(d, n_boot=n_boot, level=level, seed=rng)
            rows.append({"contrast": label, "roi": roi, "n_subjects": res["n"],
                         "statistic": res["statistic"], "mean": res["mean"], "p": res["p_signflip"],
                         "q": np.nan, "ci_low": low, "ci_high": high,
                         "test": f"sign-flip {res['signflip_method']}, two-sided",
                         "p_wilcoxon": res["p_wilcoxon"]})
    out = pd.DataFrame(rows, columns=GROUP_TEST_COLUMNS)
    out["q"] = bh_fdr(out["p"].to_numpy())
    return out
