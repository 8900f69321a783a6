"""The daemon's log: the practice in every line, size-capped files, no scheduler chatter."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from sheets_bridge.logs import (
    BACKUPS,
    MAX_BYTES,
    practice_context,
    practice_slug,
    setup_daemon_logging,
)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(logging.NOTSET)


def test_slugs_are_readable_and_safe() -> None:
    assert practice_slug("Riverside Physical Therapy") == "riverside-physical-therapy"
    assert practice_slug("Clínica São José — Ortho & Co.") == "clinica-sao-jose-ortho-co"
    assert practice_slug("张伟诊所") == "practice"


def test_every_line_names_the_practice_and_files_rotate(
    tmp_path: Path, restore_logging: None
) -> None:
    path = setup_daemon_logging(tmp_path, "INFO")
    log = logging.getLogger("sheets_bridge.test")
    with practice_context("harbor-physio"):
        log.info("sync ok: 3 rows")
        logging.getLogger("apscheduler.scheduler").info('Added job "sync:harbor-physio"')
        logging.getLogger("apscheduler.scheduler").warning("skipped: maximum number of running")
    text = path.read_text(encoding="utf-8")
    assert "INFO [harbor-physio] sheets_bridge.test: sync ok: 3 rows" in text
    assert "Added job" not in text and "maximum number" not in text
    line = "x" * 1000
    for _ in range(MAX_BYTES * (BACKUPS + 2) // 1000):
        log.info(line)
    files = sorted(p.name for p in tmp_path.glob("sheets-bridge.log*"))
    assert len(files) == BACKUPS + 1  # the current file and a few kept, no more
    assert all(p.stat().st_size <= MAX_BYTES + 2000 for p in tmp_path.glob("sheets-bridge.log*"))


def test_debug_lets_the_scheduler_speak(tmp_path: Path, restore_logging: None) -> None:
    path = setup_daemon_logging(tmp_path, "DEBUG")
    logging.getLogger("apscheduler.scheduler").info("Added job")
    assert "Added job" in path.read_text(encoding="utf-8")
