"""Benchmarks for spcs-gateway (issue 9): ``make bench`` runs ``python -m bench``."""
