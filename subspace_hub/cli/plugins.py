"""``subspace-hub plugins``: what is installed, what each plugin registers, and what failed."""

from __future__ import annotations

import warnings

import click

from subspace_hub.cli._output import echo_json
from subspace_hub.errors import PluginWarning
from subspace_hub.plugins import HOOK_OF_KIND, list_plugins
from subspace_hub.tables import format_table


def _backbones(info) -> list:
    """The backbone specs a plugin registered (their ``license`` is that of the weights they load)."""
    from subspace_hub.plugins import get_backbone_spec

    return [get_backbone_spec(name) for name in info.components.get("backbone", ())]


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def plugins(as_json: bool) -> None:
    """List plugins: name, distribution, version and the components each registers.

    Plugins that failed to load are listed with their error; they are skipped and everything else works.
    SUBSPACE_HUB_STRICT_PLUGINS=1 makes such a failure an error instead.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)  # failed plugins are listed below, with their error
        infos = list_plugins()
    if as_json:
        echo_json([info.as_dict() for info in infos])
        return
    loaded = [info for info in infos if not info.failed]
    rows = []
    for info in loaded:
        registers = "; ".join(
            f"{kind}s: {', '.join(names)}" for kind, names in info.components.items() if kind in HOOK_OF_KIND
        )
        licences = sorted({s.license for s in _backbones(info) if s.license})
        rows.append(
            (
                info.name,
                info.distribution or f"({info.source})",
                info.version or "",
                registers or "-",
                ", ".join(licences) or "-",
            )
        )
    click.echo(format_table(("PLUGIN", "DISTRIBUTION", "VERSION", "REGISTERS", "WEIGHTS LICENCE"), rows))
    failed = [info for info in infos if info.failed]
    if failed:
        click.echo(f"\n{len(failed)} plugin(s) failed to load and were skipped:")
        click.echo(
            format_table(
                ("PLUGIN", "DISTRIBUTION", "VERSION", "ERROR"),
                [(i.name, i.distribution or f"({i.source})", i.version or "", i.error) for i in failed],
            )
        )
