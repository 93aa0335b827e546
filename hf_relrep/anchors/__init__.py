"""Anchors: how they are chosen (`selection`) and how a model keeps its raw anchors (`storage`)."""

from .selection import ANCHOR_STRATEGIES, register_anchor_strategy, select_anchors


__all__ = ["ANCHOR_STRATEGIES", "register_anchor_strategy", "select_anchors"]
