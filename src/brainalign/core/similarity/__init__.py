"""brainalign.core.similarity: similarity of representations (RSA, linear CKA)."""
from .rsa import linear_cka, rdm, rsa, rsa_from_rdms, similarity_table

__all__ = ["linear_cka", "rdm", "rsa", "rsa_from_rdms", "similarity_table"]
