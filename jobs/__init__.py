"""Scheduled jobs: thin entry points APScheduler refers to by textual reference."""

from __future__ import annotations
