"""Adapters: thin translations from a TensorFlow-style call to one target implementation.

Adapters may import ``xentconf.protocol`` only, and import their framework lazily.
"""
