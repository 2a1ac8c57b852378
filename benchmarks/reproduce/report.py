"""The report stage of the reproduction study (``study.py --stages report``): reads everything the other stages left
in the work folder, writes the raw results (``benchmarks/results/reproduce/*.json``), the figures and RESULTS.md
with the paper-format tables and a verdict per claim. Every verdict follows from a rule stated beside it, applied
to the numbers in the tables, so a rerun that comes out differently writes a different verdict."""

from __future__ import annotations

import csv
import json
import math
import platform
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from study import ATTRIBUTES, BASE_STAGES, HEADS, Scale, data_specs, methods, plan, unadapted_scores

PAPER = {  # the seed paper's subspace-adapter parameter counts (Tables 1 and 2; ../shared/seeds/003)
    ("texture", "geometry"): {8: 3.8e6, 16: 4.0e6, 32: 4.7e6},
    ATTRIBUTES: {16: 4.7e6, 32: 7.6e6, 64: 19.3e6},
}
SETTINGS = [("micro", "few"), ("micro", "many"), ("object", "few"), ("object", "many")]
METRICS = [  # (key path, label, lower is better, scale for display)
    (("depth", "abs_rel"), "AbsRel", True),
    (("depth", "delta_1"), "δ<1.25", False),
    (("depth_scale_translation", "abs_rel"), "AbsRel (s+t)", True),
    (("depth_scale_translation", "delta_1"), "δ<1.25 (s+t)", False),
    (("reconstruction", "acc"), "Acc", True),
    (("reconstruction", "comp"), "Comp", True),
    (("reconstruction", "nc"), "NC", False),
]


def write_results(work: Path, scale: Scale, results: Path, markdown: Path, log: Any) -> None:
    results.mkdir(parents=True, exist_ok=True)
    figures = results / "figures"
    figures.mkdir(exist_ok=True)
    raw: dict[str, Any] = {"scale": scale.__dict__, "timings_s": _json(work / "timings.json")}
    sections = [_header(work, scale, raw)]

    log("  report: base")
    sections.append(_base(work, scale, results, figures, raw))
    log("  report: ensembles and mining")
    sections.append(_mining(work, scale, figures, raw))
    log("  report: downstream")
    sections.append(_downstream(work, scale, figures, raw))
    log("  report: parameter counts at VGGT-1B scale")
    sections.append(_param_counts(raw))
    sections.append(_verdicts(raw))
    sections.insert(1, _status(work, scale, raw))
    sections.insert(1, _summary(raw))
    (results / "results.json").write_text(json.dumps(raw, indent=1, default=float) + "\n")
    markdown.write_text("\n\n".join(s.strip() for s in sections if s) + "\n")
    log(f"  wrote {markdown} and {results}")


# ----------------------------------------------------------------------------------------------------- helpers


def _json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _get(row: dict[str, Any] | None, path: tuple[str, ...]) -> float | None:
    for key in path:
        if not isinstance(row, dict) or key not in row:
            return None
        row = row[key]
    return float(row) if row is not None else None


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, std


def _fmt(values: list[float], digits: int = 4) -> str:
    if not values:
        return "-"
    mean, std = _mean_std(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if len(values) > 1 else f"{mean:.{digits}f}"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# -------------------------------------------------------------------------------------------------------- header


def _header(work: Path, scale: Scale, raw: dict[str, Any]) -> str:
    import torch

    timings = raw["timings_s"] or {}
    machine = _json(work / "machine.json") or {}
    raw["machine"] = machine
    specs = data_specs(scale)
    data_lines = "\n".join(
        f"| `{name}` | {s.family} | {s.datasets} x {s.scenes} x {s.views} | {s.camera_mode} | "
        f"{'object-centred' if s.object_centred else s.layout} | {s.seed} |"
        for name, s in specs.items()
    )
    on_device = {k: v for k, v in timings.items() if k != "report"}
    total = sum(on_device.values())
    listed = {k: v for k, v in on_device.items() if v >= 3}  # e.g. a background wait that found the work done
    gpus = machine.get("gpus")  # not recorded by studies before 2026-11-30's one-GPU run
    if machine.get("gpu", "CPU only") == "CPU only":
        hardware = "no GPU"
    else:
        hardware = f"{gpus} x {machine['gpu']}" if gpus else machine["gpu"]
    return f"""# Does mining attribute subspaces work? A small-scale reproduction

The claim under test (seed paper 003, `../shared/reference/methods.md` A.4): fine-tuning inside attribute subspaces
mined from LoRA ensembles matches or beats LoRA, PiSSA and full fine-tuning with far fewer trainable parameters.
The paper's mining code and subspaces are unreleased and the VGGT-1B weights cannot be fetched here, so this study
runs the whole method with this project's own pipeline on a model one GPU can pretrain: `vggt-small` (23.6 M
parameters, VGGT-1B's architecture at a quarter of its depth and under a third of its width). Everything below comes
from one command (`benchmarks/reproduce/study.py`), whose raw outputs are in `benchmarks/results/reproduce/`.
A model this small, trained for minutes on synthetic rooms, is not VGGT-1B: a verdict here is a verdict about the
method at this scale, with the controls the paper does not report.

Machine: {hardware}, {machine.get("cpus", "-")} CPU cores
({machine.get("date", time.strftime("%Y-%m-%d"))}), torch {machine.get("torch", torch.__version__)},
Python {machine.get("python", platform.python_version())}. The stages took {total / 60:.1f} min of wall time on that
machine over all calls ({", ".join(f"{k} {v / 60:.1f} min" for k, v in listed.items())}); this report is written
on a CPU from their raw outputs.

```bash
PYTHONPATH=.:plugins/vggt SUBSPACE_HUB_PLUGINS=subspace_hub_vggt.plugin \\
    python benchmarks/reproduce/study.py --work /tmp/study --device cuda --jobs {machine.get("jobs", 14)}
```

(`--stages` and `--budget` split it across calls; finished stages and runs are skipped on a rerun; `--scale smoke`
runs every stage at toy sizes on a CPU.)

## Data (generated, {scale.height} x {scale.width} px; datasets x scenes x views)

| folder | family | size | cameras | scenes | seed |
|---|---|---|---|---|---|
{data_lines}

The downstream test sets (`*/test`) are other seeds than their training sets: no test scene shares geometry or
cameras with a training scene. Object-centred scenes are part of the base's general data (stage 2, orbit cameras,
other seeds), as object-centric captures are part of VGGT's; no ensemble saw one, and no earlier stage saw
micro-baseline cameras on an object-centred scene (the micro task's pairing)."""


def _status(work: Path, scale: Scale, raw: dict[str, Any]) -> str:
    """What of the planned study has run: the runs per stage and the seeds per downstream setting."""
    from study import downstream_jobs, ensemble_jobs

    def done(jobs: list[Any]) -> int:
        return sum((Path(job.run) / "study.json").is_file() for job in jobs)

    ensembles = ensemble_jobs(work, scale, "cuda")
    downstream = downstream_jobs(work, scale, "cuda") if (work / "downstream" / "plan.json").is_file() else []
    seeds = {seed: [j for j in downstream if j.tags["seed"] == seed and j.tags["kind"] != "lr"] for seed in scale.seeds}
    complete = [seed for seed, jobs in seeds.items() if jobs and done(jobs) == len(jobs)]
    raw["status"] = {
        "ensemble_runs": [done(ensembles), len(ensembles)],
        "downstream_runs": [done(downstream), len(downstream)],
        "complete_seeds": complete,
    }
    partial = len(complete) < len(scale.seeds)
    lines = [
        "- base: "
        + ", ".join(f"{s} {'trained' if (work / s / 'study.json').is_file() else 'not trained'}" for s in BASE_STAGES),
        f"- ensembles: {done(ensembles)} of {len(ensembles)} LoRAs",
        f"- mining: {'done' if (work / 'bundles' / 'stats.json').is_file() else 'not run'}",
        f"- downstream: {done(downstream)} of {len(downstream)} runs; complete seeds: "
        f"{', '.join(map(str, complete)) or 'none'} of {', '.join(map(str, scale.seeds))}",
    ]
    note = (
        "\n\n**This is a partial run.** The study's remaining runs did not fit this session's GPU time; the command "
        "above continues it (finished runs are skipped). Until every seed has run, the downstream verdicts below are "
        "inconclusive by their own rule, whatever the direction of the differences."
        if partial
        else ""
    )
    return "## Status of this run\n\n" + "\n".join(lines) + note


# ---------------------------------------------------------------------------------------------------------- base


def _read_csv(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with open(path) as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def _base(work: Path, scale: Scale, results: Path, figures: Path, raw: dict[str, Any]) -> str:
    stages = {}
    for stage in BASE_STAGES:
        run = work / stage
        stages[stage] = {
            "result": _json(run / "study.json") or {},
            "metrics": _read_csv(run / "metrics.csv"),
            "evaluation": _read_csv(run / "evaluation.csv"),
            "baselines": _json(run / "baselines.json") or {},
        }
        for name in ("metrics.csv", "evaluation.csv"):
            if (run / name).is_file():
                shutil.copy(run / name, results / f"{stage.replace('-', '_')}_{name}")
    raw["base_stages"] = {k: {n: v[n] for n in ("result", "evaluation", "baselines")} for k, v in stages.items()}
    last = stages[BASE_STAGES[-1]]
    raw["base"] = {n: last[n] for n in ("result", "evaluation", "baselines")}  # what every later stage started from
    if not stages[BASE_STAGES[0]]["metrics"]:
        return "## 1. Base model\n\nNot run yet."
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    offset = 0
    for stage, data in stages.items():
        metrics, evaluation = data["metrics"], data["evaluation"]
        if not metrics:
            continue
        left.plot([offset + r["step"] for r in metrics], [r["loss"] for r in metrics], lw=0.6, label=stage)
        key = next((k for k in (evaluation[0] if evaluation else {}) if k.endswith("abs_rel")), None)
        if key:
            line = right.plot(
                [offset + r["step"] for r in evaluation], [r[key] for r in evaluation], marker="o", label=stage
            )
            constant = _get(data["baselines"].get("base test split", {}).get("constant depth"), ("depth", "abs_rel"))
            if constant is not None:
                right.axhline(
                    constant, color=line[0].get_color(), ls="--", lw=0.8, label=f"constant depth ({stage}'s scenes)"
                )
        offset += int(metrics[-1]["step"])
    left.set(xlabel="step", ylabel="training loss (camera x5 + depth)", yscale="log", title="vggt-small pretraining")
    left.legend()
    right.set(xlabel="step", ylabel="AbsRel (held-out scenes)", title="held-out depth")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(figures / "base_curve.png", dpi=120)
    plt.close(fig)
    rows = []
    for stage, data in stages.items():
        for split, row in data["baselines"].items():
            if split.startswith("_"):
                continue
            for label, scores in row.items():
                if label != "base" and stage != BASE_STAGES[-1] and split != "base test split":
                    continue  # the trivial predictors on the downstream tests do not depend on the stage
                rows.append(
                    [f"{split} ({stage})" if split == "base test split" else split, stage if label == "base" else label]
                    + [
                        f"{v:.4f}" if (v := _get(scores, path)) is not None else "-"
                        for path, _, _ in [METRICS[0], METRICS[1], METRICS[4], METRICS[5], METRICS[6]]
                    ]
                )
    table = _table(["test scenes", "predictor", "AbsRel", "δ<1.25", "Acc", "Comp", "NC"], rows)
    notes = "\n\n".join(n for d in stages.values() if (n := d["baselines"].get("_note", "")))
    first, second = (stages[s]["result"] for s in BASE_STAGES)

    def minutes(result: dict[str, Any]) -> str:
        return f"{result.get('seconds', 0) / 60:.1f} min" if result else "not run yet"

    def losses(result: dict[str, Any]) -> str:
        return f"{result.get('loss_first', float('nan')):.3f} → {result.get('loss_last', float('nan')):.3f}"

    return f"""## 1. Base model

`train --method full` of `vggt-small` in two stages, the camera + depth loss of VGGT, AdamW with weight decay
0.05, 5 % warm-up then cosine in each; every run of the study (base, ensembles, downstream) in
{"float32" if scale.precision == "fp32" else "bf16 autocast"}:

- **`base`**, from random weights on the rooms (standard, orbit and micro-baseline cameras): {scale.base_steps}
  steps of at most {scale.base_images} images, lr {scale.base_lr:g}; {minutes(first)}, loss {losses(first)}. Its
  curve is measured on the first {scale.base_eval_limit} held-out views of its sources.
- **`base-2`**, from `base` on the rooms and the object-centred scenes (orbit cameras): {scale.tune_steps} steps of
  at most {scale.tune_images} images, lr {scale.tune_lr:g}; {minutes(second)}, loss {losses(second)}. Its curve is
  measured on the first {scale.tune_eval_limit} held-out views, which cover the four kinds of scene alike. Every
  later stage starts from `base-2`.

Both stages' test splits hold other views (cameras) of the training scenes; the downstream test sets hold other
scenes. A base that beats the constant depth on the first and not on the second has learnt its training scenes more
than depth that transfers: 256 scenes per kind of scene and minutes of training are far from VGGT's data.

![base curve](benchmarks/results/reproduce/figures/base_curve.png)

The trivial baselines: a constant depth per view (under per-view median alignment every constant is the same
predictor) and the same architecture with random weights (for Acc/Comp/NC, which need cameras). Depth after
per-view median alignment; Acc/Comp/NC by the paper's protocol (depth + predicted cameras, Umeyama Sim(3), ICP).

{table}

{notes}"""


# -------------------------------------------------------------------------------------------------------- mining


def _mining(work: Path, scale: Scale, figures: Path, raw: dict[str, Any]) -> str:
    ensembles = {}
    for seeds in ("distinct", "shared"):
        for attribute in ATTRIBUTES:
            runs = [
                _json(work / "ensembles" / seeds / attribute / f"lora-{i}" / "study.json") for i in range(scale.loras)
            ]
            runs = [r for r in runs if r]
            ensembles[f"{seeds}/{attribute}"] = {
                "runs": len(runs),
                "loss_first": _mean_std([r["loss_first"] for r in runs]) if runs else None,
                "loss_last": _mean_std([r["loss_last"] for r in runs]) if runs else None,
                "seconds": sum(r["seconds"] for r in runs),
            }
    raw["ensembles"] = ensembles
    d = scale.d
    names = {"distinct": f"d{d}", "shared": f"d{d}-shared", "random": f"d{d}-random"}
    stats = _json(work / "bundles" / "stats.json")
    if not stats:
        return "## 2. Ensembles and mining\n\nNot run yet."
    cliffs, orth = stats["cliff"], stats["orthogonality"]
    raw["mining"] = {
        "cliff": cliffs,
        "orthogonality": {
            k: {p: {kk: vv for kk, vv in v.items() if kk != "values"} for p, v in o.items()} for k, o in orth.items()
        },
        "dims": stats["dims"],
    }
    plt = _plt()
    # spectra: one deep module per attribute, distinct vs shared seeds
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, key in zip(axes, ("distinct", "shared"), strict=False):
        module = stats["spectra"][key]["module"]
        for attribute, values in stats["spectra"][key]["values"].items():
            ax.semilogy(range(1, len(values) + 1), [v / values[0] for v in values], label=attribute, lw=1)
        ax.axvline(scale.lora_rank + 0.5, color="gray", ls="--", lw=0.8)
        ax.set(title=f"{key} LoRA seeds: {module}", xlabel="singular value index", ylabel="σ_j / σ_1")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(figures / "spectra_distinct_vs_shared.png", dpi=120)
    plt.close(fig)
    # gap at the LoRA rank per layer
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, stats in cliffs.items():
        for attribute, per_layer in stats["per_layer"].items():
            layers = sorted(per_layer, key=int)
            ax.plot(
                [int(x) for x in layers],
                [per_layer[x] for x in layers],
                marker="o",
                ms=3,
                ls="-" if key == "distinct" else "--",
                label=f"{attribute} ({key})",
            )
    ax.set(xlabel="block", ylabel=f"σ_{scale.lora_rank} / σ_{scale.lora_rank + 1} (median over modules)", yscale="log")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(figures / "cliff_per_layer.png", dpi=120)
    plt.close(fig)
    # orthogonality: smallest eigenvalue per module, per pair, mined (distinct / shared) vs random bases
    pairs = list(orth.get("distinct", {}))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(pairs)), 3.5))
    width = 0.27
    for offset, key in enumerate(("distinct", "shared", "random")):
        if key not in orth:
            continue
        data = [orth[key][p]["values"] for p in pairs]
        ax.boxplot(
            data,
            positions=[i + (offset - 1) * width for i in range(len(pairs))],
            widths=width * 0.9,
            patch_artist=True,
            boxprops={"facecolor": f"C{offset}", "alpha": 0.6},
            showfliers=False,
        )
        ax.plot([], [], color=f"C{offset}", lw=6, alpha=0.6, label=key)
    ax.axhline(0.5, color="gray", ls="--", lw=0.8)
    ax.set_xticks(range(len(pairs)), [p.replace("__", "\n") for p in pairs], fontsize=7)
    ax.set(ylabel="smallest eigenvalue (1 = orthogonal)", ylim=(0, 1.05))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(figures / "orthogonality.png", dpi=120)
    plt.close(fig)
    for key, name in names.items():
        source = work / "bundles" / name / "analysis" / "max_singular_value.png"
        if source.is_file():
            shutil.copy(source, figures / f"max_singular_value_{key}.png")

    loss_rows = [
        [
            key,
            str(v["runs"]),
            f"{v['loss_first'][0]:.3f}" if v["loss_first"] else "-",
            f"{v['loss_last'][0]:.3f}" if v["loss_last"] else "-",
            f"{v['seconds']:.0f}",
        ]
        for key, v in ensembles.items()
    ]
    cliff_rows = [
        [
            key,
            f"{s['median_ratio']:.2f}" if s["median_ratio"] else "-",
            f"{s['median_ratio_deep_layers']:.2f}" if s["median_ratio_deep_layers"] else "-",
            f"{100 * s['share_largest_gap_at_rank']:.0f} %" if s["share_largest_gap_at_rank"] is not None else "-",
        ]
        for key, s in cliffs.items()
    ]
    orth_rows = [
        [pair.replace("__", " / ")]
        + [
            f"{orth[k][pair]['median_smallest']:.3f} ({100 * orth[k][pair]['share_above_half']:.0f} % > 0.5)"
            if k in orth and pair in orth[k]
            else "-"
            for k in ("distinct", "shared", "random")
        ]
        for pair in pairs
    ]
    return f"""## 2. Ensembles and mining

Per attribute {scale.loras} LoRAs of rank {scale.lora_rank} on the paper's targets (aggregator blocks, camera head,
depth head), one per dataset of the attribute's family, {scale.lora_steps} steps each (AdamW lr {scale.lora_lr:g},
weight decay 0.05, warm-up then cosine), twice: with distinct initialisation seeds, and all with one shared seed
(the paper's trainer appears to seed every LoRA alike). Subspaces are mined from the aggregator blocks' linears (the
paper's basis file), d = {d} per attribute and module, alpha = 1 (robust), the paper's weighted-mean SVD; also
d = {", ".join(map(str, scale.sweep))}, alpha = 2 and the shared-seed ensembles.

{_table(["ensemble", "LoRAs", "first loss", "last loss", "seconds"], loss_rows)}

**Is there a cliff at the LoRA rank?** σ_r / σ_(r+1) at r = {scale.lora_rank} of each module's spectrum (the weighted
mean of the ensemble's updates), and the share of modules whose largest gap among the first {3 * scale.lora_rank}
singular values is at the rank:

{_table(["LoRA seeds", "median ratio, all layers", "median ratio, deepest third", "largest gap at r"], cliff_rows)}

![spectra](benchmarks/results/reproduce/figures/spectra_distinct_vs_shared.png)
![cliff per layer](benchmarks/results/reproduce/figures/cliff_per_layer.png)

**Do the subspaces disentangle?** The smallest eigenvalue of Eq. 4 (1 - cos of the smallest principal angle, the
lower of the output and input sides) per module and attribute pair: median over modules, and the share above 0.5
(the paper: "most above 0.5"). The control is random bases of exactly the same sizes: what "orthogonal" means for
subspaces this small in spaces this large.

{_table(["pair", "mined, distinct seeds", "mined, shared seed", "random bases"], orth_rows)}

![orthogonality](benchmarks/results/reproduce/figures/orthogonality.png)

Largest singular value per layer (the paper's Fig. 5):
[distinct seeds](benchmarks/results/reproduce/figures/max_singular_value_distinct.png),
[shared seed](benchmarks/results/reproduce/figures/max_singular_value_shared.png)."""


# ---------------------------------------------------------------------------------------------------- downstream


def _downstream(work: Path, scale: Scale, figures: Path, raw: dict[str, Any]) -> str:
    runs = [_json(p) for p in sorted((work / "downstream").glob("*/*/study.json"))]
    runs = [r for r in runs if r]
    unadapted = unadapted_scores(work)
    if not runs:
        return "## 3. Downstream fine-tuning\n\nNot run yet."
    matched = plan(work, scale)
    rank, subspace_params, rank_one = matched["rank"], matched["subspace_parameters"], matched["lora_rank_one"]
    rows_order = list(methods(work, scale))
    table: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    lr_rows = []
    for run in runs:
        tags = run["tags"]
        if tags["kind"] == "lr":
            lr_rows.append(run)
            continue
        table[(tags["task"], tags["regime"])][tags["row"]].append(run)
    raw["downstream"] = {
        "matched_rank": {"rank": rank, "subspace_parameters": subspace_params, "lora_rank_one": rank_one},
        "unadapted": unadapted,
        "runs": [
            {
                "tags": r["tags"],
                "trainable_parameters": r["trainable_parameters"],
                "metrics": r.get("metrics"),
                "loss_first": r["loss_first"],
                "loss_last": r["loss_last"],
                "seconds": r["seconds"],
            }
            for r in runs
        ],
    }
    summary: dict[str, dict[str, dict[str, list[float]]]] = {}
    constant: dict[str, float] = {}  # setting -> the constant depth's AbsRel on its test scenes
    sections = []
    for task, regime in SETTINGS:
        rows_of = table.get((task, regime), {})
        if not rows_of:
            continue
        key = f"{task}-{regime}"
        summary[key] = {}
        lines = []
        base = unadapted.get(task, {})
        lines.append(
            ["no adaptation", "0"] + [f"{v:.4f}" if (v := _get(base, p)) is not None else "-" for p, _, _ in METRICS]
        )
        summary[key]["no adaptation"] = {label: [v] for p, label, _ in METRICS if (v := _get(base, p)) is not None}
        trivial = raw.get("base", {}).get("baselines", {}).get(f"{task} test", {}).get("constant depth")
        if trivial:
            cells = [_get(trivial, p) if p[0] == "depth" else None for p, _, _ in METRICS]
            lines.append(["constant depth per view", "-"] + [f"{v:.4f}" if v is not None else "-" for v in cells])
            constant[key] = _get(trivial, ("depth", "abs_rel"))
        for row in rows_order:
            group = rows_of.get(row, [])
            if not group:
                continue
            values = {
                label: [v for r in group if (v := _get(r.get("metrics"), p)) is not None] for p, label, _ in METRICS
            }
            summary[key][row] = values
            params = group[0]["trainable_parameters"]
            lines.append([row, f"{params / 1e6:.3f} M"] + [_fmt(values[label]) for _, label, _ in METRICS])
        n = {len(g) for g in rows_of.values()}
        sections.append(
            f"### {task}, {regime} ({scale.few if regime == 'few' else scale.many} training scenes; "
            f"seeds per row: {', '.join(map(str, sorted(n)))})\n\n"
            + _table(["method", "trainable"] + [label for _, label, _ in METRICS], lines)
        )
    raw["downstream"]["summary"] = summary
    raw["downstream"]["constant_abs_rel"] = constant
    plt = _plt()
    keys = list(summary)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 4.5), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=False):
        names = [r for r in ["no adaptation", *rows_order] if r in summary[key] and summary[key][r].get("AbsRel")]
        means = [_mean_std(summary[key][r]["AbsRel"]) for r in names]
        colours = [
            "C3" if "mined" in r and "subspace" in r else "C0" if "random" in r or "heads" in r else "C7" for r in names
        ]
        ax.barh(range(len(names)), [m for m, _ in means], xerr=[s for _, s in means], color=colours)
        ax.set_yticks(range(len(names)), names, fontsize=6)
        ax.invert_yaxis()
        low = min([m - s for m, s in means] + ([constant[key]] if key in constant else []))
        ax.set_xlim(left=max(0.0, low * 0.95))
        if key in constant:
            ax.axvline(constant[key], color="k", ls="--", lw=0.8, label="constant depth")
            ax.legend(fontsize=6, loc="lower right")
        ax.set(title=key, xlabel="AbsRel (mean ± std over seeds)")
    fig.tight_layout()
    fig.savefig(figures / "downstream_absrel.png", dpi=120)
    plt.close(fig)
    lr_lines = []
    for run in sorted(lr_rows, key=lambda r: (r["tags"]["row"], r["tags"]["lr"])):
        lr_lines.append(
            [
                run["tags"]["row"],
                f"{run['tags']['lr']:g}",
                f"{_get(run.get('metrics'), ('depth', 'abs_rel')):.4f}",
                f"{_get(run.get('metrics'), ('reconstruction', 'acc')):.4f}",
            ]
        )
    for row in ("subspace tex+geo (mined)", "random bases, tex+geo sizes", f"LoRA r{scale.lora_rank}", "full"):
        seed0 = [r for r in table.get(("micro", "few"), {}).get(row, []) if r["tags"]["seed"] == 0]
        for r in seed0:
            lr_lines.append(
                [
                    row,
                    f"{r['tags']['lr']:g} (default)",
                    f"{_get(r.get('metrics'), ('depth', 'abs_rel')):.4f}",
                    f"{_get(r.get('metrics'), ('reconstruction', 'acc')):.4f}",
                ]
            )
    lr_lines.sort(key=lambda line: (line[0], float(line[1].split()[0])))
    raw["downstream"]["lr_check"] = lr_lines
    return f"""## 3. Downstream fine-tuning

Two tasks that mirror the paper's, each with a few-shot and a larger training set: **micro** (micro-baseline
close-range views of object-centred scenes: the anti-spoofing setting's geometry) and **object** (orbits around
object-centred scenes: the clothed-human setting's). Every method trains {scale.steps} steps from the pretrained base
with the same data, batches ({scale.images} images, {scale.views} views a sample) and schedule (AdamW, weight decay
0.05, 5 % warm-up then cosine); learning rate {scale.lr:g} for every adapter and {scale.full_lr:g} for full
fine-tuning. Rows: the mined subspaces (texture + geometry, as the paper's anti-spoofing runs; all four, as its human
runs; cores on the aggregator's linears, LoRA r{scale.lora_rank} on the heads, as the released code), **random
orthonormal bases of exactly the mined sizes** in the same modules (is it the subspace or only the small core?), **the
heads' LoRA alone** (the part of the subspace adapter that is plain LoRA: is it the aggregator cores at all?), LoRA
r{scale.lora_rank}, **LoRA r{rank}, parameter-matched** to the subspace adapter ({rank * rank_one:,} vs
{subspace_params:,}), PiSSA, AdaLoRA, PSV (cores on the pretrained weights' principal directions) and full; the
ablations: the shared-seed ensembles' subspaces, least-squares (alpha = 2) extraction, texture alone.

Metrics on the task's held-out test scenes ({scale.test} scenes of other seeds): AbsRel and δ<1.25 after per-view
median alignment, the same after the paper's joint scale + 3D translation alignment (s+t), and Acc / Comp / NC by the
reconstruction protocol (predicted depth and cameras, Umeyama Sim(3), ICP). Mean ± standard deviation over seeds.

{chr(10).join(chr(10) + s for s in sections)}

![downstream](benchmarks/results/reproduce/figures/downstream_absrel.png)

**Learning-rate check** (micro, few-shot, seed 0): does the ranking hinge on the one learning rate?

{_table(["method", "lr", "AbsRel", "Acc"], lr_lines)}"""


# ------------------------------------------------------------------------------------------------ parameter counts


def _param_counts(raw: dict[str, Any]) -> str:
    """The paper's subspace-adapter counts against readings of d, on VGGT-1B built on the meta device."""
    from subspace_hub.adapters.report import count_parameters
    from subspace_hub.adapters.subspace import synthetic_bundle
    from subspace_hub_vggt.config import PRESETS

    config = {**PRESETS["vggt-1b"], "enable_point": False, "enable_track": False}
    aggregator = r"aggregator\.(frame|global)_blocks\.\d+\.(attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)"
    heads = count_parameters("vggt", "lora", config=config, options={"rank": 16, "targets": HEADS}).trainable

    def cores(attributes: tuple[str, ...], k: int, targets: str | None, rest: int | None) -> int:
        def options(model: Any) -> dict[str, Any]:
            return {"bundle": synthetic_bundle(model, attributes, k, targets=targets), "lora_rank": rest}

        return count_parameters("vggt", "subspace", config=config, options=options).trainable

    readings = {  # label -> count(attributes, d)
        "A: d per attribute, cores on the 192 aggregator linears, LoRA r16 on the heads (the released code; ours)": (
            lambda a, d: cores(a, d, aggregator, 16)
        ),
        "B: d in total (split over the attributes), otherwise A": lambda a, d: cores(
            a, max(1, d // len(a)), aggregator, 16
        ),
        "C: d per attribute, cores on every adapted layer (aggregator and heads), no LoRA": (
            lambda a, d: cores(a, d, None, None)
        ),
        "D: C plus LoRA r16 on the heads (a core and a LoRA on each head layer)": (
            lambda a, d: cores(a, d, None, None) + heads
        ),
    }
    rows, errors = [], {}
    for label, count in readings.items():
        errors[label] = []
        for attributes, paper in PAPER.items():
            for d, expected in paper.items():
                ours = count(attributes, d)
                errors[label].append(ours / expected - 1)
                rows.append(
                    [
                        label.split(":")[0],
                        f"{len(attributes)} x d={d}",
                        f"{expected / 1e6:.1f} M",
                        f"{ours / 1e6:.2f} M",
                        f"{100 * (ours / expected - 1):+.1f} %",
                    ]
                )
    worst = {label: max(abs(e) for e in errs) for label, errs in errors.items()}
    # the paper's own numbers fitted by trainable = H + c * (attributes * d)^2
    points = [(len(a) * d, v) for a, paper in PAPER.items() for d, v in paper.items()]
    xs, ys = [k * k for k, _ in points], [v for _, v in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    c = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    h = my - c * mx
    residual = max(abs(h + c * x - y) / y for x, y in zip(xs, ys, strict=True))
    best = min(worst, key=worst.get)
    raw["param_counts"] = {
        "rows": rows,
        "worst_relative_error": worst,
        "fit": {"H": h, "c": c, "max_residual": residual},
        "heads_lora_r16": heads,
        "best": best,
    }
    explanation = (
        "The paper's counts are what one gets when every adapted layer, the heads' included, carries a trainable "
        "core *and* the heads carry their LoRA. The released PEFT code creates its d x d core in the layer-update "
        "routine; if it does so for the heads' layers too (whose forward uses the LoRA), those cores are trainable "
        "parameters that are counted but change nothing. Our adapter (reading A) puts cores only where there are "
        "bases, which is why our d = 32 row reads 4.54 M where the paper prints 4.7 M."
        if best.startswith("D")
        else "No reading reproduces all six numbers; the table shows how far each is."
    )
    legend = "\n".join(f"- **{label}** (worst setting off by {100 * worst[label]:.1f} %)" for label in readings)
    return f"""## 4. Parameter counts: which reading of d did the paper use?

Our counts for VGGT-1B (built on the meta device; camera and depth heads on, point and track heads off, as in the
paper's fine-tuning) under four readings, against the paper's Table 1 (texture + geometry: 3.8 / 4.0 / 4.7 M at
d = 8 / 16 / 32) and Table 2 (all four: 4.7 / 7.6 / 19.3 M at d = 16 / 32 / 64):

{legend}

{_table(["reading", "setting", "paper", "ours", "difference"], rows)}

A least-squares fit of the paper's six numbers, trainable = H + c · (attributes · d)², gives H = {h / 1e6:.2f} M and
c = {c:.0f} (largest residual {100 * residual:.1f} %): one core of (attributes · d)² per matrix, so **d is per
attribute** (reading B is far off), the cores are combined across attributes, and the fixed part matches the heads'
LoRA r16 ({heads / 1e6:.2f} M). But c = {c:.0f}, not the 192 linears of the aggregator's 48 blocks that the released
code's basis-file keys name (reading A, {100 * worst[next(iter(readings))]:.0f} % short at d = 64): the counts hold
about {c - 192:.0f} more cores, about as many as the heads have adapted layers. The reading that fits best is
**{best}**. {explanation}"""


# -------------------------------------------------------------------------------------------------------- verdicts


def _compare(summary: dict[str, Any], a: str, b: str, label: str) -> list[tuple[str, float, float, int]]:
    """Per setting: (setting, mean(a) - mean(b), its standard error, seeds) on ``label`` for rows a and b; ``seeds``
    is the smaller seed count of the two (the unadapted base is deterministic and does not count)."""
    out = []
    for key, rows in summary.items():
        if a in rows and b in rows and rows[a].get(label) and rows[b].get(label):
            va, vb = rows[a][label], rows[b][label]
            (ma, sa), (mb, sb) = _mean_std(va), _mean_std(vb)
            se = math.sqrt(sa**2 / len(va) + sb**2 / len(vb))
            seeds = min(len(va), len(vb)) if b != "no adaptation" else len(va)
            out.append((key, ma - mb, se, seeds))
    return out


def _verdict(comparisons: list[tuple[str, float, float, int]], lower_is_better: bool, claim: str) -> tuple[str, str]:
    """``claim`` is "not worse" (matches or beats) or "better". A setting counts as better / worse when the difference
    of means exceeds twice its standard error; with fewer than two seeds there is no standard error and the verdict
    is inconclusive, whatever the direction."""
    if not comparisons:
        return "inconclusive", "not run"
    sign = 1 if lower_is_better else -1
    total = len(comparisons)
    if min(seeds for *_, seeds in comparisons) < 2:
        ahead = sum(sign * diff < 0 for _, diff, _, _ in comparisons)
        evidence = ", ".join(f"{k}: {diff:+.4f}" for k, diff, _, _ in comparisons)
        return f"inconclusive (one seed; ahead in {ahead} of {total} settings)", evidence
    better = [k for k, diff, se, _ in comparisons if sign * diff < -2 * se]
    worse = [k for k, diff, se, _ in comparisons if sign * diff > 2 * se]
    evidence = ", ".join(f"{k}: {diff:+.4f} ± {se:.4f}" for k, diff, se, _ in comparisons)
    if claim == "better":
        if len(better) >= total // 2 + 1 and not worse:
            return "reproduced", evidence
        if worse or not better:
            return "not reproduced", evidence
        return "inconclusive", evidence
    if len(worse) > total // 4:
        return "not reproduced", evidence
    return ("reproduced", evidence) if not worse else ("inconclusive", evidence)


def _summary(raw: dict[str, Any]) -> str:
    """The answer in a few sentences, each from the numbers and verdicts below (so a rerun rewrites it)."""
    verdicts = raw.get("verdicts", {})
    lines = []
    baselines = raw.get("base", {}).get("baselines", {})
    if baselines:
        parts = []
        for split, row in baselines.items():
            if split.startswith("_"):
                continue
            base = _get(row.get("base"), ("depth", "abs_rel"))
            constant = _get(row.get("constant depth"), ("depth", "abs_rel"))
            if base is not None and constant is not None:
                parts.append(f"{split} {base:.3f} vs {constant:.3f}")
        lines.append(
            "**The base.** AbsRel of the pretrained base against a constant depth per view: " + "; ".join(parts) + "."
        )
    best = raw.get("downstream", {}).get("best_vs_constant", {})
    if best:
        beaten = [k for k, (m, c) in best.items() if m < c]
        lines.append(
            "**Downstream.** The best fine-tuned method beats a constant depth per view in "
            + (", ".join(beaten) if beaten else "no setting")
            + " ("
            + "; ".join(f"{k}: {m:.4f} vs {c:.4f}" for k, (m, c) in best.items())
            + "), so the method comparisons rest on "
            + (", ".join(beaten) if beaten else "nothing")
            + "."
        )
    picked = [
        "The mined subspaces match or beat LoRA r16 (AbsRel)",
        "The mined subspaces match or beat a parameter-matched LoRA (AbsRel)",
        "Mining matters: mined bases beat random bases of the same sizes (AbsRel)",
        "The aggregator cores matter: the subspace adapter beats its heads' LoRA alone (AbsRel)",
        "A spectral cliff at the LoRA rank in deep layers (distinct seeds)",
        "The attribute subspaces are disentangled (most smallest eigenvalues above 0.5)",
    ]
    claims = [f"{text}: **{verdicts[text]['verdict']}**" for text in picked if text in verdicts]
    if claims:
        lines.append("**Claims** (rules and evidence in section 5):\n\n" + "\n".join(f"- {c}" for c in claims))
    counts = raw.get("param_counts", {})
    if counts.get("best"):
        lines.append(f"**Parameter counts.** The paper's Tables 1 and 2 fit reading {counts['best']} (section 4).")
    return "## In short\n\n" + "\n\n".join(lines) if lines else ""


def _informative_settings(raw: dict[str, Any]) -> list[str]:
    """The settings in which some fine-tuned method's mean AbsRel beats a constant depth per view on the test
    scenes. Where none does, every method has learnt no more depth than a constant, and a ranking of methods
    there says nothing about the claim; the downstream verdicts use the other settings only (and are
    inconclusive when there are none)."""
    downstream = raw.get("downstream", {})
    summary, constant = downstream.get("summary", {}), downstream.get("constant_abs_rel", {})
    out, best_vs = [], {}
    for key, rows in summary.items():
        means = [_mean_std(v["AbsRel"])[0] for row, v in rows.items() if row != "no adaptation" and v.get("AbsRel")]
        if key not in constant or not means:
            continue
        best_vs[key] = (min(means), constant[key])
        if min(means) < constant[key]:
            out.append(key)
    downstream["best_vs_constant"] = best_vs
    return out


def _verdicts(raw: dict[str, Any]) -> str:
    summary = raw.get("downstream", {}).get("summary", {})
    scale = raw["scale"]
    r = scale["lora_rank"]
    matched = raw.get("downstream", {}).get("matched_rank", {}).get("rank")
    mined = "subspace tex+geo (mined)"
    claims = [
        ("The mined subspaces match or beat LoRA r16 (AbsRel)", mined, f"LoRA r{r}", "AbsRel", True, "not worse"),
        ("… and on Acc (reconstruction)", mined, f"LoRA r{r}", "Acc", True, "not worse"),
        ("The mined subspaces match or beat PiSSA r16 (AbsRel)", mined, f"PiSSA r{r}", "AbsRel", True, "not worse"),
        ("The mined subspaces match or beat full fine-tuning (AbsRel)", mined, "full", "AbsRel", True, "not worse"),
        (
            "The mined subspaces match or beat a parameter-matched LoRA (AbsRel)",
            mined,
            f"LoRA r{matched} (parameter-matched)",
            "AbsRel",
            True,
            "not worse",
        ),
        (
            "Mining matters: mined bases beat random bases of the same sizes (AbsRel)",
            mined,
            "random bases, tex+geo sizes",
            "AbsRel",
            True,
            "better",
        ),
        ("… and on Acc", mined, "random bases, tex+geo sizes", "Acc", True, "better"),
        (
            "The aggregator cores matter: the subspace adapter beats its heads' LoRA alone (AbsRel)",
            mined,
            f"heads LoRA r{r} only",
            "AbsRel",
            True,
            "better",
        ),
        (
            "Fine-tuning helps at all: the subspace adapter beats no adaptation (AbsRel)",
            mined,
            "no adaptation",
            "AbsRel",
            True,
            "better",
        ),
        (
            "All four attributes beat texture + geometry (AbsRel)",
            "subspace all four (mined)",
            mined,
            "AbsRel",
            True,
            "better",
        ),
        (
            "Distinct-seed ensembles beat shared-seed ones (AbsRel)",
            mined,
            "subspace tex+geo, shared-seed LoRAs",
            "AbsRel",
            True,
            "better",
        ),
        (
            "Robust (alpha = 1) extraction beats least squares (alpha = 2) (AbsRel)",
            mined,
            "subspace tex+geo, alpha = 2",
            "AbsRel",
            True,
            "better",
        ),
    ]
    informative = _informative_settings(raw)
    rows = []
    verdicts = {}
    for text, a, b, label, lower, claim in claims:
        if b == "no adaptation":
            verdict, evidence = _verdict(_compare(summary, a, b, label), lower, claim)
        elif not informative:
            best = raw.get("downstream", {}).get("best_vs_constant", {})
            verdict = "inconclusive (no method beats a constant depth in any setting)"
            evidence = ", ".join(f"{k}: best {m:.4f} vs constant {c:.4f}" for k, (m, c) in best.items()) or "not run"
        else:
            kept = {k: v for k, v in summary.items() if k in informative}
            verdict, evidence = _verdict(_compare(kept, a, b, label), lower, claim)
            evidence = f"(in {', '.join(informative)}) {evidence}"
        verdicts[text] = {"verdict": verdict, "evidence": evidence}
        rows.append([text, f"**{verdict}**", evidence])
    baselines = raw.get("base", {}).get("baselines", {})
    if baselines:
        lines, clear = [], []
        for split, row in baselines.items():
            if split.startswith("_"):
                continue
            base = _get(row.get("base"), ("depth", "abs_rel"))
            trivial = min(
                v
                for v in (
                    _get(row.get("constant depth"), ("depth", "abs_rel")),
                    _get(row.get("random weights"), ("depth", "abs_rel")),
                )
                if v is not None
            )
            clear.append(base is not None and base < 0.95 * trivial)
            lines.append(f"{split}: {base:.4f} vs {trivial:.4f}")
        splits = [s for s in baselines if not s.startswith("_")]
        if all(clear):
            verdict = "yes"
        elif any(clear):
            verdict = "only on " + ", ".join(s for s, c in zip(splits, clear, strict=True) if c)
        else:
            verdict = "no"
        text = (
            "The base is clearly better than a trivial baseline (AbsRel at least 5 % below the better of a constant "
            "depth and random weights)"
        )
        verdicts[text] = {"verdict": verdict, "evidence": "; ".join(lines)}
        rows.insert(0, [text, f"**{verdict}**", "; ".join(lines)])
    mining = raw.get("mining", {})
    cliff = mining.get("cliff", {})
    if cliff:
        distinct, shared = cliff.get("distinct", {}), cliff.get("shared", {})
        deep = distinct.get("median_ratio_deep_layers")
        verdict = (
            "reproduced"
            if deep and deep >= 2 and (distinct.get("share_largest_gap_at_rank") or 0) >= 0.5
            else "not reproduced"
        )
        evidence = (
            f"distinct seeds: median σ_r/σ_(r+1) {distinct.get('median_ratio', 0):.2f}, deepest third "
            f"{deep or 0:.2f}, largest gap at r in "
            f"{100 * (distinct.get('share_largest_gap_at_rank') or 0):.0f} % of modules; "
            f"shared seed: {shared.get('median_ratio', 0):.2f}, {shared.get('median_ratio_deep_layers') or 0:.2f}, "
            f"{100 * (shared.get('share_largest_gap_at_rank') or 0):.0f} % "
            "(rule: a cliff is a median ratio of at least 2 in "
            "the deepest third of the blocks, and the largest gap at r in at least half the modules)"
        )
        text = "A spectral cliff at the LoRA rank in deep layers (distinct seeds)"
        verdicts[text] = {"verdict": verdict, "evidence": evidence}
        rows.append([text, f"**{verdict}**", evidence])
    orth = mining.get("orthogonality", {})
    if orth.get("distinct") and orth.get("random"):
        mined_share = _mean_std([v["share_above_half"] for v in orth["distinct"].values()])[0]
        random_share = _mean_std([v["share_above_half"] for v in orth["random"].values()])[0]
        mined_median = _mean_std([v["median_smallest"] for v in orth["distinct"].values()])[0]
        random_median = _mean_std([v["median_smallest"] for v in orth["random"].values()])[0]
        above = mined_share >= 0.5
        verdict = (
            "reproduced"
            if above and mined_median >= random_median
            else "reproduced, but no more orthogonal than random subspaces"
            if above
            else "not reproduced"
        )
        evidence = (
            f"mined (distinct seeds): {100 * mined_share:.0f} % of module-pairs above 0.5, median {mined_median:.3f}; "
            f"random bases of the same sizes: {100 * random_share:.0f} %, median {random_median:.3f}"
        )
        text = "The attribute subspaces are disentangled (most smallest eigenvalues above 0.5)"
        verdicts[text] = {"verdict": verdict, "evidence": evidence}
        rows.append([text, f"**{verdict}**", evidence])
    raw["verdicts"] = verdicts
    return f"""## 5. Verdicts

Rules: a comparison counts a setting (task x regime) as better or worse when the difference of the seed means
exceeds twice its standard error (differences are row - comparator; for AbsRel and Acc negative is better). "Match or
beat" is **reproduced** when no setting is worse, **not reproduced** when more than a quarter of the settings are
worse, else inconclusive. "Beats" is **reproduced** when a majority of the settings are better and none worse,
**not reproduced** when none is better or any is worse, else inconclusive. With one seed there is no standard error:
the verdict is inconclusive and says in how many settings the row was ahead. A downstream comparison uses only the
settings where some fine-tuned method's mean AbsRel beats a constant depth per view on the test scenes (where none
does, no method has learnt more depth than a constant and their ranking says nothing); with no such setting it is
inconclusive. The comparisons with no adaptation use every setting.

{_table(["claim", "verdict", "evidence (per setting: difference ± standard error)"], rows)}"""
