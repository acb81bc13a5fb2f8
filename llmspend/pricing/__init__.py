"""Prices and cost: the shipped price table, user overrides, and the pricing rules."""

from .cost import Cost, price_usage
from .table import LongContextPrice, ModelPrice, PriceTable, normalise_model

__all__ = ["Cost", "LongContextPrice", "ModelPrice", "PriceTable", "normalise_model", "price_usage"]
