"""Contract test suites and fixtures for databacked and its plugins.

``StoreContract``, ``FormatContract`` (and later ``ExecutorContract``) are pytest classes:
an implementation's test module subclasses one and provides a fixture, and inherits every
test. Import the submodules directly (``databacked.testing.store_contract``); this package
imports nothing heavy.
"""
