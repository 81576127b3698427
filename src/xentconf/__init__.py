"""Conformance suite and reference oracle for TensorFlow's softmax cross-entropy losses."""

__version__ = "0.1.0"
