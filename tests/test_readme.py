"""The README tells the truth: its two commands are what CI runs, and its plugin tutorial works as written.

The tutorial's files are extracted from the README's ```` ```lang file=NAME ```` blocks, pip-installed as a real
distribution into an isolated target folder, and exercised in fresh interpreters: `subspace-hub plugins`, the
usage snippet and the tutorial's own conformance tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


def readme_files() -> dict[str, str]:
    files = {}
    for match in FENCE.finditer(README.read_text(encoding="utf-8")):
        name = re.search(r"\bfile=(\S+)", match["info"])
        if name:
            files[name.group(1)] = match["body"]
    return files


def test_readme_top_shows_the_two_commands_and_ci_runs_the_test_one():
    head = README.read_text(encoding="utf-8").split("\n## ")[0]
    assert "make quickstart" in head and "make test" in head
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test\b", ci, re.MULTILINE), ".ci/run must run the README's test command"
    makefile = (ROOT / "Makefile").read_text()
    assert "torch==2.13.0" in makefile  # CPU wheel first, so no CUDA download on a fresh CPU machine


def test_tutorial_module_is_about_30_lines():
    module = readme_files()["subspace_hub_patch_depth.py"]
    code_lines = [line for line in module.splitlines() if line.strip()]
    assert len(code_lines) <= 32, len(code_lines)


@pytest.fixture(scope="module")
def installed_tutorial(tmp_path_factory):
    """The tutorial plugin pip-installed (a real build, real dist-info) into an isolated target folder."""
    work = tmp_path_factory.mktemp("tutorial")
    project = work / "project"
    project.mkdir()
    for name, body in readme_files().items():
        (project / name).write_text(body, encoding="utf-8")
    site = work / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(project),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert list(site.glob("subspace_hub_patch_depth-0.1.0.dist-info/entry_points.txt"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBSPACE_HUB_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return project, env


def _run(args, cwd, env):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_tutorial_plugin_is_listed(installed_tutorial):
    project, env = installed_tutorial
    exe = Path(sys.executable).with_name("subspace-hub")
    table = _run([str(exe), "plugins"], project, env)
    row = next(line for line in table.splitlines() if line.startswith("patch-depth "))
    assert row.split()[:3] == ["patch-depth", "subspace-hub-patch-depth", "0.1.0"]
    assert " ".join(row.split()[3:]).startswith("backbones: patch-depth; metrics: log-rmse ")
    listed = json.loads(_run([str(exe), "plugins", "--json"], project, env))
    assert not any(p["error"] for p in listed)


def test_tutorial_usage_snippet_runs(installed_tutorial):
    project, env = installed_tutorial
    out = _run([sys.executable, "use_patch_depth.py"], project, env)
    assert out.startswith("torch.Size([1, 3, 8, 8]) ")
    assert float(out.split()[-1]) >= 0.0


def test_tutorial_conformance_tests_pass(installed_tutorial):
    project, env = installed_tutorial
    out = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_patch_depth.py"], project, env)
    assert re.search(r"\b9 passed\b", out), out


def test_adapter_snippet_runs(tmp_path):
    (tmp_path / "finetune_reference.py").write_text(readme_files()["finetune_reference.py"], encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBSPACE_HUB_")}
    out = _run([sys.executable, "finetune_reference.py"], tmp_path, env)
    assert out.splitlines()[0] == "method: lora" and "total" in out
    assert out.splitlines()[-1].startswith("ReferenceBackbone ")
    assert (tmp_path / "runs" / "lora" / "adapter_model.safetensors").is_file()
