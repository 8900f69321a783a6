"""The `fake_google` fixture: a started FakeGoogle per test, stopped afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .google_server import FakeGoogle


@pytest.fixture
def fake_google(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGoogle]:
    """A fake Google on 127.0.0.1 (port 0); proxies are bypassed for loopback."""
    no_proxy = ",".join(x for x in (os.environ.get("NO_PROXY"), "127.0.0.1,localhost") if x)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.setenv("no_proxy", no_proxy)
    fake = FakeGoogle()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
