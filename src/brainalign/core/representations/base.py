"""What every condition kind offers, and the condition parameters they share.

A *condition* names a representation: ``conditions: {<name>: {kind: <kind>, ...}}`` in the
parameters (``kind`` defaults to ``text``). A *kind* is a small class registered by name in
:data:`brainalign.core.representations.KINDS`; adding a kind is adding one module.

Every kind ends in the same feature datasets, so encoding, statistics and reports never ask which
kind they score. What a kind's extraction returns is given by its ``level``:

``word``  per layer, story -> float32 array (n_words, dim), one row per row of the words table
          (in ``word_index`` order); the embedding pipeline then resamples words to TRs
          (Lanczos or box), applies the response model (FIR delays or HRF) and trims.
``tr``    per layer, story -> float32 array (n_trs_total, dim) on the story's full (untrimmed)
          TR grid; the embedding pipeline applies the response model and trims.
``fold``  per layer, ``"<fold>/<story>"`` -> float32 array (n_trs, n_features): final TR features,
          one set per outer cross-validation fold (kinds fitted on responses or stimulus labels:
          the fold rule, docs/architecture.md). Encoding fits fold ``f`` on the arrays of fold ``f``.

Building pipelines is pure: ``check``, ``layers``, ``inputs`` and ``describe`` read parameters only
(no model, no data file); only ``extract`` loads models and data.
"""
from __future__ import annotations

from typing import Any, ClassVar

LEVELS = ("word", "tr", "fold")

#: embedding parameters a condition may override for itself (e.g. predictors that a dataset ships
#: already convolved with an HRF take ``response_model: none``)
EMBEDDING_OVERRIDES = ("response_model", "delays", "unit", "word_align", "downsample", "sentence_time",
                       "lanczos_window", "context_scope", "word_separator", "batch_size", "extraction")

#: columns of ``conditions.csv`` (empty where they do not apply)
DESCRIPTION_COLUMNS = ["condition", "kind", "base_model", "method", "task", "trainable_fraction", "source",
                       "transform", "details"]


class ConditionError(ValueError):
    """A condition's parameters are wrong; the message names the condition."""


class RepresentationKind:
    """Base class of a condition kind (see the module docstring).

    Subclasses set ``name``, ``level`` and implement :meth:`extract`; they may override
    :meth:`check` (validate and normalise the parameters), :meth:`layers`, :meth:`inputs` and
    :meth:`describe`.
    """

    name: ClassVar[str] = "base"
    level: ClassVar[str] = "word"
    #: parameter keys this kind accepts (besides ``kind``, ``layers`` and its ``overrides``);
    #: an unknown key is an error naming the condition, so a misspelling never passes silently
    keys: ClassVar[tuple[str, ...]] = ()
    #: keys that must be present
    required: ClassVar[tuple[str, ...]] = ()
    #: embedding parameters (:data:`EMBEDDING_OVERRIDES`) this kind honours when a condition sets them
    overrides: ClassVar[tuple[str, ...]] = EMBEDDING_OVERRIDES

    def check(self, name: str, params: dict) -> dict:
        """Validated copy of a condition's parameters (``kind`` included). Raises
        :class:`ConditionError` naming the condition and the problem."""
        params = dict(params or {})
        allowed = set(self.keys) | set(self.overrides) | {"kind", "layers"}
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ConditionError(f"condition {name!r} (kind {self.name}): unknown parameters {unknown}; "
                                 f"this kind takes {sorted(allowed)}")
        missing = [k for k in self.required if params.get(k) in (None, "")]
        if missing:
            raise ConditionError(f"condition {name!r} (kind {self.name}): missing {missing}")
        return params

    def level_of(self, params: dict) -> str:
        """The level of this condition's features (the kind's, unless it depends on parameters)."""
        return self.level

    def layers(self, name: str, params: dict, default: tuple[int, ...]) -> tuple[int, ...]:
        """The layers this condition is scored at: its own ``layers`` or the project's."""
        layers = params.get("layers")
        out = tuple(int(x) for x in (default if layers is None else layers))
        if not out:
            raise ConditionError(f"condition {name!r}: no layers to score")
        return out

    def inputs(self, name: str, params: dict) -> list[str]:
        """Catalog datasets the extraction node reads (besides parameters), in the order
        :meth:`extract` receives them as keyword arguments of the same names (dots replaced)."""
        return ["words"]

    def extract(self, name: str, params: dict, embedding: dict, layers: list[int],
                **data: Any) -> dict[int, dict]:
        """Features per layer: ``{layer: {story (or fold/story): float32 array}}`` at ``level``."""
        raise NotImplementedError

    def describe(self, name: str, params: dict) -> dict:
        """The condition's row of ``conditions.csv`` (:data:`DESCRIPTION_COLUMNS`)."""
        return {"condition": name, "kind": self.name}


def input_argument(dataset: str) -> str:
    """Keyword under which a dataset reaches :meth:`RepresentationKind.extract`."""
    return dataset.replace(".", "__")
