"""The scheduled digest job (``digest:<slug>``): this ISO week's digest, once its hour has come.

APScheduler refers to jobs by textual reference (``jobs.digest:run``) with the practice's slug
as the argument; :func:`sheets_bridge.digest_run.maybe_digest` makes the digest at most once a
week, so a digest missed while the bridge was down still goes out, once, at the next run.
"""

from __future__ import annotations

from sheets_bridge.daemon import running


def run(slug: str) -> None:
    """The digest check for the practice ``slug``."""
    running(slug).digest()
