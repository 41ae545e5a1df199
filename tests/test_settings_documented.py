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


def test_ci_runs_the_readme_test_commands() -> None:
    """.ci/run runs the README's two test commands verbatim, each as its own labelled step:
    the suite, then the slow reliability suite (which the first leaves out)."""
    script = (Path(__file__).parent.parent / ".ci" / "run").read_text().splitlines()
    readme_block = README.split("```")[3]  # the second command block: the tests
    commands = [line for line in readme_block.splitlines() if ".venv/bin/python -m pytest" in line]
    assert len(commands) == 2
    assert commands[0].endswith('pytest -q -m "not slow"')
    assert commands[1].endswith("pytest -q -m slow tests/reliability")
    for marker, command in zip(
        ("# The README's test command, verbatim:", "# The README's reliability command, verbatim:"),
        commands,
        strict=True,
    ):
        at = script.index(marker)
        assert script[at + 1] == command
        assert script[at - 1].startswith('echo "== step ')
