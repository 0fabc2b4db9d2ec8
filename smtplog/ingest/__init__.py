"""Ingestion of Postfix logs: correlation (pure Python) and persistence (Django)."""
