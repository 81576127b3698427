"""The versioned results schema shared by ``xentconf.conformance`` and ``xentconf.reports``.

Conformance runs will write outcome records in this schema; reports will only
ever read them. Nothing else of xentconf may be imported here.
"""
