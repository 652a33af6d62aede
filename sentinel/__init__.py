"""Sentinel: AI video surveillance on Ray."""

__version__ = "0.1.0"
