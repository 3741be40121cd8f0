"""Efficient attention methods."""
