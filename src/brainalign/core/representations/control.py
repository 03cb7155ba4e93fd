"""``control``: the same architecture without what training or word order gives it.

``control: random_init``  the base model's architecture with seeded random weights
                          (``AutoModel.from_config`` after ``torch.manual_seed(seed)``, on the CPU so
                          the weights do not depend on the device); the tokenizer is the base model's.
``control: no_position``  the pretrained model without word-order information, ``mode``:

  ``zero_positions`` (default)  the learned absolute position-embedding table is set to zero. With no
      position signal, self-attention is permutation-equivariant: a token's representation depends
      on which words are in its window, not on their order. Only for models with an absolute
      position table (BERT, RoBERTa, MiniLM, GPT-2's ``wpe``); models with rotary or relative
      positions have none to zero, and a causal attention mask still leaks order, so those are
      refused with an error (:func:`order_leaks`) and need
  ``shuffle``  the preceding words of every context window are shuffled (seeded by ``seed`` and the
      word's index), the word itself stays last: model-agnostic, and the model still sees a
      well-formed position sequence, only over scrambled text.

Why both: zeroing removes the model's access to order while keeping the input text; shuffling keeps
the model intact and removes order from the input. The related work uses either; the default is the
one that leaves the text unchanged.
"""
from __future__ import annotations

import logging

from .base import ConditionError
from .text import TextKind, load_model, resolve_model

log = logging.getLogger(__name__)

CONTROLS = ("random_init", "no_position")
NO_POSITION_MODES = ("zero_positions", "shuffle")


def random_init_model(model_name: str, seed: int = 0, device: str = "cpu"):
    """Tokenizer of ``model_name`` and a model of its architecture with random weights drawn under
    ``seed`` (deterministic: the same seed gives the same weights on any device)."""
    import torch
    from transformers import AutoConfig, AutoModel

    tok, _ = load_model(model_name, "cpu")
    config = AutoConfig.from_pretrained(resolve_model(model_name))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = AutoModel.from_config(config)
    return tok, model.eval().to(device)


def position_tables(model) -> list:
    """The learned absolute position-embedding tables of a model (``torch.nn.Embedding`` modules
    named ``position_embeddings`` or ``wpe``)."""
    import torch

    return [m for n, m in model.named_modules()
            if isinstance(m, torch.nn.Embedding) and n.split(".")[-1] in ("position_embeddings", "wpe")]


def order_leaks(model) -> str | None:
    """Why zeroing position tables would not remove word order from ``model`` (None when it does):
    a causal (decoder) model sees order through its attention mask; relative or rotary position
    schemes carry order outside the absolute table."""
    cfg = model.config
    archs = " ".join(getattr(cfg, "architectures", None) or [])
    if getattr(cfg, "is_decoder", False) or "CausalLM" in archs or "LMHead" in archs or \
            cfg.model_type in CAUSAL_MODEL_TYPES:
        return f"{cfg.model_type} is a causal model: its attention mask leaks word order"
    kind = getattr(cfg, "position_embedding_type", "absolute")
    if kind != "absolute":
        return f"{cfg.model_type} uses {kind} position embeddings, which zeroing the absolute table leaves in place"
    if getattr(cfg, "rope_theta", None) is not None or getattr(cfg, "rotary_dim", None) is not None:
        return f"{cfg.model_type} uses rotary position embeddings"
    return None


#: model types whose AutoModel is causal (order leaks through the mask even without positions)
CAUSAL_MODEL_TYPES = {"gpt2", "gpt_neo", "gpt_neox", "gptj", "opt", "llama", "mistral", "qwen2", "bloom",
                      "falcon", "phi", "gemma", "codegen", "xglm", "ctrl"}


def zero_position_embeddings(model):
    """Set every absolute position-embedding table of ``model`` to zero (in place); an error when
    it has none or when order would still leak (:func:`order_leaks`)."""
    import torch

    leak = order_leaks(model)
    if leak:
        raise ConditionError(f"no_position mode zero_positions: {leak}; use mode 'shuffle'")
    tables = position_tables(model)
    if not tables:
        raise ConditionError(f"{type(model).__name__} has no absolute position-embedding table to zero; "
                             f"use no_position mode 'shuffle'")
    with torch.no_grad():
        for t in tables:
            t.weight.zero_()
    return model


class ControlKind(TextKind):
    """``control``: ``{kind: control, control: random_init | no_position, model: <base>, seed: 0,
    mode: zero_positions | shuffle}`` (module docstring)."""

    name = "control"
    keys = ("model", "context_words", "control", "seed", "mode")
    required = ("model", "control")

    def check(self, name: str, params: dict) -> dict:
        params = super().check(name, params)
        if params["control"] not in CONTROLS:
            raise ConditionError(f"condition {name!r}: control must be one of {CONTROLS}, got {params['control']!r}")
        if params["control"] == "random_init" and "mode" in params:
            raise ConditionError(f"condition {name!r}: 'mode' applies to control no_position, not random_init")
        mode = params.setdefault("mode", "zero_positions") if params["control"] == "no_position" else None
        if mode is not None and mode not in NO_POSITION_MODES:
            raise ConditionError(f"condition {name!r}: no_position mode must be one of {NO_POSITION_MODES}, "
                                 f"got {mode!r}")
        params.setdefault("seed", 0)
        return params

    def load(self, name: str, params: dict, device: str, **data):
        if params["control"] == "random_init":
            log.info("condition %s: %s with random weights (seed %s)", name, params["model"], params["seed"])
            return random_init_model(params["model"], int(params["seed"]), device)
        tok, model = load_model(params["model"], device)
        if params["mode"] == "zero_positions":
            try:
                zero_position_embeddings(model)
            except ConditionError as exc:
                raise ConditionError(f"condition {name!r}: {exc}") from None
        return tok, model

    def fingerprint_extra(self, params: dict) -> dict | None:
        return {"shuffle": self.shuffle_seed(params)}

    def shuffle_seed(self, params: dict) -> int | None:
        if params["control"] == "no_position" and params["mode"] == "shuffle":
            return int(params["seed"])
        return None

    def describe(self, name: str, params: dict) -> dict:
        method = params["control"] if params["control"] == "random_init" else f"no_position-{params['mode']}"
        return {"condition": name, "kind": self.name, "base_model": params["model"], "method": method,
                "details": f"seed {params['seed']}"}
