"""Tuning methods: how much of a task model is trained, and how the result is saved.

:data:`METHODS` maps a method name to a :class:`TuningMethod`; add one by adding a class and an
entry. ``METHODS[name].apply(model, task_type, params) -> model`` prepares a task model for
training (which parameters train, which parameters the method adds) and returns the model to
train: the same task model object, called as before (``model(**batch)`` gives its loss/logits).

Task models
-----------
``task_type`` is one of :data:`TASK_TYPES` (``sentence``, ``pair``, ``token``, ``span``, ``qa``);
the model is a transformers ``AutoModelFor{SequenceClassification,TokenClassification,
QuestionAnswering}`` (sentence/pair, token, qa) or a custom module (``span``:
:class:`~brainalign.core.tasks.types.SpanClassifier`) holding its transformer *backbone* as a
child module reachable as ``.base_model`` (or ``.backbone``). Everything of the task model outside
the backbone is its *head* (``classifier``, ``qa_outputs``, the span head); the backbone's own
``pooler`` counts as backbone.

Methods
-------
``full``     every parameter trains.
``partial``  the backbone is frozen except its top ``top_layers`` encoder layers; or, with
             ``fraction``, the smallest top block of layers whose parameter count reaches that
             proportion of the backbone's parameters; or, with ``layer_fraction``, the top
             ``max(1, round(layer_fraction * n_layers))`` layers (the same share of any depth). Embeddings (and the pooler) stay frozen; the
             head trains. Layers are found at ``encoder.layer`` (BERT, RoBERTa, ELECTRA, XLM-R),
             ``transformer.layer`` (DistilBERT), ``encoder.layers``, ``layers`` or ``h`` (GPT-2); another layout
             is a clear error.
``prefix``   P-tuning v2: deep prompts, a learned key/value prefix of ``prefix_length`` (16)
             virtual tokens at every layer (peft ``PrefixTuningConfig``; ``prefix_projection``
             False by default: the prefix is a plain embedding, True: reparameterised by an MLP
             of width ``encoder_hidden_size``, saved as the projected prefix).
``prompt``   shallow prompt tuning: ``num_virtual_tokens`` (20) learned input embeddings,
             randomly initialised, prepended to the input (peft ``PromptTuningConfig``).
``lora``     peft ``LoraConfig``: ``r`` 8, ``alpha`` 16, ``dropout`` 0.1 on ``target_modules``
             (``["query", "value"]``).
For ``prefix``, ``prompt`` and ``lora`` the backbone is frozen (its weights stay bit-identical
through training) and the head trains; ``max_length`` (optional, any method) is the longest input
in tokens that training will feed, checked against the positions the model has.

How the peft methods are wired (a decision)
-------------------------------------------
Every peft method is a ``FEATURE_EXTRACTION`` adapter **of the backbone**, for every task type
(not peft's SEQ_CLS / TOKEN_CLS / QUESTION_ANS wrappers of the whole task model); the head stays
the task model's own module and trains through ``requires_grad``. Reasons, checked with
transformers 5.24 / peft 0.21: peft's task wrappers run prefix tuning through a
``past_key_values`` argument that transformers 5 renamed to ``cache`` ("Model does not support
past key values which are required for prefix tuning"); with prompt tuning they hand the head the
virtual positions too (token/QA logits of length prompt + input against labels of the input's
length; the sequence head pools the first *virtual* token instead of [CLS]); and an adapter saved
from a task wrapper carries the task model's key names, which do not load over the bare backbone
that feature extraction uses. One mechanism serves all five task types, ``span`` included.

* ``lora`` injects its low-rank matrices into the backbone's modules in place.
* ``prefix`` and ``prompt`` replace the backbone child of the task model by a
  :class:`PromptedBackbone`: it runs the backbone with the learned prompts (prefix: a fresh
  key/value cache of the virtual tokens at every layer and an attention mask extended over them;
  prompt: the prompt embeddings prepended to the input embeddings) and **drops the virtual
  positions** from ``last_hidden_state`` and ``hidden_states`` (recomputing the pooler from the
  real [CLS]), so every head - and feature extraction - sees exactly the input's positions.

Prefix tuning and positions (what is true)
------------------------------------------
Prompt tuning's virtual tokens are real inputs: they take position slots 0..P-1 and the text
starts at P. Prefix tuning adds no input, but transformers models with absolute position
embeddings (BERT, RoBERTa) number the input from the cache length, exactly as for cached decoding
(``position_ids = arange(P, P + L)``), so the text also starts at position P - as in the P-tuning
v2 reference implementation, which passes the prefix as ``past_key_values`` to ``BertModel``.
Both methods therefore need ``P + max_length <= max_position_embeddings``; ``apply`` raises when a
given ``max_length`` (or the prefix alone) does not fit, :class:`PromptedBackbone` raises before
running an input that does not fit, and feature extraction keeps its windows ``P`` tokens shorter
(``virtual_positions``).

Parameter counts (the convention, for docs/methods.md)
------------------------------------------------------
:func:`count_parameters` counts the model *as trained*: ``total_params`` is every distinct
parameter of the task model after ``apply`` - backbone, head and the parameters the method adds
(LoRA matrices, the prefix or prompt embeddings, the prefix MLP when ``prefix_projection``);
``trainable_params`` is those with ``requires_grad``; the head is included in both;
``trainable_fraction = trainable_params / total_params``. Buffers are not parameters.

Saved layout (:func:`save_tuned`)
---------------------------------
``full``/``partial``: the backbone as a transformers directory (``config.json``,
``model.safetensors``; loadable with ``AutoModel``); peft methods: the backbone adapter
(``adapter_config.json``, ``adapter_model.safetensors``, ``base_model_name_or_path`` the base
model). Both: the head's weights in ``head.safetensors`` (task-model key names; feature
extraction never reads them), the tokenizer when given, and ``brainalign.json`` (base_model,
method, task, task_type, method_params, trainable/total params, trainable_fraction, virtual_tokens
and everything of ``info``, e.g. ``fitted_on_stories``), which the ``tuned`` condition kind reads.
"""
from __future__ import annotations

import json
import logging
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: the task types a method can be asked to serve
TASK_TYPES = ("sentence", "pair", "token", "span", "qa")

#: transformers head classes expected per task type (a custom module is accepted for any type)
_HEAD_CLASSES = {"sentence": "ForSequenceClassification", "pair": "ForSequenceClassification",
                 "token": "ForTokenClassification", "qa": "ForQuestionAnswering"}

#: where encoder layers sit in a backbone (dotted attribute paths, first match wins; ``h``: GPT-2)
LAYER_PATHS = ("encoder.layer", "transformer.layer", "encoder.layers", "layers", "h", "transformer.h")

HEAD_FILE = "head.safetensors"
INFO_FILE = "brainalign.json"   # the name representations.tuned reads


class TuningError(ValueError):
    """A tuning method cannot be applied as asked (unknown method, task type, parameter, layout)."""


@dataclass
class TuningState:
    """What :meth:`TuningMethod.apply` did to a model (``model.brainalign_tuning``).

    Attributes
    ----------
    method, task_type : names.
    params : the method's parameters, defaults filled in and derived values resolved
        (``partial``: ``top_layers``).
    backbone_attr : name of the task model's child that holds the backbone.
    peft_model : the peft ``PeftModel`` over the backbone (peft methods), else None.
    """

    method: str
    task_type: str
    params: dict
    backbone_attr: str
    peft_model: Any = field(default=None, repr=False)


# ----------------------------------------------------------------------------- model anatomy
def find_backbone(model) -> tuple[str, Any]:
    """The child of a task model that holds its transformer backbone.

    Returns
    -------
    (name, module): ``getattr(model, name) is module``.

    Raises
    ------
    TuningError when the model exposes no backbone child (``.base_model`` or ``.backbone``), or is a
    bare backbone without a head.
    """
    import torch.nn as nn

    children = dict(model.named_children())
    for candidate in (getattr(model, "base_model", None), children.get("backbone")):
        if candidate is model:
            raise TuningError(f"{type(model).__name__} is a bare backbone: a task model (backbone + head, e.g. "
                              f"AutoModelForSequenceClassification) is needed")
        if isinstance(candidate, nn.Module):
            for name, child in children.items():
                if child is candidate:
                    return name, child
    raise TuningError(f"{type(model).__name__}: no backbone found; a task model must hold its transformer as a "
                      f"child module reachable as .base_model or .backbone (children: {sorted(children)})")


def encoder_layers(backbone):
    """The backbone's list of encoder layers (:data:`LAYER_PATHS`); a clear error otherwise."""
    import torch.nn as nn

    inner = backbone.backbone if isinstance(backbone, __getattr__("PromptedBackbone")) else backbone
    for path in LAYER_PATHS:
        obj = inner
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, nn.ModuleList) and len(obj):
            return obj
    raise TuningError(f"cannot find the encoder layers of {type(inner).__name__}: looked for "
                      f"{', '.join(LAYER_PATHS)}; add its layout to LAYER_PATHS")


def _head_parameters(model, backbone) -> list:
    inside = {id(p) for p in backbone.parameters()}
    return [p for p in model.parameters() if id(p) not in inside]


def count_parameters(model) -> dict:
    """Trainable and total parameter counts of a model as trained (module docstring: the
    convention).

    Returns
    -------
    dict with ``trainable_params`` (int), ``total_params`` (int) and ``trainable_fraction``
    (float, trainable / total; 0.0 for a model without parameters). Shared parameters count once.
    """
    total = trainable = 0
    for p in model.parameters():   # distinct parameters (nn.Module removes duplicates)
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return {"trainable_params": int(trainable), "total_params": int(total),
            "trainable_fraction": float(trainable / total) if total else 0.0}


def _max_positions(backbone) -> int | None:
    value = getattr(getattr(backbone, "config", None), "max_position_embeddings", None)
    return int(value) if value else None


def _check_positions(method: str, n_virtual: int, params: dict, backbone) -> None:
    limit = _max_positions(backbone)
    if limit is None:
        return
    max_length = params.get("max_length")
    if max_length is not None and not n_virtual and int(max_length) > limit:
        raise TuningError(f"{method}: max_length {int(max_length)} exceeds the model's max_position_embeddings {limit}")
    if max_length is not None and n_virtual + int(max_length) > limit:
        raise TuningError(f"{method}: {n_virtual} virtual tokens + max_length {int(max_length)} = "
                          f"{n_virtual + int(max_length)} positions, but the model has max_position_embeddings "
                          f"{limit} (the virtual tokens take position slots: module docstring); shorten one")
    if n_virtual and n_virtual >= limit:
        raise TuningError(f"{method}: {n_virtual} virtual tokens leave no position for the input "
                          f"(max_position_embeddings {limit})")


# ----------------------------------------------------------------------------- methods
class TuningMethod:
    """A tuning method: ``apply(model, task_type, params) -> model`` (module docstring).

    Subclasses set ``name``, ``defaults`` (the parameters they take, with default values; None:
    no default) and ``task_types`` (those they serve), and implement ``_prepare``.
    """

    name = ""
    defaults: dict = {}
    task_types: tuple = TASK_TYPES
    common = {"max_length": None}

    def check_params(self, params: dict | None) -> dict:
        """``params`` merged over the defaults; unknown keys raise :class:`TuningError`."""
        params = dict(params or {})
        allowed = {**self.common, **self.defaults}
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise TuningError(f"tuning method {self.name!r}: unknown parameters {unknown}; it takes {sorted(allowed)}")
        return {**allowed, **params}

    def apply(self, model, task_type: str, params: dict | None = None):
        """Prepare ``model`` (a task model of ``task_type``) for training with this method.

        Returns
        -------
        The model to train (the same task model object), with ``model.brainalign_tuning`` a
        :class:`TuningState`.

        Raises
        ------
        TuningError for an unknown task type, a task type this method cannot serve, a model whose
        head does not fit the task type, a model already prepared, wrong parameters, or an input
        that cannot fit the model's positions.
        """
        if task_type not in TASK_TYPES:
            raise TuningError(f"unknown task type {task_type!r}; known: {list(TASK_TYPES)}")
        if task_type not in self.task_types:
            raise TuningError(f"tuning method {self.name!r} cannot serve task type {task_type!r} "
                              f"(it serves {list(self.task_types)})")
        if getattr(model, "brainalign_tuning", None) is not None:
            raise TuningError(f"the model is already prepared with method {model.brainalign_tuning.method!r}; "
                              f"apply a method to a fresh task model")
        expected = _HEAD_CLASSES.get(task_type)
        cls = type(model).__name__
        from transformers import PreTrainedModel

        if expected and isinstance(model, PreTrainedModel) and not cls.endswith(expected):
            raise TuningError(f"task type {task_type!r} needs a model with a {expected[3:]} head "
                              f"(AutoModel{expected}), got {cls}")
        params = self.check_params(params)
        attr, backbone = find_backbone(model)
        _check_positions(self.name, 0, params, backbone)
        state = TuningState(self.name, task_type, params, attr)
        self._prepare(model, attr, backbone, state)
        model.brainalign_tuning = state
        counts = count_parameters(model)
        log.info("tuning method %s (%s): %d of %d parameters trainable (%.4f)", self.name, task_type,
                 counts["trainable_params"], counts["total_params"], counts["trainable_fraction"])
        return model

    def _prepare(self, model, attr: str, backbone, state: TuningState) -> None:
        raise NotImplementedError


class Full(TuningMethod):
    """``full``: every parameter trains."""

    name = "full"
    defaults: dict = {}

    def _prepare(self, model, attr, backbone, state):
        for p in model.parameters():
            p.requires_grad_(True)


class Partial(TuningMethod):
    """``partial``: the top ``top_layers`` encoder layers (or the smallest top block holding
    ``fraction`` of the backbone's parameters, or the top ``layer_fraction`` of the layers) and the
    head train; the rest of the backbone, embeddings and pooler included, is frozen."""

    name = "partial"
    defaults = {"top_layers": None, "fraction": None, "layer_fraction": None}

    def _prepare(self, model, attr, backbone, state):
        params = state.params
        layers = encoder_layers(backbone)
        n = len(layers)
        k, fraction, layer_fraction = params["top_layers"], params["fraction"], params["layer_fraction"]
        if sum(v is not None for v in (k, fraction, layer_fraction)) != 1:
            raise TuningError("partial: give exactly one of top_layers (the number of top encoder layers to "
                              f"train, 0..{n}), fraction (a proportion of the backbone's parameters, in (0, 1]) "
                              "and layer_fraction (a proportion of the encoder layers, in (0, 1])")
        if layer_fraction is not None:
            layer_fraction = float(layer_fraction)
            if not 0 < layer_fraction <= 1:
                raise TuningError(f"partial: layer_fraction must be in (0, 1], got {layer_fraction}")
            k = max(1, int(round(layer_fraction * n)))
            state.params = {**params, "top_layers": k}
        if k is not None:
            if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n:
                raise TuningError(f"partial: top_layers must be an integer in 0..{n} (the backbone has {n} "
                                  f"encoder layers), got {k!r}")
        else:
            fraction = float(fraction)
            if not 0 < fraction <= 1:
                raise TuningError(f"partial: fraction must be in (0, 1], got {fraction}")
            backbone_total = sum(p.numel() for p in backbone.parameters())
            sizes = [sum(p.numel() for p in layer.parameters()) for layer in layers]
            acc, k = 0, None
            for i in range(1, n + 1):
                acc += sizes[n - i]
                if acc >= fraction * backbone_total:
                    k = i
                    break
            if k is None:
                raise TuningError(f"partial: fraction {fraction} cannot be reached by encoder layers: all {n} layers "
                                  f"hold {acc / backbone_total:.4f} of the backbone's parameters (embeddings stay "
                                  f"frozen); ask for at most that, or use method 'full'")
            state.params = {**params, "top_layers": k}
        for p in backbone.parameters():
            p.requires_grad_(False)
        for layer in list(layers)[n - k:]:
            for p in layer.parameters():
                p.requires_grad_(True)
        for p in _head_parameters(model, backbone):
            p.requires_grad_(True)


class _PeftMethod(TuningMethod):
    """A peft adapter of the backbone (``FEATURE_EXTRACTION``); the head trains."""

    def _config(self, params: dict, backbone):
        raise NotImplementedError

    def _prepare(self, model, attr, backbone, state):
        from peft import get_peft_model

        config = self._config(state.params, backbone)
        try:
            with warnings.catch_warnings():   # peft 0.21 asks transformers 5 a deprecated question
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
                peft_model = get_peft_model(backbone, config)
        except ValueError as exc:
            raise TuningError(f"tuning method {self.name!r} cannot be applied to {type(backbone).__name__} with "
                              f"parameters {state.params}: {str(exc).splitlines()[0]}") from exc
        state.peft_model = peft_model
        if config.is_prompt_learning:
            setattr(model, attr, prompted_backbone(peft_model))
        for p in backbone.parameters():   # the backbone's own weights (LoRA layers are checked below)
            p.requires_grad_(False)
        for name, p in peft_model.named_parameters():
            if "lora_" in name or name.startswith("prompt_encoder."):
                p.requires_grad_(True)
        for p in _head_parameters(model, getattr(model, attr)):
            p.requires_grad_(True)


class Prefix(_PeftMethod):
    """``prefix``: P-tuning v2 (deep prompts at every layer; module docstring)."""

    name = "prefix"
    defaults = {"prefix_length": 16, "prefix_projection": False, "encoder_hidden_size": None}

    def _config(self, params, backbone):
        from peft import PrefixTuningConfig, TaskType

        n = int(params["prefix_length"])
        if n < 1:
            raise TuningError(f"prefix: prefix_length must be >= 1, got {n}")
        _check_positions(self.name, n, params, backbone)
        _cache_argument(backbone)
        extra = {"encoder_hidden_size": int(params["encoder_hidden_size"])} if params["encoder_hidden_size"] else {}
        return PrefixTuningConfig(task_type=TaskType.FEATURE_EXTRACTION, num_virtual_tokens=n,
                                  prefix_projection=bool(params["prefix_projection"]), **extra)


class Prompt(_PeftMethod):
    """``prompt``: shallow soft prompt at the input, randomly initialised (module docstring)."""

    name = "prompt"
    defaults = {"num_virtual_tokens": 20}

    def _config(self, params, backbone):
        from peft import PromptTuningConfig, PromptTuningInit, TaskType

        n = int(params["num_virtual_tokens"])
        if n < 1:
            raise TuningError(f"prompt: num_virtual_tokens must be >= 1, got {n}")
        _check_positions(self.name, n, params, backbone)
        return PromptTuningConfig(task_type=TaskType.FEATURE_EXTRACTION, num_virtual_tokens=n,
                                  prompt_tuning_init=PromptTuningInit.RANDOM)


class Lora(_PeftMethod):
    """``lora``: low-rank adapters (``r``, ``alpha``, ``dropout``, ``target_modules``)."""

    name = "lora"
    defaults = {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": ["query", "value"]}

    def _config(self, params, backbone):
        from peft import LoraConfig, TaskType

        if int(params["r"]) < 1:
            raise TuningError(f"lora: r must be >= 1, got {params['r']}")
        return LoraConfig(task_type=TaskType.FEATURE_EXTRACTION, r=int(params["r"]), lora_alpha=params["alpha"],
                          lora_dropout=float(params["dropout"]), target_modules=list(params["target_modules"]),
                          bias="none")


#: method name -> method (``METHODS[name].apply(model, task_type, params)``)
METHODS: dict[str, TuningMethod] = {m.name: m for m in (Full(), Partial(), Prefix(), Prompt(), Lora())}


def get_method(name: str) -> TuningMethod:
    """The registered method ``name``; :class:`TuningError` naming the known ones otherwise."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise TuningError(f"unknown tuning method {name!r}; known: {sorted(METHODS)}") from None


def apply_method(model, method: str, task_type: str, params: dict | None = None):
    """``METHODS[method].apply(model, task_type, params)`` with a clear error for unknown names."""
    return get_method(method).apply(model, task_type, params)


# ----------------------------------------------------------------------------- prompts in the backbone
def _cache_argument(backbone) -> str:
    """The keyword a backbone takes a key/value cache by (``cache`` in transformers 5,
    ``past_key_values`` before); :class:`TuningError` when it takes none."""
    import inspect

    names = inspect.signature(backbone.forward).parameters
    for name in ("cache", "past_key_values"):
        if name in names:
            return name
    raise TuningError(f"prefix tuning needs a backbone that takes a key/value cache; {type(backbone).__name__}."
                      f"forward takes neither 'cache' nor 'past_key_values'")


_PROMPT_KINDS = {"PREFIX_TUNING": "prefix", "PROMPT_TUNING": "prompt"}


def _ptype(peft_type) -> str:
    return getattr(peft_type, "value", str(peft_type))


def _prompted_getattr(self, name):
    import torch.nn as nn

    try:
        return nn.Module.__getattr__(self, name)
    except AttributeError:
        return getattr(nn.Module.__getattr__(self, "backbone"), name)


def _prompted_class():
    import torch
    import torch.nn as nn

    class PromptedBackbone(nn.Module):
        """A backbone run with the learned prompts of a peft prefix- or prompt-tuning adapter
        (module docstring). Called like the backbone; its outputs hold only the input's positions.

        Parameters
        ----------
        peft_model : a peft ``PeftModel`` (PREFIX_TUNING or PROMPT_TUNING) over the backbone.

        Attributes
        ----------
        backbone : the transformers backbone; prompt_encoder : peft's prompt encoders (registered
        here, so ``parameters()``/``state_dict()`` - and feature-cache fingerprints - hold them);
        kind : ``"prefix"`` or ``"prompt"``; virtual_positions : the number of virtual tokens (the
        position slots they take). Other attributes (``config``, ``pooler``, ...) are the
        backbone's.
        """

        def __init__(self, peft_model):
            super().__init__()
            cfg = peft_model.active_peft_config
            kind = _PROMPT_KINDS.get(_ptype(cfg.peft_type))
            if kind is None:
                raise TuningError(f"prompt-learning adapter type {_ptype(cfg.peft_type)} is not supported "
                                  f"(supported: {sorted(_PROMPT_KINDS)})")
            backbone = peft_model.get_base_model()
            bcfg = backbone.config
            if kind == "prefix" and (int(cfg.num_layers) != int(bcfg.num_hidden_layers)
                                     or int(cfg.token_dim) != int(bcfg.hidden_size)):
                raise TuningError(f"prefix adapter made for {cfg.num_layers} layers of width {cfg.token_dim}, but the "
                                  f"backbone has {bcfg.num_hidden_layers} layers of width {bcfg.hidden_size}: "
                                  f"another base model")
            if kind == "prompt" and int(cfg.token_dim) != int(bcfg.hidden_size):
                raise TuningError(f"prompt adapter of width {cfg.token_dim} over a backbone of width "
                                  f"{bcfg.hidden_size}: another base model")
            self.backbone = backbone
            self.prompt_encoder = peft_model.prompt_encoder
            self.__dict__["peft_model"] = peft_model   # not a submodule: it holds the backbone too
            self.kind = kind
            self.virtual_positions = int(cfg.num_virtual_tokens)
            self._cache_name = _cache_argument(backbone) if kind == "prefix" else None

        __getattr__ = _prompted_getattr

        def save_pretrained(self, *args, **kwargs):
            raise TuningError("a prompted backbone is saved with brainalign.core.tasks.methods.save_tuned (the "
                              "adapter, not the bare backbone)")

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                    inputs_embeds=None, **kwargs):
            ref = input_ids if input_ids is not None else inputs_embeds
            if ref is None:
                raise ValueError("PromptedBackbone: give input_ids or inputs_embeds")
            b, n = int(ref.shape[0]), int(ref.shape[1])
            p = self.virtual_positions
            limit = _max_positions(self.backbone)
            if limit is not None and p + n > limit:
                raise ValueError(f"{self.kind} tuning: {p} virtual tokens + {n} input tokens exceed the model's "
                                 f"{limit} positions; inputs may hold at most {limit - p} tokens")
            if attention_mask is None:
                attention_mask = torch.ones(b, n, dtype=torch.long, device=ref.device)
            mask = torch.cat([attention_mask.new_ones(b, p), attention_mask], dim=1)
            if self.kind == "prefix":
                if kwargs.get("cache") is not None or kwargs.get("past_key_values") is not None:
                    raise ValueError("PromptedBackbone (prefix): the key/value cache holds the prefix; pass none")
                kwargs.pop("past_key_values", None)
                kwargs[self._cache_name] = self.peft_model.get_prompt(b)   # a fresh cache per call
                if position_ids is not None:
                    position_ids = position_ids + p
                return self.backbone(input_ids=input_ids, attention_mask=mask, token_type_ids=token_type_ids,
                                     position_ids=position_ids, inputs_embeds=inputs_embeds, **kwargs)
            embeds = inputs_embeds if inputs_embeds is not None else self.backbone.get_input_embeddings()(input_ids)
            prompts = self.peft_model.get_prompt(b).to(device=embeds.device, dtype=embeds.dtype)
            embeds = torch.cat([prompts, embeds], dim=1)
            if token_type_ids is not None:
                token_type_ids = torch.cat([token_type_ids.new_zeros(b, p), token_type_ids], dim=1)
            if position_ids is not None:
                head = torch.arange(p, device=position_ids.device).expand(position_ids.shape[0], p)
                position_ids = torch.cat([head, position_ids + p], dim=1)
            out = self.backbone(inputs_embeds=embeds, attention_mask=mask, token_type_ids=token_type_ids,
                                position_ids=position_ids, **kwargs)
            return self._drop_virtual(out, p)

        def _drop_virtual(self, out, p: int):
            if isinstance(out, tuple):
                raise TypeError("PromptedBackbone needs the backbone's outputs as a ModelOutput (return_dict)")
            out["last_hidden_state"] = out["last_hidden_state"][:, p:]
            if out.get("hidden_states") is not None:
                out["hidden_states"] = tuple(h[:, p:] for h in out["hidden_states"])
            pooler = getattr(self.backbone, "pooler", None)
            if out.get("pooler_output") is not None and pooler is not None:
                out["pooler_output"] = pooler(out["last_hidden_state"])   # from the real [CLS]
            return out

    return PromptedBackbone


_PROMPTED = None


def __getattr__(name: str):   # PromptedBackbone without importing torch at module import
    global _PROMPTED
    if name == "PromptedBackbone":
        if _PROMPTED is None:
            _PROMPTED = _prompted_class()
        return _PROMPTED
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def prompted_backbone(peft_model):
    """:class:`PromptedBackbone` over a prefix- or prompt-tuning ``PeftModel`` (e.g. loaded with
    ``PeftModel.from_pretrained``): the backbone that runs with the learned prompts."""
    return __getattr__("PromptedBackbone")(peft_model)


# ----------------------------------------------------------------------------- saving
def head_state_dict(model) -> dict:
    """The task model's weights outside its backbone (key names of the task model)."""
    state = getattr(model, "brainalign_tuning", None)
    attr = state.backbone_attr if state is not None else find_backbone(model)[0]
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
            if not k.startswith(attr + ".")}


def save_tuned(model, tokenizer, folder: str | Path, info: dict | None = None) -> Path:
    """Write a model tuned after :meth:`TuningMethod.apply` as a directory the ``tuned`` condition
    kind reads (module docstring: saved layout).

    Parameters
    ----------
    model : the task model returned by ``apply`` (and trained).
    tokenizer : its tokenizer (saved beside), or None.
    folder : the directory; it is written beside and replaces any old one only when complete.
    info : extra fields for ``brainalign.json`` (``base_model``, ``task``, ``fitted_on_stories``,
        ...). The fields computed here (method, task_type, method_params, counts) win; an ``info``
        ``method`` that differs from the model's is an error.

    Returns
    -------
    The directory.
    """
    from safetensors.torch import save_file

    state = getattr(model, "brainalign_tuning", None)
    if state is None:
        raise TuningError("save_tuned: the model was not prepared by a tuning method (METHODS[name].apply)")
    info = dict(info or {})
    if info.get("method") not in (None, state.method):
        raise TuningError(f"save_tuned: info says method {info['method']!r} but the model was tuned with "
                          f"{state.method!r}")
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".saving")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    backbone = getattr(model, state.backbone_attr)
    if state.peft_model is not None:
        state.peft_model.save_pretrained(str(tmp))
        saved = "adapter"
        base = state.peft_model.get_base_model()
    else:
        backbone.save_pretrained(str(tmp))
        saved = "backbone"
        base = backbone
    head = head_state_dict(model)
    if head:
        save_file(head, str(tmp / HEAD_FILE))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(tmp))
    counts = count_parameters(model)
    record = {"base_model": info.pop("base_model", None) or getattr(base.config, "_name_or_path", None),
              **info, "method": state.method, "task_type": state.task_type,
              "method_params": state.params, "saved": saved, "head_file": HEAD_FILE if head else None,
              "virtual_tokens": getattr(backbone, "virtual_positions", 0) if state.peft_model is not None else 0,
              **counts}
    record.setdefault("task", None)
    (tmp / INFO_FILE).write_text(json.dumps(record, indent=2, default=str))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.replace(folder)
    return folder


class TunedDirectory:
    """``(model, tokenizer, info)`` with ``save_pretrained(folder)`` = :func:`save_tuned`, so a node
    can return it to a :class:`brainalign.io.ModelDirectoryDataset`."""

    def __init__(self, model, tokenizer=None, info: dict | None = None):
        self.model, self.tokenizer, self.info = model, tokenizer, dict(info or {})

    def save_pretrained(self, folder, **_):
        save_tuned(self.model, self.tokenizer, folder, self.info)
