"""Fakes for the tests: a fake Google (Sheets v4, Gmail v1, OAuth token) over real HTTP.

Import as `fakes.google_server` (pytest puts `tests/` on sys.path); `tests.fakes.google_server`
also works when the tests run from the repository root with `python -m pytest`.
"""
