"""Set-up shared by the core's and the plugins' tests, run before any test module is imported.

Hugging Face libraries read ``HF_HOME`` once, when first imported (often while test modules are collected), so
a per-test setting comes too late: the whole session gets its own temporary home here, and no test reads or
writes the user's ``~/.cache/huggingface``. Tests that need a home of their own still set ``HF_HOME`` themselves.
"""

from __future__ import annotations

import os
import shutil
import tempfile

_SESSION_HF_HOME = tempfile.mkdtemp(prefix="subspace-hub-tests-hf-")


def pytest_configure(config):
    os.environ["HF_HOME"] = _SESSION_HF_HOME
    for derived in ("HF_DATASETS_CACHE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_MODULES_CACHE"):
        os.environ.pop(derived, None)


def pytest_unconfigure(config):
    shutil.rmtree(_SESSION_HF_HOME, ignore_errors=True)
