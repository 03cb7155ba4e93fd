"""``tuned``: a model or adapter directory that a pipeline of this project wrote.

The directory is a catalog dataset (:class:`brainalign.io.ModelDirectoryDataset`, by default
``<condition>.tuned_model`` under ``data/06_models/<condition>``), so the embedding node takes it as
an input and Kedro runs its producer (task_tuning, brain_tuning) first. Weights are read from
safetensors only: a directory holding only pickled weights (``pytorch_model.bin``) is refused, since
unpickling runs arbitrary code.

Layouts:

* a full model: ``config.json`` + ``model.safetensors`` (or sharded ``model-*.safetensors``), with
  the tokenizer files or, without them, the tokenizer of ``base_model``;
* a peft adapter: ``adapter_config.json`` + ``adapter_model.safetensors`` over ``base_model``
  (or the adapter's own ``base_model_name_or_path``); adapters that merge into the weights (LoRA,
  IA3) are merged before extraction. Prompt-learning adapters - prefix tuning (P-tuning v2) and
  prompt tuning - run the base model *with their learned prompts*
  (:class:`brainalign.core.tasks.methods.PromptedBackbone`: prefix: the learned keys/values at
  every layer; prompt: the prompt embeddings prepended to the input), and the hidden states of the
  virtual tokens are dropped, so a word's features pool only its own sub-tokens and the windows are
  kept short enough for the positions the virtual tokens take (``virtual_positions``). Other
  prompt-learning types (p-tuning's prompt encoder, multitask prompts) are refused with a clear
  error.

An optional ``brainalign.json`` in the directory (written by the producing pipeline) describes the
tuning: ``base_model``, ``method``, ``task``, ``trainable_fraction``; parameters of the condition
take precedence.
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

from .base import EMBEDDING_OVERRIDES, ConditionError, input_argument
from .text import TextKind, load_model, resolve_model

log = logging.getLogger(__name__)

INFO_FILE = "brainalign.json"


def check_model_directory(path: str | Path, what: str = "tuned model") -> str:
    """``"model"`` or ``"adapter"`` for a directory holding safetensors weights; a clear error
    naming the directory otherwise (missing, no weights, pickled weights only)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: {path} is not a directory (has its producing pipeline run?)")
    info = read_info(path)
    if info.get("per_fold"):     # one model per outer fold (brain_tuning): fold_<k>/ each checked
        for f in info.get("folds") or []:
            check_model_directory(path / f"fold_{int(f)}", f"{what}, fold {int(f)}")
        if not info.get("folds"):
            raise ValueError(f"{what}: {path} is a per-fold directory without folds")
        return "per_fold"
    names = {p.name for p in path.iterdir()}
    if "adapter_config.json" in names:
        if "adapter_model.safetensors" not in names:
            raise ValueError(f"{what}: {path} has adapter_config.json but no adapter_model.safetensors "
                             f"(only safetensors weights are read, never pickles)")
        return "adapter"
    weights = [n for n in names if n.endswith(".safetensors")]
    if "config.json" not in names:
        raise ValueError(f"{what}: {path} has no config.json")
    if not weights:
        pickled = sorted(n for n in names if n.endswith((".bin", ".pt", ".pth", ".ckpt")))
        hint = (f"; it holds {pickled}, pickled weights that are never unpickled: re-save with "
                f"save_pretrained(safe_serialization=True)") if pickled else ""
        raise ValueError(f"{what}: {path} has no safetensors weights{hint}")
    return "model"


def read_info(path: str | Path) -> dict:
    f = Path(path) / INFO_FILE
    return json.loads(f.read_text()) if f.exists() else {}


def load_tuned(path: str | Path, base_model: str | None = None, device: str = "cpu", what: str = "tuned model"):
    """Tokenizer and model (eval, on ``device``) from a tuned model or adapter directory."""
    from transformers import AutoModel, AutoTokenizer

    path = Path(path)
    layout = check_model_directory(path, what)
    info = read_info(path)
    base_model = base_model or info.get("base_model")
    if layout == "adapter":
        from peft import PeftConfig, PeftModel

        cfg = PeftConfig.from_pretrained(str(path))
        base = base_model or cfg.base_model_name_or_path
        if not base:
            raise ConditionError(f"{what}: {path} is an adapter without a base model; set base_model")
        tok, model = load_model(base, "cpu")
        if getattr(cfg, "is_prompt_learning", False):
            return tok, _prompted(model, path, cfg, what).eval().to(device)
        model = PeftModel.from_pretrained(model, str(path)).merge_and_unload()
        return tok, model.eval().to(device)
    has_tokenizer = any((path / n).exists() for n in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"))
    if has_tokenizer:
        try:
            tok = AutoTokenizer.from_pretrained(str(path), add_prefix_space=True)
        except TypeError:
            tok = AutoTokenizer.from_pretrained(str(path))
    elif base_model:
        tok, _ = load_model(base_model, "cpu")
    else:
        raise ConditionError(f"{what}: {path} has no tokenizer files and no base_model to take one from")
    model = AutoModel.from_pretrained(str(path), use_safetensors=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok, model.eval().to(device)


def _prompted(model, path: Path, cfg, what: str):
    """The base ``model`` run with the prompts of the prompt-learning adapter at ``path``."""
    from peft import PeftModel, TaskType

    from ..tasks.methods import TuningError, prompted_backbone

    kind = getattr(cfg.peft_type, "value", str(cfg.peft_type))
    if kind not in ("PREFIX_TUNING", "PROMPT_TUNING"):
        raise ConditionError(f"{what}: {path} is a {kind} prompt-learning adapter; the tuned kind extracts "
                             f"features through PREFIX_TUNING (P-tuning v2) and PROMPT_TUNING adapters only")
    cfg.task_type = TaskType.FEATURE_EXTRACTION   # the prompts over the bare backbone; a task head is never read
    try:
        with warnings.catch_warnings():   # peft 0.21 asks transformers 5 a deprecated question
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            peft_model = PeftModel.from_pretrained(model, str(path), config=cfg)
        return prompted_backbone(peft_model)
    except TuningError as exc:
        raise ConditionError(f"{what}: {path}: {exc}") from exc


def check_fold_rule(name: str, info: dict, folds, grids) -> None:
    """The fold rule for a tuned model fitted on responses or labels of this study: the stories it
    was fitted on (``fitted_on_stories`` in its ``brainalign.json``) must never be in a test fold.

    Raises
    ------
    ConditionError naming the condition, the stories and the folds.
    """
    fitted = set(map(str, info.get("fitted_on_stories") or []))
    if not fitted or folds is None or grids is None:
        return
    import numpy as np

    stories = np.repeat(grids["story"].astype(str).to_numpy(), grids["n_trs"].to_numpy())
    test = folds[folds["role"] == "test"]
    leaked = {}
    for fold, rows in test.groupby("fold"):
        hit = sorted(set(stories[rows["sample"].to_numpy()]) & fitted)
        if hit:
            leaked[int(fold)] = hit
    if leaked:
        raise ConditionError(
            f"condition {name!r}: its model was fitted on stories {sorted(fitted)}, and encoding would test it "
            f"on some of them (fold: stories {leaked}); the fold rule forbids it. Leave those stories out of "
            f"study.stories for this run, or tune one model per outer fold")


class TunedKind(TextKind):
    """``tuned``: ``{kind: tuned, model_dataset: <catalog name, default <condition>.tuned_model>,
    modality: text | speech, base_model, method, task, trainable_fraction, context_words,
    window_s, stride_s, family}`` (module docstring).

    ``modality: speech`` reads a Wav2Vec2 / HuBERT / Whisper directory (a brain-tuned speech model)
    through the speech kind's windows (level ``tr``); ``text`` (default) through the text path.
    Description fields missing from the parameters come from the directory's ``brainalign.json``.
    The extraction refuses a model whose ``brainalign.json`` lists ``fitted_on_stories`` that an
    encoding test fold holds (:func:`check_fold_rule`).
    """

    name = "tuned"
    keys = ("model_dataset", "modality", "base_model", "method", "task", "trainable_fraction", "context_words",
            "window_s", "stride_s", "family")
    required = ()

    def check(self, name: str, params: dict) -> dict:
        params = super().check(name, params)
        params.setdefault("model_dataset", f"{name}.tuned_model")
        params.setdefault("modality", "text")
        if params["modality"] not in ("text", "speech"):
            raise ConditionError(f"condition {name!r}: modality must be text or speech, got {params['modality']!r}")
        if params["modality"] == "speech":
            from .speech import SpeechKind

            word_only = sorted(k for k in params if k in EMBEDDING_OVERRIDES and k not in SpeechKind.overrides)
            if word_only or "context_words" in params:
                raise ConditionError(f"condition {name!r}: {word_only + (['context_words'] if 'context_words' in params else [])} "
                                     f"apply to text models, not to a speech model (modality: speech)")
            params.setdefault("window_s", 16.0)
            params.setdefault("stride_s", 0.1)
        elif any(k in params for k in ("window_s", "stride_s", "family")):
            raise ConditionError(f"condition {name!r}: window_s, stride_s and family apply to modality: speech")
        return params

    def level_of(self, params: dict) -> str:
        return "tr" if params.get("modality") == "speech" else "word"

    def inputs(self, name: str, params: dict) -> list[str]:
        first = ["stimulus_audio", "tr_grids"] if params.get("modality") == "speech" else ["words", "tr_grids"]
        return [*first, params["model_dataset"], "folds"]

    def _directory(self, params: dict, data: dict):
        from .base import input_argument

        directory = data[input_argument(params["model_dataset"])]
        return getattr(directory, "path", directory)

    def load(self, name: str, params: dict, device: str, **data):
        base = params.get("base_model")
        return load_tuned(self._directory(params, data), resolve_model(base) if base else None, device,
                          what=f"condition {name!r} ({params['model_dataset']})")

    def extract(self, name: str, params: dict, embedding: dict, layers: list[int], **data) -> dict[int, dict]:
        path = self._directory(params, data)
        info = read_info(path)
        if info.get("per_fold"):
            return self._extract_per_fold(name, params, embedding, layers, Path(path), info, **data)
        check_fold_rule(name, info, data.get("folds"), data.get("tr_grids"))
        if params.get("modality") == "speech":
            from .speech import SpeechKind

            check_model_directory(path, f"condition {name!r} ({params['model_dataset']})")  # never a pickle
            return SpeechKind().extract(name, {**params, "model": str(path)}, embedding, layers, **data)
        return super().extract(name, params, embedding, layers, **data)

    def _extract_per_fold(self, name, params, embedding, layers, path: Path, info: dict, **data) -> dict[int, dict]:
        """One model per outer fold (brain_tuning): fold ``k``'s features of every story under
        ``"<k>/<story>"`` keys, after checking that fold ``k``'s model saw none of fold ``k``'s test
        samples (:func:`brainalign.core.brain_tuning.run.check_per_fold_rule`)."""
        from ..brain_tuning.run import check_per_fold_rule

        folds = data.get("folds")
        if folds is None:
            raise ConditionError(f"condition {name!r}: a per-fold model directory needs the folds table")
        have = sorted(int(f) for f in info["folds"])
        want = sorted(int(f) for f in folds["fold"].unique())
        if have != want:
            raise ConditionError(f"condition {name!r}: {path} holds models for folds {have}, the encoding has folds "
                                 f"{want}; rerun brain_tuning with the current cv parameters")
        out: dict[int, dict] = {layer: {} for layer in layers}
        for f in have:
            sub = path / f"fold_{f}"
            check_per_fold_rule(name, read_info(sub), f, folds)
            feats = self.extract(name, params, embedding, layers,
                                 **{**data, input_argument(params["model_dataset"]): sub, "folds": None})
            for layer in layers:
                for story, arr in feats[layer].items():
                    out[layer][f"{f}/{story}"] = arr
        return out

    def describe(self, name: str, params: dict, info: dict | None = None) -> dict:
        info = info or {}

        def pick(key):
            return params.get(key) if params.get(key) is not None else info.get(key)

        return {"condition": name, "kind": self.name, "base_model": pick("base_model"), "method": pick("method"),
                "task": pick("task"), "trainable_fraction": pick("trainable_fraction"),
                "details": params["model_dataset"]}
