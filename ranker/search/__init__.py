"""Pooling search: a balanced mixture of supernets over pooling configurations."""

from ranker.search.balance import balanced_assignment, kendall_tau
from ranker.search.mixture import Mixture, Supernet
from ranker.search.space import Candidate, build_space

__all__ = ["Candidate", "Mixture", "Supernet", "balanced_assignment", "build_space", "kendall_tau"]
