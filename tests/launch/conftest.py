"""Shared fixtures of the launcher tests."""

import pytest


@pytest.fixture
def use_team(tmp_path, monkeypatch):
    """Select a team file written from a template (``{xp_root}`` filled in); returns a
    function of the template that gives the test's folder."""

    def use(template: str):
        team = tmp_path / "team.yaml"
        team.write_text(template.format(xp_root=tmp_path / "xps"))
        monkeypatch.setenv("AUDIOFLOW_CONFIG", str(team))
        monkeypatch.delenv("AUDIOFLOW_CLUSTER", raising=False)
        monkeypatch.delenv("AUDIOFLOW_XP_DIR", raising=False)
        return tmp_path

    return use
