"""Conformance: strategies, verdicts and the pytest plugin that hold targets to the oracle.

Adapters are looked up by name through the registry, never imported directly.
"""
