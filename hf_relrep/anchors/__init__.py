"""Anchors: how they are chosen (`selection`), what identifies a set of them (`identity`: fingerprint, count, the
check on load) and how a model keeps its raw anchors (`storage`, imported where a model saves or loads them)."""

from .identity import MIN_ANCHORS, anchor_fingerprint, check_anchor_count, check_anchor_identity
from .selection import ANCHOR_STRATEGIES, register_anchor_strategy, select_anchors


__all__ = [
    "ANCHOR_STRATEGIES",
    "MIN_ANCHORS",
    "anchor_fingerprint",
    "check_anchor_count",
    "check_anchor_identity",
    "register_anchor_strategy",
    "select_anchors",
]
