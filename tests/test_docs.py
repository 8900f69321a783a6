"""Keep the docs honest: the example config, the README's commands and the CLI agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from sheets_bridge.cli import build_parser, main
from sheets_bridge.config import BridgeConfig, load_config
from sheets_bridge.mail.eml import EmlFolderDrafter
from sheets_bridge.settings import EmlMailConfig, LocalSheetConfig
from sheets_bridge.sheets.xlsx import LocalWorkbook

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config.example.yaml"


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every dotted key of a config model, down through nested models."""
    out = set()
    for name, field in model.model_fields.items():
        if name == "config_path":
            continue
        key = f"{prefix}{name}"
        out.add(key)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out |= _keys(annotation, key + ".")
    return out


def _yaml_keys(data: object, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            dotted = f"{prefix}{key}"
            out.add(dotted)
            out |= _yaml_keys(value, dotted + ".")
    return out


def test_the_example_config_validates_and_runs_the_local_demo() -> None:
    config = load_config(EXAMPLE)
    assert isinstance(config.sheet, LocalSheetConfig)
    assert isinstance(config.mail, EmlMailConfig)
    assert config.sheet.path == (ROOT / "referrals.xlsx").resolve()


def test_the_example_config_documents_every_key() -> None:
    documented = _yaml_keys(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    # The sheet and mail sections are unions; the example shows the local kinds' keys.
    expected = _keys(BridgeConfig) | {
        f"sheet.{k}" for k in LocalSheetConfig.model_fields
    } | {f"mail.{k}" for k in EmlMailConfig.model_fields}
    expected = {k for k in expected if not k.startswith(("columns.aliases.", "sources.keywords."))}
    missing = sorted(expected - documented)
    assert missing == [], f"config.example.yaml does not mention: {missing}"


def test_every_key_in_the_example_has_a_comment_above_its_section() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for section in ("practice", "sheet", "mail", "state_dir", "sync", "drafts", "digest"):
        block = re.search(rf"(?m)^{section}:", text)
        assert block is not None, section


def test_backend_kinds_match_their_config_names() -> None:
    assert LocalWorkbook.kind == "local"
    assert EmlFolderDrafter.kind == "eml"


def test_readme_names_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"(?m)^make test$", ci)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"(?m)^demo:", makefile) and re.search(r"(?m)^test:", makefile)


@pytest.mark.parametrize("command", ["sync", "check", "init", "status", "digest", "demo", "serve"])
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: sheets-bridge" in capsys.readouterr().out


def test_the_readme_lists_every_subcommand() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:  # type: ignore[union-attr]
        assert f"sheets-bridge {name}" in readme, name
