"""config.example.yaml is a starting point for a real practice (its placeholders are flagged by
`check` until replaced); the demo writes its own config with its made-up practice's details."""

from __future__ import annotations

from pathlib import Path

from sheets_bridge.config import load_config
from sheets_bridge.demo_run import EXAMPLE, demo_config_text
from sheets_bridge.doctor import _check_placeholders


def test_the_example_is_not_the_demo_practice() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "Riverside" not in text and "Maria at the front desk" not in text


def test_check_flags_every_placeholder_until_it_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    ((level, text),) = _check_placeholders(load_config(path))
    assert level == "warn"
    for key in ("name", "owner_email", "signature", "designated_contact", "phone", "address"):
        assert f"practice.{key}" in text
    filled = EXAMPLE.read_text(encoding="utf-8").replace("Your Practice Name", "Harbor Physio")
    path.write_text(filled, encoding="utf-8")
    ((_, text),) = _check_placeholders(load_config(path))
    assert "practice.name" not in text and "practice.phone" in text


def test_the_demo_writes_its_own_config_with_every_key(tmp_path: Path) -> None:
    example = EXAMPLE.read_text(encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text(demo_config_text(example), encoding="utf-8")
    config = load_config(path)
    assert config.practice.name == "Riverside Physical Therapy"
    assert _check_placeholders(config) == []
    # Every key and its comment is still there: only the practice's details changed.
    demo_lines = path.read_text(encoding="utf-8").splitlines()
    keys = [line.split(":")[0] for line in example.splitlines() if line.strip() and ":" in line and not line.lstrip().startswith("#")]
    assert [line.split(":")[0] for line in demo_lines if line.strip() and ":" in line and not line.lstrip().startswith("#")] == keys
