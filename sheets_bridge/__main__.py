"""``python -m sheets_bridge``: the same as the ``sheets-bridge`` command."""

from __future__ import annotations

from sheets_bridge.cli import main

raise SystemExit(main())
