"""Optimised implementations, each property-tested against an oracle in ``reference``."""
