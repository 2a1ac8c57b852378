"""Does mining attribute subspaces work? The reproduction study of issue 15, at the scale one GPU affords.

Every stage goes through the project's public API (data generation, the training engine, extraction, the
adapters, evaluation) and caches its outputs in ``--work``, so the study can be split across calls and a rerun
skips what is done. Stages, in order:

    data        synthetic data: general scenes for the base (camera family, every attribute varying: rooms with
                standard / orbit / micro-baseline cameras, and object-centred scenes with orbit cameras), the four
                attribute families (the paper's attribute scenes; texture and geometry with micro-baseline cameras,
                as its anti-spoofing subspaces), and two downstream tasks, each with a few-shot and a larger
                training set and a test set of other seeds (geometry and cameras no training scene has): ``micro``
                (micro-baseline close-range views of object-centred scenes, a camera/scene pairing no earlier stage
                saw) and ``object`` (orbits around object-centred scenes); no ensemble saw object-centred scenes
    base        ``train --method full`` of ``vggt-small`` (23.6 M parameters) in two stages, each with its curve:
                from random weights on the rooms (``base``), then on rooms and object-centred scenes with larger
                batches (``base-2``, the base every later stage starts from)
    ensembles   per attribute N LoRAs of rank 16 on the paper's targets, one per dataset, distinct seeds; and the
                same with one shared seed (the control for the initialisation artefact)
    mine        extraction (d = 16, alpha = 1; sweep d = 4 / 8 / 32; alpha = 2; the shared-seed ensembles), random
                bases of exactly the mined sizes, the bundles' analysis
    downstream  fine-tuning on each task and regime, every method the same steps, several seeds, evaluated on the
                task's test scenes: depth (median and the paper's joint scale + 3D translation alignment) and the
                reconstruction protocol (Acc, Comp, NC)
    report      tables, figures and RESULTS.md (``benchmarks/reproduce/report.py``)

Usage (repository root; the vggt plugin on the path)::

    PYTHONPATH=.:plugins/vggt SUBSPACE_HUB_PLUGINS=subspace_hub_vggt.plugin \\
        python benchmarks/reproduce/study.py --work /tmp/study --device cuda --jobs 14
    python benchmarks/reproduce/study.py --work /tmp/study --stages report   # RESULTS.md from the raw results

``--scale smoke`` runs every stage at toy sizes on a CPU in a few minutes (the study's own test).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STAGES = ("data", "base", "ensembles", "mine", "downstream", "report")
ATTRIBUTES = ("texture", "geometry", "camera", "lighting")
HEADS = ["camera_head", "depth_head"]
ROOM_PARTS = ("standard", "orbit", "micro")  # rooms (the megasynth layout) under these camera modes
BASE_PARTS = (*ROOM_PARTS, "object")  # and object-centred scenes under orbit cameras
BASE_STAGES = ("base", "base-2")  # the base's two training stages (run folders); every later stage starts from the last
AGGREGATOR_LINEARS = r"aggregator\.(frame|global)_blocks\.\d+\.(attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)"
"""The modules the paper mines (its basis file holds the aggregator blocks' linears only)."""


@dataclass(frozen=True)
class Scale:
    """Every size of the study."""

    backbone_config: str = "vggt-small"
    precision: str = "fp32"  # every run's TrainConfig.precision (see train_config)
    height: int = 112
    width: int = 112
    mesh_resolution: int = 8
    texture_size: int = 64
    texture_pool: int = 8
    # base
    base_datasets: int = 64  # per camera mode
    base_scenes: int = 4
    base_views: int = 8
    base_steps: int = 1000
    base_lr: float = 5e-4
    base_images: int = 96  # a step costs about the same at 48 and 96 images (launch-bound), so larger batches
    base_eval_every: int = 250
    base_eval_limit: int = 48
    # base, stage 2: continued on every general scene, object-centred ones included
    tune_steps: int = 1000
    tune_lr: float = 3e-4
    tune_images: int = 96
    tune_eval_limit: int = 128
    # ensembles
    loras: int = 6
    lora_rank: int = 16
    attr_scenes: int = 4
    attr_views: int = 6
    lora_steps: int = 150
    lora_lr: float = 5e-4
    # mining
    d: int = 16
    sweep: tuple[int, ...] = (4, 8, 32)
    # downstream
    few: int = 4
    many: int = 32
    test: int = 16
    views: int = 6
    steps: int = 100
    lr: float = 1e-3
    full_lr: float = 1e-4
    lr_check: tuple[float, ...] = (3e-4, 3e-3)
    seeds: tuple[int, ...] = (0, 1, 2)
    images: int = 24
    workers: int = 6


SCALES = {
    "full": Scale(),
    "smoke": Scale(
        backbone_config="vggt-tiny",
        height=28,
        width=42,
        mesh_resolution=4,
        texture_size=16,
        texture_pool=2,
        base_datasets=2,
        base_scenes=2,
        base_views=3,
        base_steps=4,
        base_images=6,
        base_eval_every=2,
        base_eval_limit=2,
        tune_steps=3,
        tune_images=6,
        tune_eval_limit=4,
        loras=2,
        lora_rank=2,
        attr_scenes=2,
        attr_views=3,
        lora_steps=2,
        d=2,
        sweep=(1,),
        few=1,
        many=2,
        test=2,
        views=3,
        steps=2,
        lr_check=(3e-3,),
        seeds=(0, 1),
        images=6,
        workers=0,
    ),
}


# ----------------------------------------------------------------------------------------------------------- data


def data_specs(scale: Scale) -> dict[str, Any]:
    """Folder (relative to ``work/data``) -> GenerationSpec."""
    from subspace_hub.data.export import GenerationSpec

    common = {
        "height": scale.height,
        "width": scale.width,
        "mesh_resolution": scale.mesh_resolution,
        "texture_size": scale.texture_size,
        "texture_pool": scale.texture_pool,
    }
    specs = {}
    for offset, part in enumerate(BASE_PARTS):
        specs[f"base/{part}"] = GenerationSpec(
            "camera",
            datasets=scale.base_datasets,
            scenes=scale.base_scenes,
            views=scale.base_views,
            camera_mode="orbit" if part == "object" else part,
            object_centred=part == "object",
            layout="megasynth",
            seed=100 + offset,
            test_fraction=0.25,
            **common,
        )
    for offset, attribute in enumerate(ATTRIBUTES):
        specs[f"attributes/{attribute}"] = GenerationSpec(
            attribute,
            datasets=scale.loras,
            scenes=scale.attr_scenes,
            views=scale.attr_views,
            camera_mode="micro" if attribute in ("texture", "geometry") else "orbit",
            seed=200 + offset,
            test_fraction=0.0,
            **common,
        )
    for offset, (task, mode) in enumerate((("micro", "micro"), ("object", "orbit"))):
        task_common = {"camera_mode": mode, "object_centred": True, "scenes": 1, "views": scale.views, **common}
        # few-shot and larger training sets share a seed: the few-shot scenes are the larger set's first ones
        for regime, count in (("few", scale.few), ("many", scale.many)):
            specs[f"{task}/{regime}"] = GenerationSpec(
                "camera", datasets=count, seed=300 + 10 * offset, test_fraction=0.0, **task_common
            )
        specs[f"{task}/test"] = GenerationSpec(
            "camera", datasets=scale.test, seed=305 + 10 * offset, test_fraction=0.0, **task_common
        )
    return specs


def stage_data(work: Path, scale: Scale, device: str, log: Callable[[str], None]) -> None:
    from subspace_hub.data.export import generate

    base_done = (work / BASE_STAGES[-1] / "baselines.json").is_file()
    for name, spec in data_specs(scale).items():
        out = work / "data" / name
        if (out / "README.md").is_file() and (out / ".complete").exists():
            continue
        if base_done and name.startswith("base/"):
            continue  # the base is trained and scored (restored from an earlier call): its data is not needed
        started = time.perf_counter()
        generate(spec, out, device=device, workers=os.cpu_count() if device != "cpu" else 1, progress=False)
        (out / ".complete").touch()
        log(
            f"  data/{name}: {spec.datasets} x {spec.scenes} x {spec.views} views in "
            f"{time.perf_counter() - started:.0f} s"
        )
    if not base_done:
        merge_folders(work / "data" / "base", list(BASE_PARTS))
        rooms = work / "data" / "base-rooms"  # stage 1's source: the room parts, linked
        rooms.mkdir(parents=True, exist_ok=True)
        for part in ROOM_PARTS:
            if not (rooms / part).exists():
                (rooms / part).symlink_to(Path("..") / "base" / part, target_is_directory=True)
        merge_folders(rooms, list(ROOM_PARTS))


def merge_folders(root: Path, parts: list[str]) -> None:
    """One dataset folder (``root``'s README.md) whose configs are the configs of ``root/<part>`` for every part,
    so ``--config all`` trains on the union. The parts' configs are interleaved (dataset 0 of every part, then
    dataset 1, ...), so the first samples of a split, which a run's curve is measured on, cover every part."""
    from itertools import zip_longest

    from huggingface_hub import DatasetCard

    per_part = []
    for part in parts:
        card = DatasetCard.load(root / part / "README.md").data.to_dict()
        per_part.append(
            [
                {
                    "config_name": f"{part}-{config['config_name']}",
                    "data_files": [{**f, "path": f"{part}/{f['path']}"} for f in config.get("data_files", [])],
                }
                for config in card.get("configs") or []
            ]
        )
    configs = [config for group in zip_longest(*per_part) for config in group if config is not None]
    text = "---\n" + _yaml({"configs": configs, "license": "cc0-1.0"}) + "---\n\nThe union of " + ", ".join(parts)
    (root / "README.md").write_text(text + " (the reproduction study's base training data).\n")


def _yaml(data: Any) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


def concatenated(folder: Path, split: str) -> Any:
    """Every config of a generated folder, one ``datasets.Dataset``."""
    import datasets

    from subspace_hub.data.export import configs_of
    from subspace_hub.data.quiet import datasets_quiet
    from subspace_hub.data.sources import load_samples

    with datasets_quiet():
        return datasets.concatenate_datasets([load_samples(str(folder), split, c) for c in configs_of(folder)])


# ----------------------------------------------------------------------------------------------------------- jobs


@dataclass
class Job:
    """One training run (and its evaluation): what a worker process does."""

    run: str
    config: dict[str, Any]
    evaluate: str | None = None
    """Test folder to evaluate the trained adapter on (its train split holds the held-out scenes)."""
    device: str = "cuda"
    tags: dict[str, Any] = field(default_factory=dict)


def train_config(scale: Scale, **fields: Any) -> dict[str, Any]:
    """A TrainConfig (as a dict) with the study's common settings. Every run trains in ``scale.precision``, float32
    by default: a step of this small model at 112 px is bound by kernel launches, not arithmetic, and bf16
    autocast's casts add about 28 % more kernels (6,228 vs 7,997 operators for a forward, loss and backward of
    vggt-small)."""
    from subspace_hub.configuration import to_dict
    from subspace_hub.pipelines.config import TrainConfig

    settings = {"backbone": "vggt", "tensorboard": False, "keep_checkpoints": 1, "precision": scale.precision, **fields}
    settings.setdefault("metrics", ())
    return to_dict(_from_dict(TrainConfig, settings))


def _from_dict(cls: Any, data: dict[str, Any]) -> Any:
    from subspace_hub.configuration import from_dict

    return from_dict(cls, data, what="study")


def run_job(job: Job) -> dict[str, Any]:
    """Train (resuming a run that a kill stopped), then evaluate; the summary is ``run/study.json``."""
    import torch

    from subspace_hub.pipelines.config import TrainConfig
    from subspace_hub.pipelines.train import CONFIG_FILE, train

    run = Path(job.run)
    done = run / "study.json"
    if done.is_file():
        return json.loads(done.read_text())
    started = time.perf_counter()
    config = _from_dict(TrainConfig, job.config)
    if not (run / "result.json").is_file():
        train(config, run, resume=(run / CONFIG_FILE).is_file(), progress=False)
    summary = {**json.loads((run / "result.json").read_text()), "tags": job.tags}
    if job.evaluate:
        import subspace_hub

        model = subspace_hub.load_adapter(run / "adapter")
        summary["metrics"] = evaluate_on(model, Path(job.evaluate), job.device)
        del model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    summary["wall_seconds"] = time.perf_counter() - started
    done.write_text(json.dumps(summary, indent=2, default=float))
    return summary


def evaluate_on(model: Any, folder: Path, device: str) -> dict[str, Any]:
    """Depth (median; joint scale + 3D translation) and reconstruction (Acc, Comp, NC) on a test folder."""
    return score_samples(model, concatenated(folder, "train"), device).summary()


def run_jobs(
    jobs: list[Job], workers: int, log: Callable[[str], None], deadline: float | None = None
) -> dict[str, dict[str, Any]]:
    """Run the jobs on ``workers`` processes sharing the device (``workers <= 1``: in this process); jobs not
    started by ``deadline`` (time.time()) are left for the next call. Returns run -> summary of the finished."""
    results: dict[str, dict[str, Any]] = {}
    pending = [job for job in jobs if not (Path(job.run) / "study.json").is_file()]
    for job in jobs:
        if job not in pending:
            results[job.run] = json.loads((Path(job.run) / "study.json").read_text())
    if not pending:
        return results
    log(f"  {len(pending)} run(s) to do, {len(jobs) - len(pending)} done before")

    def report(job: Job, summary: dict[str, Any] | None, error: str | None) -> None:
        if summary is not None:
            results[job.run] = summary
            abs_rel = summary.get("metrics", {}).get("depth", {}).get("abs_rel")
            extra = f", AbsRel {abs_rel:.4f}" if abs_rel is not None else ""
            name = "/".join(Path(job.run).parts[-3:])
            log(f"  done {name}: {summary['seconds']:.0f} s training{extra}")
        else:
            log(f"  FAILED {job.run}: {error}")

    if workers <= 1:
        for job in pending:
            if deadline is not None and time.time() > deadline:
                break
            try:
                report(job, run_job(job), None)
            except Exception as exc:
                report(job, None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        return results
    with worker_pool(workers) as pool:
        queue = list(pending)
        running = {}
        while queue or running:
            while queue and len(running) < workers and (deadline is None or time.time() < deadline):
                job = queue.pop(0)
                running[pool.submit(run_job, job)] = job
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                try:
                    report(job, future.result(), None)
                except Exception as exc:
                    report(job, None, f"{type(exc).__name__}: {exc}")
    return results


def worker_pool(workers: int, threads: int | None = None) -> ProcessPoolExecutor:
    """``workers`` spawned processes sharing the machine: the GPUs round robin, ``threads`` CPU threads each (by
    default an equal share of the cores)."""
    import torch

    context = get_context("spawn")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    initargs = (context.Value("i", 0), gpus, threads)
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=initargs)


def _init_worker(counter: Any, gpus: int, threads: int) -> None:
    """A worker's GPU (round robin over the machine's GPUs) and CPU threads (a share of the cores)."""
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    if gpus > 1:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
    import torch

    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------------------------- base


def base_weights(work: Path, stage: str = BASE_STAGES[-1]) -> str:
    """The weights a stage of the base ended with (by default the last stage's: what every later stage starts from)."""
    return str(work / stage / "adapter")


def base_config(work: Path, scale: Scale, stage: str) -> dict[str, Any]:
    """Stage 1 (``base``): from random weights on the rooms. Stage 2 (``base-2``): from stage 1, on the rooms and
    the object-centred scenes, with larger batches and its own warm-up and cosine."""
    first = stage == BASE_STAGES[0]
    steps = scale.base_steps if first else scale.tune_steps
    start = {"backbone_config": scale.backbone_config} if first else {"pretrained": base_weights(work, BASE_STAGES[0])}
    return train_config(
        scale,
        **start,
        method="full",
        data={
            "source": str(work / "data" / ("base-rooms" if first else "base")),
            "config": "all",
            "test_split": "test",
            "min_views": 2,
            "max_views": scale.base_views,
            "max_images": scale.base_images if first else scale.tune_images,
            "workers": scale.workers,
        },
        steps=steps,
        seed=0,
        optim={
            "lr": scale.base_lr if first else scale.tune_lr,
            "weight_decay": 0.05,
            "warmup": 0.05,
            "start_lr": 1e-8,
            "end_lr": 1e-6,
        },
        checkpoint_every=max(1, steps // 5),
        eval_every=scale.base_eval_every,
        eval_limit=scale.base_eval_limit if first else scale.tune_eval_limit,
        metrics=("depth",),
    )


def stage_base(
    work: Path,
    scale: Scale,
    device: str,
    jobs: int,
    log: Callable[[str], None],
    deadline: float | None,
    background: ThreadPoolExecutor,
) -> list[Future]:
    """Train the base's stages one after the other. A finished stage's trivial baselines (CPU-bound: the
    reconstruction protocol) are scored on ``background`` while the next training (base stage 2, the ensembles)
    keeps the GPU busy; returns their futures."""
    scoring = []
    for stage in BASE_STAGES:
        run = work / stage
        if not (run / "study.json").is_file():
            config = base_config(work, scale, stage)
            run.mkdir(parents=True, exist_ok=True)
            (run / "study-config.json").write_text(json.dumps(config))
            run_jobs([Job(str(run), config, device=device, tags={"stage": stage})], 1, log, deadline)
            if not (run / "study.json").is_file():
                return scoring
        if not (run / "baselines.json").is_file():
            log(f"  {stage}: trivial baselines (constant depth, random weights), in the background")
            scoring.append(background.submit(_write_baselines, work, scale, stage, device, max(1, jobs // 2), log))
    return scoring


def _write_baselines(work: Path, scale: Scale, stage: str, device: str, jobs: int, log: Callable[[str], None]) -> None:
    started = time.perf_counter()
    scores = trivial_baselines(work, scale, stage, device, jobs)
    (work / stage / "baselines.json").write_text(json.dumps(scores, indent=2, default=float))
    log(f"  {stage}: trivial baselines scored ({time.perf_counter() - started:.0f} s on {jobs} processes)")


def unadapted_scores(work: Path) -> dict[str, Any]:
    """The downstream tasks' test scores of the base itself (no adaptation): its row in the last stage's
    baselines (work folders from before they were shared have them in ``downstream/unadapted.json``)."""
    legacy = work / "downstream" / "unadapted.json"
    if legacy.is_file():
        return json.loads(legacy.read_text())
    path = work / BASE_STAGES[-1] / "baselines.json"
    if not path.is_file():
        return {}
    baselines = json.loads(path.read_text())
    return {task: baselines[f"{task} test"]["base"] for task in ("micro", "object")}


BASELINE_MODELS = ("base", "random weights")
BASELINE_CHUNK = 8  # scenes per baseline task (tasks spread over the worker processes)


def trivial_baselines(work: Path, scale: Scale, stage: str, device: str, jobs: int = 1) -> dict[str, Any]:
    """A stage of the base, the same architecture with random weights and a constant depth per view, on the samples
    of the stage's curve (its test split: training datasets, held-out cameras) and on both downstream test sets
    (unseen geometry and cameras). The scenes are scored in chunks on ``jobs`` processes (the reconstruction
    protocol runs on the CPU, about a second a scene)."""
    import torch

    from subspace_hub.data.quiet import datasets_quiet
    from subspace_hub.metrics import depth_metrics
    from subspace_hub.metrics.aggregate import mean_over_samples
    from subspace_hub.pipelines.config import TrainConfig
    from subspace_hub.pipelines.evaluate import EvaluationReport
    from subspace_hub.pipelines.train import held_out_samples

    config = _from_dict(TrainConfig, json.loads((work / stage / "study-config.json").read_text()))
    base_test = work / "study-base-test" / stage
    if not base_test.is_dir():  # the samples the stage's curve is measured on: the first eval_limit of its test split
        with datasets_quiet():
            held_out = held_out_samples(config)
        held_out.select(range(min(config.eval_limit or len(held_out), len(held_out)))).save_to_disk(str(base_test))
    splits = {
        "base test split": base_test,
        "micro test": work / "data" / "micro" / "test",
        "object test": work / "data" / "object" / "test",
    }
    sizes = {name: len(_load_any(folder)) for name, folder in splits.items()}
    tasks = [
        (
            str(work),
            scale.backbone_config,
            stage,
            label,
            str(folder),
            start,
            min(start + BASELINE_CHUNK, sizes[name]),
            device,
        )
        for name, folder in splits.items()
        for label in BASELINE_MODELS
        for start in range(0, sizes[name], BASELINE_CHUNK)
    ]
    if jobs <= 1:
        scored = [_baseline_chunk(*task) for task in tasks]
    else:
        with worker_pool(jobs, threads=1) as pool:  # one thread each: they share the cores with a training run
            scored = list(pool.map(_baseline_chunk, *zip(*tasks, strict=True)))
    scenes: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for (_, _, _, label, folder, *_), chunk in zip(tasks, scored, strict=True):
        scenes[folder, label].extend(chunk)
    metrics, _ = study_metrics()
    out: dict[str, Any] = {}
    for name, folder in splits.items():
        row = {label: EvaluationReport(metrics, scenes[str(folder), label]).summary() for label in BASELINE_MODELS}
        constant = []
        for sample in _load_any(folder).with_format("torch"):
            gt, mask = sample["depth"].double(), sample["mask"].bool()
            constant.append(depth_metrics(torch.ones_like(gt), gt, mask))
        keys = [k for k in constant[0] if k != "valid_pixels"]
        row["constant depth"] = {"depth": mean_over_samples(constant, keys)}
        out[name] = row
    if (work / stage / "adapter" / RESTORED).is_file():
        out["_note"] = (
            f"The {stage} rows were computed on {machine(device, 1)['gpu']} ({os.cpu_count()} CPU cores), after the "
            "training call, from the weights as they travelled between calls (rounded once to bfloat16), on the "
            "same scenes regenerated from their seeds (the generator is byte-reproducible on CPU and GPU); the "
            "runs that started from this stage started from the unrounded weights."
        )
    return out


def _baseline_chunk(
    work: str, backbone_config: str, stage: str, label: str, folder: str, start: int, stop: int, device: str
) -> list[dict[str, Any]]:
    """The per-scene scores of one baseline model on scenes ``start:stop`` of ``folder``."""
    import torch

    import subspace_hub

    if label == "base":
        model = subspace_hub.load_backbone("vggt", pretrained=base_weights(Path(work), stage))
    else:
        torch.manual_seed(0)  # the same random weights in every process
        model = subspace_hub.load_backbone("vggt", config=backbone_config)
    return score_samples(model, _load_any(Path(folder)).select(range(start, stop)), device).scenes


def _load_any(folder: Path) -> Any:
    import datasets

    if (folder / "dataset_info.json").is_file() or (folder / "state.json").is_file():
        return datasets.load_from_disk(str(folder))
    return concatenated(folder, "train")


def study_metrics() -> tuple[list[Any], dict[str, dict[str, Any]]]:
    """The metric specs and their options: ``depth`` (median alignment), ``depth_scale_translation`` (the paper's
    joint scale + 3D translation) and the reconstruction protocol (k = 8 normals)."""
    from dataclasses import replace

    from subspace_hub.plugins import get_metric

    depth = get_metric("depth")
    metrics = [depth, replace(depth, name="depth_scale_translation"), get_metric("reconstruction")]
    options = {
        "depth": {"align": "median"},
        "depth_scale_translation": {"align": "scale_translation"},
        "reconstruction": {"k": 8},
    }
    return metrics, options


def score_samples(model: Any, samples: Any, device: str) -> Any:
    """The EvaluationReport of :func:`study_metrics` of ``model`` over ``samples``, in one pass."""
    from subspace_hub.pipelines.evaluate import evaluate_backbone
    from subspace_hub.plugins import get_backbone_spec

    metrics, options = study_metrics()
    return evaluate_backbone(
        model, get_backbone_spec("vggt"), samples, metrics, options=options, device=device, progress=False
    )


# ------------------------------------------------------------------------------------------------------ ensembles


def ensemble_jobs(work: Path, scale: Scale, device: str) -> list[Job]:
    jobs = []
    for a, attribute in enumerate(ATTRIBUTES):
        for i in range(scale.loras):
            for seeds in ("distinct", "shared"):
                seed = 1 + 1000 * a + i if seeds == "distinct" else 0
                config = train_config(
                    scale,
                    pretrained=base_weights(work),
                    method="lora",
                    method_options={"rank": scale.lora_rank},
                    data={
                        "source": str(work / "data" / "attributes" / attribute),
                        "config": f"{attribute}-{i:03d}",
                        "test_split": None,
                        "min_views": 2,
                        "max_views": scale.attr_views,
                        "max_images": scale.images,
                        "workers": 0,
                    },
                    steps=scale.lora_steps,
                    seed=seed,
                    optim={"lr": scale.lora_lr, "weight_decay": 0.05, "warmup": 0.05, "start_lr": 1e-8, "end_lr": 1e-8},
                    checkpoint_every=scale.lora_steps,
                )
                run = work / "ensembles" / seeds / attribute / f"lora-{i}"
                jobs.append(Job(str(run), config, device=device, tags={"attribute": attribute, "seeds": seeds}))
    return jobs


def ensemble_adapters(work: Path, scale: Scale, seeds: str) -> dict[str, list[str]]:
    return {
        attribute: [str(work / "ensembles" / seeds / attribute / f"lora-{i}" / "adapter") for i in range(scale.loras)]
        for attribute in ATTRIBUTES
    }


# ----------------------------------------------------------------------------------------------------------- mine


def bundle_recipes(scale: Scale) -> dict[str, dict[str, Any]]:
    """Bundle name -> (ensemble seeds, extraction settings)."""
    recipes = {f"d{scale.d}": {"seeds": "distinct", "d": scale.d, "alpha": 1.0}}
    recipes.update({f"d{d}": {"seeds": "distinct", "d": d, "alpha": 1.0} for d in scale.sweep})
    recipes[f"d{scale.d}-alpha2"] = {"seeds": "distinct", "d": scale.d, "alpha": 2.0}
    recipes[f"d{scale.d}-shared"] = {"seeds": "shared", "d": scale.d, "alpha": 1.0}
    return recipes


def stage_mine(work: Path, scale: Scale, log: Callable[[str], None], background: ThreadPoolExecutor) -> list[Future]:
    """Extract the bundles the downstream runs train in (d, its shared-seed and alpha = 2 variants, and random bases
    of its sizes); the sweep's bundles, the analyses and the statistics, which only the report reads, go to
    ``background`` while the downstream keeps the GPU busy. Returns their future."""
    downstream = [f"d{scale.d}", f"d{scale.d}-alpha2", f"d{scale.d}-shared"]
    _extract(work, scale, downstream, log)
    random = work / "bundles" / f"d{scale.d}-random"
    if not (random / "subspace_config.json").is_file():
        from subspace_hub.adapters.subspace import random_like
        from subspace_hub.subspaces.bundle import SubspaceBundle

        random_like(SubspaceBundle.load(work / "bundles" / f"d{scale.d}"), seed=0).save(random)
    return [background.submit(_mine_for_the_report, work, scale, log)]


def _extract(work: Path, scale: Scale, names: Iterable[str], log: Callable[[str], None]) -> None:
    from subspace_hub.subspaces.mining import extract_bundle
    from subspace_hub.subspaces.settings import ExtractionSettings

    recipes = bundle_recipes(scale)
    for name in names:
        folder = work / "bundles" / name
        if (folder / "subspace_config.json").is_file():
            continue
        recipe = recipes[name]
        started = time.perf_counter()
        settings = ExtractionSettings(d=recipe["d"], alpha=recipe["alpha"], targets=(AGGREGATOR_LINEARS,))
        bundle = extract_bundle(
            ensemble_adapters(work, scale, recipe["seeds"]), settings, progress=False, info={"backbone": "vggt"}
        )
        bundle.save(folder)
        log(
            f"  bundle {name}: {sum(bundle.dims()[a][m] for a in bundle.dims() for m in bundle.dims()[a])} dims in "
            f"{len(bundle.modules())} modules ({time.perf_counter() - started:.0f} s)"
        )


def _mine_for_the_report(work: Path, scale: Scale, log: Callable[[str], None]) -> None:
    """The sweep's bundles, the analyses (spectra, orthogonality) of the mined, shared-seed and random bundles, and
    ``bundles/stats.json``."""
    import torch

    from subspace_hub.subspaces.bundle import SubspaceBundle
    from subspace_hub.subspaces.report import write_report

    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))  # two cores of this process's; the downstream's workers have the rest
    try:
        _extract(work, scale, bundle_recipes(scale), log)
        for name in (f"d{scale.d}", f"d{scale.d}-shared", f"d{scale.d}-random"):
            analysis = work / "bundles" / name / "analysis"
            if not (analysis / "summary.json").is_file():
                write_report(SubspaceBundle.load(work / "bundles" / name), analysis, progress=False)
                log(f"  analysis of {name}")
        if not (work / "bundles" / "stats.json").is_file():
            write_bundle_stats(work, scale)
    finally:
        torch.set_num_threads(threads)


def cliff_stats(bundle: Any, rank: int) -> dict[str, Any]:
    """Per module: the ratio sigma_r / sigma_(r+1) of the first-iteration spectrum (a cliff at the LoRA rank makes it
    large) and where the largest ratio among the first 3r values is."""
    from subspace_hub.subspaces.analysis import module_group

    per_layer: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    at_rank = []
    for attribute, module, sub in bundle.items():
        s = sub.spectrum.double()
        if len(s) <= rank or float(s[rank]) <= 0:
            continue
        ratio = float(s[rank - 1] / s[rank])
        top = s[: 3 * rank + 1]
        gaps = (top[:-1] / top[1:].clamp(min=1e-30)).tolist()
        at_rank.append(1 + max(range(len(gaps)), key=gaps.__getitem__) == rank)
        _, layer = module_group(module)
        per_layer[attribute][int(layer)].append(ratio)
    layers = sorted({layer for per in per_layer.values() for layer in per})
    deep = layers[len(layers) * 2 // 3 :] if layers else []
    deep_ratios = [r for per in per_layer.values() for layer in deep for r in per.get(layer, [])]
    all_ratios = [r for per in per_layer.values() for rs in per.values() for r in rs]
    return {
        "median_ratio": median(all_ratios),
        "median_ratio_deep_layers": median(deep_ratios),
        "share_largest_gap_at_rank": sum(at_rank) / len(at_rank) if at_rank else None,
        "per_layer": {a: {str(k): median(v) for k, v in sorted(per.items())} for a, per in per_layer.items()},
    }


def median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def orthogonality_stats(bundle: Any) -> dict[str, Any]:
    from subspace_hub.subspaces.report import orthogonality_table

    out = {}
    for pair, modules in orthogonality_table(bundle).items():
        smallest = [min(v["out"][0], v["in"][0]) for v in modules.values()]
        out[pair] = {
            "median_smallest": median(smallest),
            "share_above_half": sum(x > 0.5 for x in smallest) / len(smallest) if smallest else None,
            "values": smallest,
        }
    return out


def write_bundle_stats(work: Path, scale: Scale) -> None:
    """``bundles/stats.json``: what the report needs of the bundles (the cliff and orthogonality statistics, one
    deep module's spectra, the dims), so the report runs without the bundles."""
    from subspace_hub.subspaces.bundle import SubspaceBundle

    d = scale.d
    names = {"distinct": f"d{d}", "shared": f"d{d}-shared", "random": f"d{d}-random"}
    bundles = {k: SubspaceBundle.load(work / "bundles" / v) for k, v in names.items()}
    spectra = {}
    for key in ("distinct", "shared"):
        modules = bundles[key].modules()
        deep = [m for m in modules if "global_blocks" in m and m.endswith("mlp.fc1")]
        module = deep[-1] if deep else modules[-1]
        spectra[key] = {
            "module": module,
            "values": {
                a: bundles[key].attributes[a][module].spectrum.double().tolist() for a in bundles[key].attributes
            },
        }
    stats = {
        "cliff": {k: cliff_stats(b, scale.lora_rank) for k, b in bundles.items() if k != "random"},
        "orthogonality": {k: orthogonality_stats(b) for k, b in bundles.items()},
        "spectra": spectra,
        "dims": {name: dict(SubspaceBundle.load(work / "bundles" / name).summary()) for name in bundle_recipes(scale)},
    }
    (work / "bundles" / "stats.json").write_text(json.dumps(stats, default=float))


# ----------------------------------------------------------------------------------------------------- downstream


def plan(work: Path, scale: Scale) -> dict[str, int]:
    """The parameter-matched LoRA rank (cached in ``downstream/plan.json``): the LoRA rank on the paper's targets
    whose trainable parameters are closest to the texture + geometry subspace adapter's (cores + heads' LoRA)."""
    path = work / "downstream" / "plan.json"
    if path.is_file():
        return json.loads(path.read_text())
    from subspace_hub.adapters.report import count_parameters

    bundle = work / "bundles" / f"d{scale.d}"
    subspace = count_parameters(
        "vggt",
        "subspace",
        config=scale.backbone_config,
        options={"bundle": str(bundle), "attributes": ["texture", "geometry"], "lora_rank": scale.lora_rank},
    ).trainable
    rank_one = count_parameters("vggt", "lora", config=scale.backbone_config, options={"rank": 1}).trainable
    out = {"rank": max(1, round(subspace / rank_one)), "subspace_parameters": subspace, "lora_rank_one": rank_one}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return out


def methods(work: Path, scale: Scale) -> dict[str, tuple[str, dict[str, Any], str]]:
    """Row -> (method, options, kind): ``main`` rows are trained in every setting, ``ablation`` rows in micro /
    few-shot."""
    bundles = work / "bundles"
    d, r = scale.d, scale.lora_rank
    matched = plan(work, scale)["rank"]
    tex_geo = ["texture", "geometry"]

    def subspace(bundle: str, attributes: list[str] | None) -> dict[str, Any]:
        return {"bundle": str(bundles / bundle), "attributes": attributes, "lora_rank": r}

    return {
        "subspace tex+geo (mined)": ("subspace", subspace(f"d{d}", tex_geo), "main"),
        "subspace all four (mined)": ("subspace", subspace(f"d{d}", None), "main"),
        "random bases, tex+geo sizes": ("subspace", subspace(f"d{d}-random", tex_geo), "main"),
        f"heads LoRA r{r} only": ("lora", {"rank": r, "targets": HEADS}, "main"),
        f"LoRA r{r}": ("lora", {"rank": r}, "main"),
        f"LoRA r{matched} (parameter-matched)": ("lora", {"rank": matched}, "main"),
        f"PiSSA r{r}": ("pissa", {"rank": r}, "main"),
        f"AdaLoRA r{r}": ("adalora", {"rank": r, "init_rank": r + r // 2, "total_step": scale.steps}, "main"),
        f"PSV r{2 * d}": ("psv", {"rank": 2 * d}, "main"),
        "full": ("full", {}, "main"),
        "subspace tex+geo, shared-seed LoRAs": ("subspace", subspace(f"d{d}-shared", tex_geo), "ablation"),
        "subspace tex+geo, alpha = 2": ("subspace", subspace(f"d{d}-alpha2", tex_geo), "ablation"),
        "subspace texture only": ("subspace", subspace(f"d{d}", ["texture"]), "ablation"),
    }


def slug(text: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def downstream_jobs(work: Path, scale: Scale, device: str) -> list[Job]:
    """Every setting's main rows and, in micro / few-shot (the paper's texture + geometry setting), the ablations;
    seed-major, so a call that runs out of time leaves whole seeds; the learning-rate check last."""
    rows = methods(work, scale)
    jobs = []
    settings = [(task, regime) for task in ("micro", "object") for regime in ("few", "many")]
    for seed in scale.seeds:
        for task, regime in settings:
            for row, (method, options, kind) in rows.items():
                if kind == "ablation" and (task, regime) != ("micro", "few"):
                    continue
                lr = scale.full_lr if method == "full" else scale.lr
                jobs.append(finetune_job(work, scale, device, task, regime, row, method, options, seed, lr, kind))
    # does the verdict hinge on the learning rate? the key rows at other rates, one setting, one seed
    for lr in scale.lr_check:
        for row in ("subspace tex+geo (mined)", "random bases, tex+geo sizes", f"LoRA r{scale.lora_rank}", "full"):
            method, options, _ = rows[row]
            rate = lr / 10 if method == "full" else lr
            jobs.append(finetune_job(work, scale, device, "micro", "few", row, method, options, 0, rate, "lr"))
    return jobs


def finetune_job(
    work: Path,
    scale: Scale,
    device: str,
    task: str,
    regime: str,
    row: str,
    method: str,
    options: dict[str, Any],
    seed: int,
    lr: float,
    kind: str,
) -> Job:
    config = train_config(
        scale,
        pretrained=base_weights(work),
        method=method,
        method_options=options,
        data={
            "source": str(work / "data" / task / regime),
            "config": "all",
            "test_split": None,
            "min_views": scale.views,
            "max_views": scale.views,
            "max_images": scale.images,
            "workers": 0,
        },
        steps=scale.steps,
        seed=seed,
        optim={"lr": lr, "weight_decay": 0.05, "warmup": 0.05, "start_lr": 1e-8, "end_lr": 1e-8},
        checkpoint_every=scale.steps,
    )
    default_lr = scale.full_lr if method == "full" else scale.lr
    name = slug(row) + ("" if lr == default_lr else f"-lr{lr:g}")
    run = work / "downstream" / f"{task}-{regime}" / f"{name}-seed{seed}"
    tags = {"task": task, "regime": regime, "row": row, "method": method, "seed": seed, "lr": lr, "kind": kind}
    return Job(str(run), config, evaluate=str(work / "data" / task / "test"), device=device, tags=tags)


def stage_downstream(
    work: Path, scale: Scale, device: str, jobs: int, log: Callable[[str], None], deadline: float | None
) -> None:
    matched = plan(work, scale)
    rank, subspace, rank_one = matched["rank"], matched["subspace_parameters"], matched["lora_rank_one"]
    log(f"  parameter-matched LoRA: rank {rank} ({rank * rank_one:,} vs the subspace adapter's {subspace:,})")
    run_jobs(downstream_jobs(work, scale, device), jobs, log, deadline)


# ----------------------------------------------------------------------------------------------------------- main


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="Folder for data, runs and bundles (cached between calls).")
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument(
        "--stages", nargs="*", choices=STAGES, default=list(STAGES), help="None: only --carry / --export / --pack."
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--jobs",
        type=int,
        default=max(1, (os.cpu_count() or 1) - 2),
        help="Training and scoring processes sharing the device (default: the CPU cores less two; the runs are bound "
        "by the CPU that launches their kernels and scores their reconstructions).",
    )
    parser.add_argument("--budget", type=float, default=None, help="Start no run after this many seconds.")
    parser.add_argument(
        "--results",
        default=str(HERE.parent / "results" / "reproduce"),
        help="Where the report stage writes tables, figures and raw results.",
    )
    parser.add_argument("--markdown", default=str(HERE.parents[1] / "RESULTS.md"), help="The report's path.")
    parser.add_argument(
        "--carry", default=None, help="Restore the results and the base's weights that --export wrote, first."
    )
    parser.add_argument(
        "--export",
        default=None,
        help="Write the results so far and the base's weights (bf16, files under 16 MB) to this folder, last: how the "
        "study travels between the calls of a GPU session (the next call passes it as --carry).",
    )
    parser.add_argument(
        "--pack", default=None, help="Write the small outputs (JSON, CSV, figures; no data or weights) to this .tar.gz."
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + args.budget if args.budget else None
    if args.carry:
        restore(Path(args.carry), work)
    scale = study_scale(work, args.scale, training=any(stage != "report" for stage in args.stages))
    if any(stage != "report" for stage in args.stages):
        (work / "machine.json").write_text(json.dumps(machine(args.device, args.jobs)))
    timings = _load_timings(work)

    def log(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)

    background = ThreadPoolExecutor(1)  # CPU-bound scoring that overlaps the GPU-bound stages
    scoring: list[Future] = []
    for stage in STAGES:
        if stage not in args.stages:
            continue
        if stage == "report":
            _finish(scoring, log)
        if deadline is not None and time.time() > deadline and stage != "report":
            log(f"{stage}: out of budget, left for the next call")
            continue
        log(f"{stage}")
        started = time.perf_counter()
        if stage == "data":
            stage_data(work, scale, args.device, log)
        elif stage == "base":
            scoring += stage_base(work, scale, args.device, args.jobs, log, deadline, background)
        elif stage == "ensembles":
            run_jobs(ensemble_jobs(work, scale, args.device), args.jobs, log, deadline)
        elif stage == "mine":
            scoring += stage_mine(work, scale, log, background)
        elif stage == "downstream":
            stage_downstream(work, scale, args.device, args.jobs, log, deadline)
        else:
            sys.path.insert(0, str(HERE))
            from report import write_results  # benchmarks/reproduce/report.py

            write_results(work, scale, Path(args.results), Path(args.markdown), log)
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - started
        (work / "timings.json").write_text(json.dumps(timings, indent=2))
    if scoring:
        started = time.perf_counter()
        _finish(scoring, log)
        timings["background wait"] = timings.get("background wait", 0.0) + time.perf_counter() - started
        (work / "timings.json").write_text(json.dumps(timings, indent=2))
    background.shutdown()
    if args.pack:
        pack(work, Path(args.pack))
        log(f"packed the results into {args.pack}")
    if args.export:
        export(work, Path(args.export))
        log(f"wrote the results and the base's weights to {args.export}")
    return 0


def _finish(scoring: list[Future], log: Callable[[str], None]) -> None:
    """Wait for the background scoring; a failure is logged (its stage is scored again by the next call)."""
    for future in scoring:
        try:
            future.result()
        except Exception as exc:
            log(f"  FAILED background scoring: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    scoring.clear()


LEGACY_SIZES = {"precision": "auto"}
"""Sizes added to Scale later, with the values that studies recorded before them ran with (bf16 autocast on a GPU)."""


def study_scale(work: Path, name: str, *, training: bool) -> Scale:
    """The sizes of the study in ``work``: recorded in ``work/scale.json`` by its first call, so a report describes
    the runs it reads, and a later call that would train under other sizes (the code changed since) stops instead
    of mixing two designs in one folder."""
    from dataclasses import fields

    path = work / "scale.json"
    current = SCALES[name]
    if not path.is_file():
        path.write_text(json.dumps({"scale": name, "sizes": current.__dict__}, default=list))
        return current
    data = json.loads(path.read_text())
    if data["scale"] != name:
        sys.exit(f"{work} holds a study at scale {data['scale']!r}; use another --work.")
    sizes = {**LEGACY_SIZES, **data["sizes"]}
    known = {f.name for f in fields(Scale)}
    recorded = Scale(**{k: tuple(v) if isinstance(v, list) else v for k, v in sizes.items() if k in known})
    changed = [
        f"{k} {getattr(recorded, k)!r} (now {getattr(current, k)!r})"
        for k in known
        if getattr(recorded, k) != getattr(current, k)
    ]
    if changed and training:
        sys.exit(
            f"{work} holds a study run with other sizes: {', '.join(changed)}. Its cached runs would mix two designs; "
            "use another --work, or --stages report to write its report."
        )
    return recorded


CARRY_TAR = "study.tar.gz"
RESTORED = "restored-from-bf16"  # marks an adapter folder whose weights came through export / restore
SHARD_BYTES = 15 * 2**20


def export(work: Path, folder: Path) -> None:
    """The small results (``pack``) and the weights of the base's last finished stage in bf16, split in
    safetensors files under 16 MB (``<stage>-NN.safetensors``)."""
    import torch
    from safetensors.torch import load_file, save_file

    folder.mkdir(parents=True, exist_ok=True)
    stage = next((s for s in reversed(BASE_STAGES) if (work / s / "adapter" / "model.safetensors").is_file()), None)
    adapter = work / (stage or BASE_STAGES[0]) / "adapter"
    small = [adapter / name for name in ("config.json", "README.md", "subspace_hub_adapter.json")]
    pack(work, folder / CARRY_TAR, [path for path in small if path.is_file()])
    if stage is None:
        return
    shard: dict[str, torch.Tensor] = {}
    index, size = 0, 0
    for key, tensor in load_file(adapter / "model.safetensors").items():
        tensor = tensor.to(torch.bfloat16) if tensor.is_floating_point() else tensor
        if shard and size + tensor.numel() * tensor.element_size() > SHARD_BYTES:
            save_file(shard, folder / f"{stage}-{index:02d}.safetensors")
            shard, index, size = {}, index + 1, 0
        shard[key] = tensor.contiguous()
        size += tensor.numel() * tensor.element_size()
    save_file(shard, folder / f"{stage}-{index:02d}.safetensors")


def restore(folder: Path, work: Path) -> None:
    """Unpack what :func:`export` wrote: the results into ``work`` and each stage's weights (back in float32: every
    run that starts from them starts from the same once-rounded weights) into ``work/<stage>/adapter``."""
    import tarfile

    from safetensors.torch import load_file, save_file

    if (folder / CARRY_TAR).is_file():
        with tarfile.open(folder / CARRY_TAR) as tar:
            tar.extractall(work, filter="data")
    for stage in BASE_STAGES:
        shards = sorted(folder.glob(f"{stage}-[0-9][0-9].safetensors"))
        if not shards:
            continue
        adapter = work / stage / "adapter"
        adapter.mkdir(parents=True, exist_ok=True)
        state = {}
        for shard in shards:
            state.update({k: v.float() if v.is_floating_point() else v for k, v in load_file(shard).items()})
        save_file(state, adapter / "model.safetensors")
        (adapter / RESTORED).write_text("these weights travelled as bfloat16 (study.py --export / --carry)\n")


def pack(work: Path, out: Path, extra: Iterable[Path] = ()) -> None:
    """The work folder's small files (what the report reads: JSON, CSV, the bundles' largest-singular-value
    figures), without data, weights, checkpoints and the per-module figures."""
    import tarfile

    skip = {"data", "adapter", "checkpoints", "tensorboard", "study-base-test"}
    with tarfile.open(out, "w:gz") as tar:
        for path in sorted(work.rglob("*")):
            parts = set(path.relative_to(work).parts)
            wanted = path.suffix in {".json", ".csv"} or path.name == "max_singular_value.png"
            if path.is_file() and wanted and not parts & skip:
                tar.add(path, arcname=str(path.relative_to(work)))
        for path in extra:
            tar.add(path, arcname=str(path.relative_to(work)))


def machine(device: str, jobs: int) -> dict[str, Any]:
    import platform

    import torch

    gpu = torch.cuda.get_device_name() if device.startswith("cuda") and torch.cuda.is_available() else "CPU only"
    return {
        "gpu": gpu,
        "gpus": torch.cuda.device_count() if gpu != "CPU only" else 0,
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "jobs": jobs,
    }


def _load_timings(work: Path) -> dict[str, float]:
    path = work / "timings.json"
    return json.loads(path.read_text()) if path.is_file() else {}


if __name__ == "__main__":
    sys.exit(main())
