"""Benchmarks for spcs-gateway: ``make bench`` runs ``python -m bench``."""
