"""sheets-bridge: a referral engine on top of the sheet a practice already keeps."""

from __future__ import annotations

__version__ = "0.1.0"
