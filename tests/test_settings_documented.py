"""Every setting is documented in the README's settings table, with its default."""

from __future__ import annotations

from pathlib import Path

from connector_telemetry.settings import SETTINGS, Settings

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    for setting in SETTINGS:
        assert f"| `{setting.name}` | `{setting.default}` |" in README, setting.name


def test_env_and_overrides() -> None:
    settings = Settings.from_env({"CTEL_PORT": "9000", "CTEL_DB": "x.db"}, db="y.db")
    assert settings.port == 9000 and settings.db == "y.db"
    assert Settings.from_env({}) == Settings()


def test_ci_runs_the_readme_test_command() -> None:
    script = (Path(__file__).parent.parent / ".ci" / "run").read_text().splitlines()
    command = script[script.index("# The README's test command, verbatim:") + 1]
    assert command in README.split("```")[3]  # the second command block: the tests
