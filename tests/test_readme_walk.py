"""The README walk: every code block and command before the plugin tutorial, as written, in order, in a copy of
the clone, the way a new user follows it.

Each ``bash`` block runs as one ``bash -eo pipefail`` script, each ``python`` block in a fresh interpreter
(``file=NAME`` blocks are saved under that name and run as ``python NAME``), all in one working folder that is a
copy of the tracked files with the test's virtual environment linked as ``.venv``, and with the embedded registry
and the Hugging Face caches in temporary homes. The only liberties taken, all listed here:

- ``make test`` is the command running this test (``tests/test_readme.py`` checks that ``.ci/run`` runs it), so
  it is not run again; ``make quickstart`` runs with ``-o .venv/.setup-done`` so that it never reinstalls the
  environment the test runs in;
- the port 8080 becomes a free port, so that a busy 8080 on the machine cannot fail the walk.

The plugin tutorial (from "## Write a plugin" on) is installed as a real distribution and run by
``tests/test_readme.py``. A few blocks also have their printed claims checked (``CLAIMS``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
TUTORIAL_HEADING = "## Write a plugin"
BLOCK_TIMEOUT_S = 900

# A block whose text contains the key must print every one of the values (the README states these figures).
CLAIMS = {
    "subspace-hub params vggt": ["853.6M", "16.3M", "65.3M", "3,949,888"],
    "subspace-hub push texture-geometry-microbaseline-tiny": ["v0.1.0"],
    "subspace-hub plugins ": ["cc-by-nc-4.0"],
}


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    file: str | None
    body: str

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.lang}{'-' + self.file if self.file else ''}"


def walked_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    walked = text[: text.index(TUTORIAL_HEADING)]
    blocks = []
    for match in FENCE.finditer(walked):
        info = match["info"].split()
        name = re.search(r"\bfile=(\S+)", match["info"])
        blocks.append(
            Block(
                walked.count("\n", 0, match.start()) + 1,
                info[0] if info else "",
                name.group(1) if name else None,
                match["body"],
            )
        )
    return blocks


BLOCKS = walked_blocks()


def test_every_walked_block_is_bash_or_python():
    assert len(BLOCKS) >= 15
    assert {block.lang for block in BLOCKS} == {"bash", "python"}, [
        b.id for b in BLOCKS if b.lang not in ("bash", "python")
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tracked_files() -> list[Path]:
    """The files a fresh clone has (git's index; without git, everything outside caches and outputs)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if listed.returncode == 0 and listed.stdout:
        return [Path(p) for p in listed.stdout.decode().split("\0") if p]
    skip = {".venv", ".git", "build", "runs", "data", "bundles", "__pycache__", ".pytest_cache", ".ruff_cache"}
    return [p.relative_to(ROOT) for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


class Walk:
    """The user's clone, environment and the state of the walk so far."""

    def __init__(self, base: Path) -> None:
        self.clone = base / "clone"
        for relative in _tracked_files():
            if (ROOT / relative).is_file():
                (self.clone / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / relative, self.clone / relative)  # keeps mtimes: make sees the set-up as current
        prefix = Path(sys.prefix)
        if not (prefix / "bin" / "subspace-hub").exists():
            pytest.skip(f"subspace-hub is not installed in {prefix} (run `make setup`)")
        (self.clone / ".venv").symlink_to(prefix, target_is_directory=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SUBSPACE_HUB_", "HF_", "VIRTUAL_ENV"))}
        self.env.update(
            PATH=os.pathsep.join([str(prefix / "bin"), self.env.get("PATH", "")]),
            SUBSPACE_HUB_HOME=str(base / "subspace-hub-home"),
            HF_HOME=str(base / "hf-home"),
            PYTHONUNBUFFERED="1",
            MPLBACKEND="Agg",
        )
        self.port = str(_free_port())
        self.failed: str | None = None

    def run(self, args: list[str], what: str) -> str:
        process = subprocess.Popen(
            args,
            cwd=self.clone,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # a server a block leaves behind dies with its process group
        )
        try:
            out, _ = process.communicate(timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            out = ""
        finally:
            with contextlib.suppress(ProcessLookupError):  # a server a block started dies with the block
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.returncode != 0:
            self.failed = what
            pytest.fail(f"README {what} failed (exit {process.returncode}):\n{out[-6000:]}")
        return out


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    return Walk(tmp_path_factory.mktemp("readme-walk"))


def _bash_script(block: Block, walk: Walk) -> str:
    lines = []
    for line in block.body.splitlines():
        command = line.split("#")[0].strip()
        if command == "make test":
            continue  # the command running this test
        if command == "make quickstart":
            line = "make -o .venv/.setup-done VENV=.venv quickstart"
        lines.append(line)
    return "\n".join(lines).replace("8080", walk.port)


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_readme_block_runs_as_written(block: Block, walk: Walk):
    if walk.failed:
        pytest.skip(f"an earlier block failed ({walk.failed}); the walk depends on it")
    started = time.perf_counter()
    what = f"block at README.md line {block.line}"
    if block.lang == "bash":
        out = walk.run(["bash", "-eo", "pipefail", "-c", _bash_script(block, walk)], what)
    else:
        script = walk.clone / (block.file or f".readme-block-{block.line}.py")
        script.write_text(block.body, encoding="utf-8")
        out = walk.run([sys.executable, script.name], what)
    for key, expected in CLAIMS.items():
        if key in block.body:
            missing = [value for value in expected if value not in out]
            assert not missing, f"README {what} printed none of {missing}:\n{out[-4000:]}"
    print(f"{what}: {time.perf_counter() - started:.1f} s")
