"""Figures and tables a researcher puts in a paper, from a :class:`SubspaceBundle`.

Modules are grouped by their name with the block index replaced by ``*`` (``aggregator.frame_blocks.*.attn.qkv``),
the index giving the layer axis. Written into one folder:

- ``spectra/<attribute>/<group>.png``: the first-iteration singular values of every layer of a group on a log
  scale, the chosen d marked (the paper's Fig. 2/4, supplement Fig. 3-34);
- ``max_singular_value.png``: the largest singular value per layer, one panel per group, one line per attribute
  (main Fig. 5);
- ``orthogonality/<a>__<b>.png``: for each attribute pair, the smallest orthogonality eigenvalue per layer
  (output space solid, input space dashed), one panel per group (supplement Fig. 35-40);
- ``summary.json`` and ``summary.md``: per attribute the modules, dimensions, convergence and residuals; per
  pair and group the mean and minimum orthogonality.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from subspace_hub.subspaces.analysis import module_group, orthogonality_eigenvalues
from subspace_hub.subspaces.bundle import SubspaceBundle


def _slug(text: str) -> str:
    return text.replace("*", "N").replace("/", "_")


def orthogonality_table(bundle: SubspaceBundle) -> dict[str, dict[str, dict[str, list[float]]]]:
    """``"a__b" -> module -> {"out": eigenvalues, "in": eigenvalues}`` for every attribute pair and shared module."""
    table: dict[str, dict[str, dict[str, list[float]]]] = {}
    for a, b in itertools.combinations(bundle.attribute_names, 2):
        shared = sorted(set(bundle.attributes[a]) & set(bundle.attributes[b]))
        table[f"{a}__{b}"] = {
            m: {
                "out": orthogonality_eigenvalues(bundle.attributes[a][m].U, bundle.attributes[b][m].U).tolist(),
                "in": orthogonality_eigenvalues(bundle.attributes[a][m].V, bundle.attributes[b][m].V).tolist(),
            }
            for m in shared
        }
    return table


def summarize(bundle: SubspaceBundle, orthogonality: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON-ready summary of a bundle (see the module docstring)."""
    orthogonality = orthogonality if orthogonality is not None else orthogonality_table(bundle)
    attributes = {}
    for attribute, subspaces in bundle.attributes.items():
        rel = []
        for sub in subspaces.values():
            total = float(sub.spectrum.double().pow(2).sum().sqrt()) or 1.0
            rel.append(float(sub.residuals.double().mean()) / total)
        iters = [s.iterations for s in subspaces.values()]
        attributes[attribute] = {
            "modules": len(subspaces),
            "total_dims": sum(s.d for s in subspaces.values()),
            "dims": sorted({s.d for s in subspaces.values()}),
            "converged": sum(s.converged for s in subspaces.values()),
            "iterations": {"mean": sum(iters) / max(len(iters), 1), "max": max(iters, default=0)},
            "mean_relative_residual": sum(rel) / max(len(rel), 1),
            "sources": len(bundle.info.get("sources", {}).get(attribute, [])),
        }
    pairs: dict[str, Any] = {}
    for pair, modules in orthogonality.items():
        groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"out": [], "in": []})
        for module, values in modules.items():
            group, _ = module_group(module)
            for side in ("out", "in"):
                groups[group][side].append(values[side][0])
        pairs[pair] = {
            group: {
                side: {"mean_min_eigenvalue": sum(v) / len(v), "min_eigenvalue": min(v)} for side, v in sides.items()
            }
            for group, sides in groups.items()
        }
    return {"attributes": attributes, "orthogonality": pairs, "extraction": bundle.info.get("extraction", {})}


def _markdown(summary: dict[str, Any]) -> str:
    lines = ["# Subspace bundle summary", "", "## Attributes", ""]
    lines += [
        "| attribute | modules | total dims | d | converged | mean iterations | mean relative residual |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in summary["attributes"].items():
        lines.append(
            f"| {name} | {s['modules']} | {s['total_dims']} | {', '.join(map(str, s['dims']))} | "
            f"{s['converged']}/{s['modules']} "
            f"| {s['iterations']['mean']:.1f} | {s['mean_relative_residual']:.3g} |"
        )
    if summary["orthogonality"]:
        lines += ["", "## Orthogonality (smallest eigenvalue; 1 = orthogonal, 0 = shared direction)", ""]
        lines += ["| pair | module group | out: mean | out: min | in: mean | in: min |", "|---|---|---|---|---|---|"]
        for pair, groups in summary["orthogonality"].items():
            for group, sides in groups.items():
                lines.append(
                    f"| {pair.replace('__', ' / ')} | `{group}` | {sides['out']['mean_min_eigenvalue']:.3f} | "
                    f"{sides['out']['min_eigenvalue']:.3f} "
                    f"| {sides['in']['mean_min_eigenvalue']:.3f} | {sides['in']['min_eigenvalue']:.3f} |"
                )
    return "\n".join(lines) + "\n"


def write_report(bundle: SubspaceBundle, folder: str | os.PathLike[str], *, progress: bool = True) -> dict[str, Any]:
    """Write the figures and summaries of ``bundle`` into ``folder``; returns the summary with the file paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    orthogonality = orthogonality_table(bundle)
    files: list[str] = []
    groups: dict[str, dict[str, dict[int, Any]]] = defaultdict(
        lambda: defaultdict(dict)
    )  # attribute -> group -> layer -> sub
    for attribute, module, sub in bundle.items():
        group, layer = module_group(module)
        groups[attribute][group][layer] = sub
    all_groups = sorted({g for per in groups.values() for g in per})
    steps = (
        [("spectra", a, g) for a in groups for g in groups[a]]
        + [("max", None, None)]
        + [("orth", p, None) for p in orthogonality]
    )
    iterator = steps
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(steps, desc="analyze", unit="figure")
    for kind, key, group in iterator:
        if kind == "spectra":
            layers = groups[key][group]
            fig, ax = plt.subplots(figsize=(6, 4))
            cmap = plt.get_cmap("viridis")
            for i, (layer, sub) in enumerate(sorted(layers.items())):
                values = sub.spectrum.double().clamp(min=1e-30).numpy()
                ax.semilogy(
                    range(1, len(values) + 1),
                    values,
                    color=cmap(i / max(len(layers) - 1, 1)),
                    lw=1,
                    label=f"layer {layer}",
                )
            ds = sorted({s.d for s in layers.values()})
            for dim in ds:
                ax.axvline(dim + 0.5, color="gray", ls="--", lw=0.8)
            ax.set(title=f"{key}: {group}", xlabel="singular value index", ylabel="singular value (first iteration)")
            if len(layers) <= 12:
                ax.legend(fontsize=6, ncol=2)
            path = folder / "spectra" / key / f"{_slug(group)}.png"
        elif kind == "max":
            cols = min(4, len(all_groups))
            rows = (len(all_groups) + cols - 1) // cols
            fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
            for ax, g in zip(axes.flat, all_groups, strict=False):
                for attribute in groups:
                    layers = sorted(groups[attribute].get(g, {}).items())
                    if layers:
                        ax.plot(
                            [layer for layer, _ in layers],
                            [float(s.spectrum.max()) for _, s in layers],
                            marker="o",
                            ms=3,
                            label=attribute,
                        )
                ax.set(title=g, xlabel="layer", ylabel="max singular value")
                ax.legend(fontsize=7)
            for ax in list(axes.flat)[len(all_groups) :]:
                ax.axis("off")
            path = folder / "max_singular_value.png"
        else:
            modules = orthogonality[key]
            pair_groups = sorted({module_group(m)[0] for m in modules})
            cols = min(4, max(len(pair_groups), 1))
            rows = (len(pair_groups) + cols - 1) // cols or 1
            fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
            for ax, g in zip(axes.flat, pair_groups, strict=False):
                points = sorted((module_group(m)[1], v) for m, v in modules.items() if module_group(m)[0] == g)
                ax.plot(
                    [p[0] for p in points], [p[1]["out"][0] for p in points], marker="o", ms=3, label="output space"
                )
                ax.plot(
                    [p[0] for p in points],
                    [p[1]["in"][0] for p in points],
                    marker="s",
                    ms=3,
                    ls="--",
                    label="input space",
                )
                ax.set(title=g, xlabel="layer", ylabel="smallest eigenvalue", ylim=(0, 1.05))
                ax.legend(fontsize=7)
            for ax in list(axes.flat)[len(pair_groups) :]:
                ax.axis("off")
            fig.suptitle(key.replace("__", " vs "))
            path = folder / "orthogonality" / f"{key}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        files.append(str(path.relative_to(folder)))
    summary = summarize(bundle, orthogonality)
    summary["files"] = files
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (folder / "orthogonality.json").write_text(json.dumps(orthogonality) + "\n")
    (folder / "summary.md").write_text(_markdown(summary))
    return summary
