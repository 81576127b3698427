"""The contract between ``xentconf.conformance`` and ``xentconf.adapters``.

It will define what an adapter receives (a call in TensorFlow's terms) and what
it hands back, so that the two sides agree without importing each other.
Only numpy and the standard library may be used here.
"""
