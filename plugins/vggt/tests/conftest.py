"""Shared fixtures of the VGGT plugin tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from subspace_hub import plugins

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def clean_plugin_state(monkeypatch, tmp_path):
    """The installed plugins, none of the SUBSPACE_HUB_* switches, a fresh host per test, Hub calls kept in a
    registry of the test."""
    for name in (
        plugins.ENV_STRICT,
        plugins.ENV_DISABLE_AUTOLOAD,
        plugins.ENV_LOAD_PLUGINS,
        plugins.ENV_EXTRA_PLUGINS,
        "SUBSPACE_HUB_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SUBSPACE_HUB_HOME", str(tmp_path / "subspace-hub-home"))
    plugins.reset_host()
    yield
    plugins.reset_host()


@pytest.fixture(scope="session")
def reference_1b():
    """Facts measured on the official VGGT-1B: every state-dict key and shape, parameter counts."""
    return json.loads((DATA / "vggt_1b_state_dict.json").read_text())
