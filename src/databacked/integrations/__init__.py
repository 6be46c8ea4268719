"""Integrations with other tools (Prefect); each imports its tool only when used."""
