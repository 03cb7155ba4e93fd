"""brainalign.core.decoding: ridge decoding of stimulus embeddings from brain responses, and its
scores (pairwise matching accuracy, MSE) and permutation null."""
from .decode import (
    DecodingResult,
    cross_validated_decoding,
    decoding_null,
    decoding_p,
    lagged_responses,
    stimulus_from_delayed,
)
from .metrics import decoding_mse, pairwise_accuracy, pairwise_accuracy_by_fold

__all__ = [
    "DecodingResult", "cross_validated_decoding", "decoding_null", "decoding_p", "lagged_responses",
    "stimulus_from_delayed", "decoding_mse", "pairwise_accuracy", "pairwise_accuracy_by_fold",
]
