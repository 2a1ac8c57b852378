"""Bad input, table-driven, across the CLI and the API.

For every case: the CLI exits non-zero (the API raises the project's own ``SubspaceHubError``), the error is one
line that names the problem (``problem``) and what to do about it (``remedy``), it is not reported as a bug, and
nothing was written or published: the workspace, the working folder and the registry hold exactly what they held
before. The inputs come from what new users typed (issue 13) and from every validated boundary.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import subspace_hub
from subspace_hub.cli import main
from subspace_hub.errors import SubspaceHubError
from subspace_hub.testing import tiny_dataset

BROKEN_ENTRY = {
    "name": "Broken Name",
    "repo_id": "not a repo",
    "version": "one",
    "license": 3,
    "backbone": {"name": "reference", "weigths": "x"},
    "attributes": {"texture": {"dataset": {"family": "plastic", "scenes": 0}, "lora": {"rank": -1}}},
    "extraction": {"d": 0, "mode": "median"},
}


@dataclass
class Workspace:
    root: Path
    home: Path

    def path(self, name: str) -> str:
        return str(self.root / name)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, make_loras, reference_entry) -> Workspace:
    """Valid things to get wrong: data (complete and unfinished), LoRAs, a bundle, adapters (good and damaged), a
    training run, registry entries (valid, not built, broken) and an embedded registry with published repos."""
    from subspace_hub.pipelines.config import load_train_config
    from subspace_hub.pipelines.train import train
    from subspace_hub.subspaces import extract_bundle

    root = tmp_path_factory.mktemp("bad-inputs")
    home = root / "home"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SUBSPACE_HUB_HOME", str(home))
        env.setenv("SUBSPACE_HUB_LOAD_PLUGINS", "")
        env.delenv("SUBSPACE_HUB_ENDPOINT", raising=False)
        subspace_hub.plugins.reset_host()
        tiny_dataset(root / "data", height=32, width=40, scenes=3)
        shutil.copytree(root / "data", root / "unfinished")
        (root / "unfinished" / "README.md").unlink()  # the card is written last: this generation did not finish
        make_loras(root / "loras", 2, seed=0, config={"depth": 2})
        extract_bundle({"texture": [root / "loras"]}, d=2, progress=False, info={"backbone": "reference"}).save(
            root / "project" / "bundle"
        )
        model = subspace_hub.attach_adapter(
            subspace_hub.load_backbone("reference", config={"depth": 3}), "lora", rank=2
        )
        subspace_hub.save_adapter(model, root / "adapter")
        shutil.copytree(root / "adapter", root / "damaged-adapter")
        (root / "damaged-adapter" / "adapter_config.json").write_text('{"peft_type": "LORA", "r": ')
        config = load_train_config(
            None,
            [],
            backbone="reference",
            backbone_config={"depth": 2},
            method="lora",
            method_options={"rank": 2},
            data={"source": str(root / "data"), "min_views": 2, "max_views": 3, "max_images": 6},
            steps=2,
            tensorboard=False,
        )
        train(config, root / "run", progress=False)
        registry = root / "project" / "registry"
        registry.mkdir()
        (root / "project" / "cards").mkdir()
        (registry / "ref-tex.yaml").write_text(yaml.safe_dump(reference_entry(bundle="bundle")))
        (root / "project" / "cards" / "ref-tex.md").write_text("# Reference subspaces\n")
        (registry / "unbuilt.yaml").write_text(yaml.safe_dump(reference_entry(name="unbuilt", bundle="nowhere")))
        (root / "broken" / "registry").mkdir(parents=True)
        (root / "broken" / "registry" / "broken.yaml").write_text(yaml.safe_dump(BROKEN_ENTRY))
        published = root / "published"
        published.mkdir()
        (published / "weights.txt").write_text("published\n")
        from subspace_hub.hub import push_folder

        push_folder(published, "lab/published", tag="v1.0.0")
        push_folder(root / "data", "lab/published-data", repo_type="dataset", tag="v1.0.0")
        subspace_hub.plugins.reset_host()
    return Workspace(root, home)


@dataclass(frozen=True)
class Case:
    id: str
    problem: str
    """Regex the error line must match: it names what was wrong."""
    remedy: str
    """Regex the error line must match: it says what to do (or what is valid)."""
    argv: tuple[str, ...] = ()
    """CLI arguments ({name} is a workspace path, {out} a fresh folder in the working directory)."""
    call: Callable[[Workspace], object] | None = None
    """API call (instead of argv)."""
    cwd: str | None = None
    """Workspace folder to run in (default: an empty folder)."""
    shows: tuple[str, ...] = ()
    """Text the whole output must also hold (for errors that list several problems above the error line)."""


def cli(id, argv, problem, remedy, cwd=None) -> Case:
    return Case(id, problem, remedy, argv=tuple(argv.split()), cwd=cwd)


def api(id, call, problem, remedy) -> Case:
    return Case(id, problem, remedy, call=call)


def _reference(**config):
    return subspace_hub.load_backbone("reference", config={"depth": 3, **config})


def _lora_model():
    return subspace_hub.attach_adapter(_reference(), "lora", rank=2)


def _points(n=10):
    import torch

    return torch.rand(n, 3)


TRAIN = "train reference --backbone-config tiny --data {data} --steps 2 --quiet --no-tensorboard --out {out}"
EVALUATE = "evaluate reference --backbone-config tiny --data {data} --split test --quiet"

CASES = [
    # -- extract / analyze / params ----------------------------------------------------------------------------------
    cli("extract-d-0", "extract --attribute texture={loras} --d 0 --out {out}", r"--d.*0", r">=1"),
    cli("extract-d-negative", "extract --attribute texture={loras} --d -3 --out {out}", r"--d.*-3", r">=1"),
    cli("extract-no-equals", "extract --attribute texture --out {out}", r"texture", r"NAME=PATH"),
    cli("extract-missing-folder", "extract --attribute texture={nowhere} --out {out}", r"nowhere", r"adapter"),
    cli("extract-empty-folder", "extract --attribute texture={project}/cards --out {out}", r"no LoRA adapter", r"give"),
    cli(
        "extract-bad-attribute", "extract --attribute Tex/ture={loras} --out {out}", r"Tex/ture", r"lower-case|letters"
    ),
    cli("extract-no-attribute", "extract --out {out}", r"--attribute", r"Missing|required"),
    cli("extract-alpha-0", "extract --attribute texture={loras} --alpha 0 --out {out}", r"alpha", r"> ?0|positive"),
    cli("extract-energy", "extract --attribute texture={loras} --energy 1.5 --out {out}", r"energy", r"0|1"),
    cli(
        "extract-target-none", "extract --attribute texture={loras} --target decoder --out {out}", r"decoder", r"match"
    ),
    cli("analyze-missing", "analyze {nowhere}", r"nowhere", r"bundle|extract"),
    cli("analyze-not-a-bundle", "analyze {project}/cards", r"cards", r"bundle|extract"),
    cli("params-dim-0", "params reference --subspace-dim 0", r"--subspace-dim.*0", r">=1"),
    cli("params-dim-negative", "params reference --subspace-dim -3", r"--subspace-dim.*-3", r">=1"),
    cli("params-rank-0", "params reference --lora-rank 0", r"--lora-rank.*0", r">=1"),
    cli("params-unknown-backbone", "params referense", r"referense", r"Did you mean 'reference'"),
    cli("params-bad-field", "params reference --set dept=3", r"dept", r"did you mean 'depth'"),
    cli("params-bad-value", "params reference --set depth=deep", r"depth", r"int"),
    # -- data -------------------------------------------------------------------------------------------------------
    cli(
        "data-resolution-patch",
        "data generate texture --backbone reference --resolution 30 --out {out}",
        r"30",
        r"multiples of 8",
    ),
    cli("data-resolution-text", "data generate texture --resolution big --out {out}", r"big", r"N or HxW|HxW"),
    cli("data-scenes-0", "data generate texture --scenes 0 --out {out}", r"--scenes.*0", r">=1"),
    cli("data-views-0", "data generate texture --views 0 --out {out}", r"--views.*0", r">=1"),
    cli("data-datasets-0", "data generate texture --datasets 0 --out {out}", r"--datasets.*0", r">=1"),
    cli("data-test-fraction", "data generate texture --test-fraction 1.5 --out {out}", r"test.fraction", r"0|1"),
    cli("data-family", "data generate plastic --out {out}", r"plastic", r"texture"),
    cli("data-camera", "data generate texture --camera zoom --out {out}", r"zoom", r"micro"),
    cli("data-device", "data generate texture --device cuda --out {out}", r"cuda", r"cpu|CUDA"),
    cli("data-device-name", "data generate texture --device gpu0 --out {out}", r"gpu0", r"cpu|cuda"),
    cli("data-texture-folder", "data generate texture --texture-folder {nowhere} --out {out}", r"nowhere", r"exist"),
    cli("data-workers-0", "data generate texture --workers 0 --out {out}", r"--workers.*0", r">=1"),
    cli(
        "data-push-unfinished", "data push {unfinished} lab/unfinished", r"unfinished generation", r"--allow-incomplete"
    ),
    cli("data-push-bad-repo", "data push {data} not-a-repo-id", r"not-a-repo-id", r"namespace/name|org/name|owner"),
    cli("data-push-existing-tag", "data push {data} lab/published-data --tag v1.0.0", r"v1.0.0", r"new version"),
    cli("data-pull-missing", "data pull lab/nothing-here", r"lab/nothing-here", r"not found|check|exist"),
    # -- hub --------------------------------------------------------------------------------------------------------
    cli("pull-missing-repo", "pull lab/nothing-here", r"lab/nothing-here", r"not found|check|exist"),
    cli("pull-missing-revision", "pull lab/published --revision v9.9.9", r"v9.9.9", r"tag|branch|revision"),
    cli("pull-bad-repo-id", "pull not/a/repo", r"not/a/repo", r"namespace/name|org/name|owner"),
    cli("pull-repo-type", "pull lab/published --repo-type space", r"space", r"model|dataset"),
    cli("push-unknown-entry", "push ref-texx", r"ref-texx", r"Did you mean 'ref-tex'", cwd="project"),
    cli(
        "push-bad-version",
        "push ref-tex --version bad-version",
        r"bad-version",
        r"MAJOR.MINOR.PATCH|semantic",
        cwd="project",
    ),
    cli("push-short-version", "push ref-tex --version 1.0", r"1\.0", r"MAJOR.MINOR.PATCH|semantic", cwd="project"),
    cli("push-unbuilt", "push unbuilt", r"nowhere|not built|no bundle", r"subspace-hub build", cwd="project"),
    cli("push-no-registry", "push ref-tex", r"registry", r"--registry|registry/", cwd=None),
    cli("registry-validate-missing", "registry validate --registry {nowhere}", r"nowhere", r"--registry|exist"),
    Case(
        "registry-validate-broken",
        r"1 registry entry is invalid",
        r"fix them",
        argv=("registry", "validate"),
        cwd="broken",
        shows=(
            "has these problems",
            "name 'Broken Name'",
            "repo_id 'not a repo'",
            "version 'one'",
            "entry.license",
            "'weigths' (did you mean 'weights'?)",
            "'plastic'",
            "scenes must be at least 1, got 0",
            "'median'",
            "d must be at least 1, got 0",
            "rank must be at least 1, got -1",
        ),
    ),
    cli(
        "registry-token-namespace",
        "registry token add alice --root {out} --write Bad!Space",
        r"Bad!Space",
        r"letters|namespace",
    ),
    cli("registry-serve-port", "registry serve --root {out} --port 70000", r"70000", r"0<=x<=65535|65535"),
    cli("build-unknown-entry", "build ref-texx", r"ref-texx", r"Did you mean 'ref-tex'", cwd="project"),
    # -- train / finetune / evaluate --------------------------------------------------------------------------------
    cli(
        "train-unfinished-data",
        TRAIN.replace("{data}", "{unfinished}"),
        r"unfinished generation",
        r"--allow-incomplete",
    ),
    cli("train-missing-data", TRAIN.replace("{data}", "{nowhere}"), r"nowhere", r"folder|repo|dataset"),
    cli("train-unknown-config", TRAIN + " --data-config texture-009", r"texture-009", r"texture-000"),
    cli("train-steps-0", TRAIN.replace("--steps 2", "--steps 0"), r"steps", r"at least 1|>=1"),
    cli("train-views-reversed", TRAIN + " --views 5-2", r"got 5 and 2", r"min_views <= max_views"),
    cli("train-views-text", TRAIN + " --views many", r"many", r"MIN-MAX|N"),
    cli("train-unknown-method", TRAIN + " --method lora2", r"lora2", r"Did you mean 'lora'"),
    cli("train-option-no-equals", TRAIN + " --option rank", r"rank", r"KEY=VALUE"),
    cli("train-unknown-field", TRAIN + " --set optim.lrr=1", r"lrr", r"did you mean 'lr'"),
    cli("train-negative-lr", TRAIN + " --lr -1", r"lr", r"positive|> ?0"),
    cli("train-resume-nothing", "train --resume --out {out}", r"Nothing to resume", r"config.yaml|holds no"),
    cli("train-occupied", TRAIN.replace("{out}", "{run}"), r"already holds a training run", r"--resume"),
    cli(
        "finetune-missing-bundle",
        TRAIN.replace("train", "finetune", 1) + " --bundle {nowhere}",
        r"nowhere",
        r"bundle|repo",
    ),
    cli(
        "finetune-unknown-attribute",
        TRAIN.replace("train", "finetune", 1) + " --bundle {project}/bundle --attributes lighting",
        r"lighting",
        r"texture",
    ),
    cli(
        "evaluate-unfinished",
        EVALUATE.replace("{data}", "{unfinished}"),
        r"unfinished generation",
        r"--allow-incomplete",
    ),
    cli("evaluate-unknown-metric", EVALUATE + " --metric chamferr", r"chamferr", r"Did you mean 'chamfer'"),
    cli("evaluate-no-cuda", EVALUATE + " --device cuda", r"cuda", r"cpu|CUDA"),
    cli("evaluate-missing-adapter", EVALUATE + " --adapter {nowhere}", r"nowhere", r"adapter|repo"),
    cli("evaluate-damaged-adapter", EVALUATE + " --adapter {damaged-adapter}", r"adapter_config.json", r"JSON|save"),
    cli("evaluate-bad-option", EVALUATE + " --option depth.align=sideways", r"sideways", r"median"),
    cli("evaluate-unknown-split", EVALUATE + " --split validation", r"validation", r"train|test"),
    cli("evaluate-limit-0", EVALUATE + " --limit 0", r"--limit.*0", r">=1"),
    cli("quickstart-steps-0", "quickstart --steps 0 --out {out}", r"--steps.*0", r">=1"),
    # -- API --------------------------------------------------------------------------------------------------------
    api("load-unknown-backbone", lambda w: subspace_hub.load_backbone("refrence"), r"refrence", r"Did you mean"),
    api(
        "load-missing-weights",
        lambda w: subspace_hub.load_backbone("reference", pretrained=w.path("nowhere")),
        r"nowhere",
        r"folder|repo",
    ),
    api("load-bad-config", lambda w: _reference(dept=2), r"dept", r"did you mean 'depth'"),
    api(
        "lora-rank-0", lambda w: subspace_hub.attach_adapter(_reference(), "lora", rank=0), r"rank", r"positive integer"
    ),
    api(
        "lora-targets-none",
        lambda w: subspace_hub.attach_adapter(_reference(), "lora", targets=["decoder"]),
        r"decoder",
        r"target groups|match",
    ),
    api("unknown-adapter", lambda w: subspace_hub.attach_adapter(_reference(), "lorra"), r"lorra", r"Did you mean"),
    api(
        "subspace-missing-bundle",
        lambda w: subspace_hub.attach_adapter(_reference(), "subspace", bundle=w.path("nowhere")),
        r"nowhere",
        r"bundle|repo",
    ),
    api("load-adapter-missing", lambda w: subspace_hub.load_adapter(w.path("nowhere")), r"nowhere", r"adapter|repo"),
    api(
        "load-adapter-damaged",
        lambda w: subspace_hub.load_adapter(w.path("damaged-adapter"), model=_reference()),
        r"adapter_config.json",
        r"JSON|save",
    ),
    api(
        "from-pretrained-missing-repo",
        lambda w: subspace_hub.SubspaceAdapter.from_pretrained("lab/nothing-here"),
        r"lab/nothing-here",
        r"not found|check|exist",
    ),
    api("unknown-metric", lambda w: subspace_hub.get_metric("chamferr"), r"chamferr", r"Did you mean 'chamfer'"),
    api(
        "chamfer-empty",
        lambda w: subspace_hub.metrics.chamfer(_points(0), _points()),
        r"empty|no points",
        r"points|prediction",
    ),
    api(
        "depth-shapes",
        lambda w: subspace_hub.metrics.depth_metrics(_points(4), _points(5)),
        r"shape",
        r"same|match",
    ),
    api(
        "shared-subspace-d-0",
        lambda w: subspace_hub.subspaces.shared_subspace([(_points(4)[:, :2], _points(3)[:, :2].T)], d=0),
        r"\bd\b.*got 0",
        r"positive integer|at least 1",
    ),
    api(
        "extract-bundle-d-0",
        lambda w: subspace_hub.subspaces.extract_bundle({"texture": [w.path("loras")]}, d=0, progress=False),
        r"d",
        r"at least 1|>=1",
    ),
    api(
        "push-to-hub-bad-repo",
        lambda w: subspace_hub.SubspaceAdapter.from_pretrained(w.path("project/bundle")).push_to_hub("no repo"),
        r"no repo",
        r"namespace/name|org/name|owner",
    ),
    api(
        "push-folder-existing-tag",
        lambda w: subspace_hub.hub.push_folder(w.path("published"), "lab/published", tag="v1.0.0"),
        r"v1.0.0",
        r"new version",
    ),
]


def _snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    state = {}
    for root in roots:
        for path in root.rglob("*") if root.exists() else ():
            if path.is_file() and "__pycache__" not in path.parts:
                stat = path.stat()
                state[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return state


def _format(argv: tuple[str, ...], workspace: Workspace, out: Path) -> list[str]:
    names = {"out": str(out), "nowhere": workspace.path("nowhere")}
    names.update({p.name: str(p) for p in workspace.root.iterdir()})
    return [arg.format(**names) for arg in argv]


def test_there_are_at_least_60_cases_with_distinct_ids():
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_clear_line_and_changes_nothing(case: Case, workspace, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SUBSPACE_HUB_HOME", str(workspace.home))
    cwd = workspace.root / case.cwd if case.cwd else tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    monkeypatch.chdir(cwd)
    out = tmp_path / "cwd" / "out"
    before = _snapshot(workspace.root, tmp_path / "cwd")
    if case.call is None:
        code = main(_format(case.argv, workspace, out))
        captured = capsys.readouterr()
        assert code != 0, f"exit 0 for bad input; stdout:\n{captured.out}"
        errors = [line for line in captured.err.splitlines() if line.startswith("Error")]
        assert len(errors) == 1, captured.err
        message = errors[0]
        missing = [text for text in case.shows if text not in captured.out + captured.err]
        assert not missing, f"output lacks {missing}:\n{captured.out}{captured.err}"
    else:
        with pytest.raises(SubspaceHubError) as raised:
            case.call(workspace)
        message = str(raised.value)
        assert "\n" not in message.strip(), f"not one line:\n{message}"
    assert "this is a bug" not in message, message
    assert re.search(case.problem, message), f"the problem is not named ({case.problem!r}): {message}"
    assert re.search(case.remedy, message), f"no remedy ({case.remedy!r}): {message}"
    after = _snapshot(workspace.root, tmp_path / "cwd")
    changed = sorted(set(before.items()) ^ set(after.items()))
    assert not changed, f"bad input wrote or published: {changed[:5]}"
