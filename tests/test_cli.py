"""The CLI: `subspace-hub plugins`, the one-line error funnel, the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from subspace_hub import __version__, plugins
from subspace_hub.cli import main
from subspace_hub.errors import PluginWarning

BROKEN = "raise ImportError('needs a GPU library that is missing')\n"


def test_plugins_table_lists_builtins(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["PLUGIN", "DISTRIBUTION", "VERSION", "REGISTERS", "WEIGHTS", "LICENCE"]
    assert any(line.split()[:3] == ["subspace_hub.builtin.backbones", "subspace-hub", __version__] for line in lines)
    assert "backbones: reference" in out and "adapters: full, lora, pissa, adalora, psv, subspace" in out
    assert "failed" not in out


def test_plugins_table_shows_third_party_and_failed_plugins(capsys, distributions, good_plugin):
    distributions.add("subspace-hub-tiny", "subspace_hub_tiny", good_plugin(), version="0.4.0", entry_point="tiny")
    distributions.add("subspace-hub-broken", "subspace_hub_broken", BROKEN, version="9.9")
    assert main(["plugins"]) == 0  # no warning: the failure is a row of the table
    out = capsys.readouterr().out
    tiny = next(line for line in out.splitlines() if line.startswith("tiny "))
    assert tiny.split()[:3] == ["tiny", "subspace-hub-tiny", "0.4.0"]
    assert tiny.split()[3:] == ["backbones:", "tiny-third-party;", "metrics:", "third-party-mae", "-"]
    assert "1 plugin(s) failed to load and were skipped:" in out
    broken = next(line for line in out.splitlines() if line.startswith("subspace_hub_broken"))
    assert "subspace-hub-broken  9.9" in broken
    assert broken.endswith("import failed: ImportError: needs a GPU library that is missing")


def test_plugins_json(capsys, distributions, good_plugin):
    distributions.add("subspace-hub-tiny", "subspace_hub_tiny", good_plugin(), entry_point="tiny")
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    tiny = next(p for p in data if p["name"] == "tiny")
    assert tiny == {
        "name": "tiny",
        "module": "subspace_hub_tiny",
        "distribution": "subspace-hub-tiny",
        "version": "1.0.0",
        "source": "entry point",
        "components": {"backbone": ["tiny-third-party"], "metric": ["third-party-mae"]},
        "hooks": ["register_backbones", "register_metrics"],
        "error": None,
    }


def test_errors_are_one_line_and_exit_non_zero(capsys, distributions, monkeypatch):
    distributions.add("subspace-hub-broken", "subspace_hub_broken", BROKEN)
    monkeypatch.setenv(plugins.ENV_STRICT, "1")
    assert main(["plugins"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("Error: Plugin 'subspace_hub_broken' (distribution subspace-hub-broken 1.0.0) failed to load")
    assert "Traceback" not in err


def test_debug_shows_the_traceback(capsys, distributions, monkeypatch):
    distributions.add("subspace-hub-broken", "subspace_hub_broken", BROKEN)
    monkeypatch.setenv(plugins.ENV_STRICT, "1")
    monkeypatch.setenv("SUBSPACE_HUB_DEBUG", "1")
    assert main(["plugins"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ImportError: needs a GPU library" in err
    assert err.rstrip().splitlines()[-1].startswith("Error: Plugin 'subspace_hub_broken'")


def test_usage_errors_and_version(capsys):
    assert main(["no-such-command"]) == 2
    assert "No such command 'no-such-command'" in capsys.readouterr().err
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"subspace-hub, version {__version__}"
    assert main(["--help"]) == 0
    assert "plugins" in capsys.readouterr().out


def test_console_script_is_installed(tmp_path):
    exe = shutil.which("subspace-hub", path=os.path.dirname(sys.executable)) or shutil.which("subspace-hub")
    assert exe, "the subspace-hub console script is not installed (pip install -e .)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBSPACE_HUB_")}
    result = subprocess.run([exe, "plugins", "--json"], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert {p["name"] for p in json.loads(result.stdout)} >= {
        "subspace_hub.builtin.backbones",
        "subspace_hub.builtin.adapters",
    }
    module = subprocess.run(
        [sys.executable, "-m", "subspace_hub", "--version"], capture_output=True, text=True, env=env
    )
    assert module.returncode == 0 and __version__ in module.stdout


def test_plugin_warnings_print_as_one_line():
    from subspace_hub.cli import _format_warning

    text = _format_warning(PluginWarning("skipped plugin 'x':\n  import failed"), PluginWarning, "f.py", 1)
    assert text == "Warning: skipped plugin 'x': import failed\n"
    assert "UserWarning" in _format_warning(UserWarning("other"), UserWarning, "f.py", 1)


def test_a_missing_dependency_is_named_with_the_install_command(capsys, monkeypatch):
    """A package that is not installed is the user's environment, not a bug: the error says which and how."""
    import builtins

    real_import = builtins.__import__

    def without_datasets(name, *args, **kwargs):
        if name == "datasets" or name.startswith("datasets."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_datasets)
    assert main(["data", "preview", "somewhere"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "this is a bug" not in err
    assert "needs the Python package 'datasets'" in err and "pip install datasets" in err
