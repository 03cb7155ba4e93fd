"""brainalign: measure and improve how well language-model representations align with the brain."""

__version__ = "0.1.0"
