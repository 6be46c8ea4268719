"""The engine: steps and pipelines traced into calls, keyed, planned, scheduled and run.

``step.py`` and ``pipeline.py`` are what users decorate with; ``api.py`` holds ``db.run`` and
``db.plan``; ``worker.py`` is the one function executors run. See docs/internals.md.
"""
