"""The watcher loop (declarative pipelines; not yet built)."""
