"""Fixtures shared by the core tests.

Every test starts with a fresh plugin host and none of the ``SUBSPACE_HUB_*`` switches set, so tests that
install fake distributions or set switches never leak into each other.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from subspace_hub import plugins


@pytest.fixture(autouse=True)
def isolated_plugins(monkeypatch, tmp_path):
    for name in (
        plugins.ENV_STRICT,
        plugins.ENV_DISABLE_AUTOLOAD,
        plugins.ENV_LOAD_PLUGINS,
        plugins.ENV_EXTRA_PLUGINS,
        plugins.ENV_TRACE,
        "SUBSPACE_HUB_DEBUG",
    ):
        monkeypatch.delenv(name, raising=False)
    # Core tests see the builtins only, whatever else is installed; `distributions` turns discovery back on.
    monkeypatch.setenv(plugins.ENV_LOAD_PLUGINS, "")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    # Hub calls go to an embedded registry of this test, never the user's ~/.cache/subspace-hub or the network.
    monkeypatch.setenv("SUBSPACE_HUB_HOME", str(tmp_path / "subspace-hub-home"))
    monkeypatch.delenv("SUBSPACE_HUB_ENDPOINT", raising=False)
    monkeypatch.delenv("SUBSPACE_HUB_TOKEN", raising=False)
    plugins.reset_host()
    yield
    plugins.reset_host()


@dataclass
class Distributions:
    """Writes real installed distributions (module + ``.dist-info`` with ``entry_points.txt``) onto ``sys.path``."""

    root: Path
    modules: list[str]

    def add(
        self, dist: str, module: str, source: str, *, version: str = "1.0.0", entry_point: str | None = None
    ) -> Path:
        """Install distribution ``dist`` providing ``module`` with one ``subspace_hub`` entry point
        (named ``entry_point``, default: the module name) that points at the module."""
        site = self.root / f"site-{dist}"
        site.mkdir(parents=True, exist_ok=False)
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[subspace_hub]\n{entry_point or module} = {module}\n")
        (info / "top_level.txt").write_text(f"{module}\n")
        sys.path.insert(0, str(site))
        self.modules.append(module)
        importlib.invalidate_caches()
        return site


@pytest.fixture
def distributions(tmp_path, monkeypatch):
    """Install throwaway plugin distributions for one test (entry-point discovery on); removed from
    ``sys.path``/``sys.modules`` after."""
    monkeypatch.delenv(plugins.ENV_LOAD_PLUGINS, raising=False)
    saved_path = list(sys.path)
    dists = Distributions(tmp_path / "dists", [])
    yield dists
    sys.path[:] = saved_path
    for module in dists.modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()


GOOD_PLUGIN = """
    import torch
    from subspace_hub import BackboneSpec, MetricExample, MetricSpec, hookimpl

    class Tiny(torch.nn.Module):
        def __init__(self, width=4):
            super().__init__()
            self.fc1 = torch.nn.Linear(3, width)
            self.fc2 = torch.nn.Linear(width, 1)

        def forward(self, images):
            x = images.mean(dim=(-1, -2))              # [B, S, 3]
            return {"depth": self.fc2(torch.relu(self.fc1(x))).exp()}

    def example_batch(model):
        return {"images": torch.rand(1, 2, 3, 4, 4), "depth": torch.ones(1, 2, 4, 4)}

    def mae(pred, gt):
        return float(abs(pred - gt))

    @hookimpl
    def register_backbones(register):
        register(BackboneSpec("__BACKBONE__", build=lambda config: Tiny(**config),
                              target_groups={"mlp": r"fc[12]"}, default_targets=("mlp",),
                              example_batch=example_batch))

    @hookimpl
    def register_metrics(register):
        register(MetricSpec("__METRIC__", mae, higher_is_better=False,
                            example=lambda: MetricExample(reference=1.0, better=1.1, worse=2.0)))
"""


def good_plugin(backbone: str = "tiny-third-party", metric: str = "third-party-mae") -> str:
    """Source of a working plugin module registering one backbone and one metric."""
    return GOOD_PLUGIN.replace("__BACKBONE__", backbone).replace("__METRIC__", metric)


@pytest.fixture(name="good_plugin")
def good_plugin_fixture():
    """The :func:`good_plugin` source builder (test modules cannot import conftest under importlib mode)."""
    return good_plugin


def make_loras(folder, n, *, seed, rank=4, targets=("qkv", "fc1"), config=None, **lora_options):
    """``n`` real PEFT LoRA adapters (random, non-zero B) on the reference backbone (default: 3 blocks), saved as
    adapter folders ``folder/lora-<i>``; returns their paths."""
    import torch
    from peft import LoraConfig, get_peft_model

    import subspace_hub
    from subspace_hub.adapters.targets import resolve_targets

    paths = []
    for i in range(n):
        torch.manual_seed(seed + i)
        model = subspace_hub.load_backbone("reference", config=config or {"depth": 3})
        lora = LoraConfig(
            r=rank,
            lora_alpha=2 * rank,
            target_modules=resolve_targets(model, list(targets)),
            init_lora_weights=False,
            **lora_options,
        )
        path = folder / f"lora-{i}"
        get_peft_model(model, lora).save_pretrained(path)
        paths.append(path)
    return paths


@pytest.fixture(name="make_loras", scope="session")
def make_loras_fixture():
    """The :func:`make_loras` factory."""
    return make_loras


def reference_entry(**changes):
    """A valid registry entry for the reference backbone (tiny preset): texture subspaces of 2 LoRAs of rank 4."""
    entry = {
        "name": "ref-tex",
        "repo_id": "lab/ref-subspaces",
        "version": "1.0.0",
        "license": "apache-2.0",
        "backbone": {"name": "reference", "config": "tiny"},
        "attributes": {
            "texture": {
                "dataset": {"family": "texture", "scenes": 4},
                "lora": {"count": 2, "rank": 4, "targets": ["qkv", "fc1"]},
            }
        },
        "extraction": {"d": 2},
    }
    return {**entry, **changes}


@pytest.fixture(name="reference_entry", scope="session")
def reference_entry_fixture():
    """The :func:`reference_entry` builder."""
    return reference_entry
