"""rightsize: find the smallest model configuration that is good enough, and what it saves."""

__version__ = "0.1.0"
