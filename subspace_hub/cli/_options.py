"""Options several commands share, defined once."""

from __future__ import annotations

import click

registry_option = click.option(
    "--registry",
    "folder",
    default="registry",
    show_default=True,
    type=click.Path(file_okay=False),
    help="The folder of registry entries (NAME.yaml), beside cards/ and build/.",
)
