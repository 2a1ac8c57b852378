"""JSON output for the CLI; tables come from :mod:`subspace_hub.tables`."""

from __future__ import annotations

import json
from typing import Any

import click


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
