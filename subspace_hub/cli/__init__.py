"""The ``subspace-hub`` command line: one module per noun, one error funnel in :func:`main`."""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from collections.abc import Sequence

import click

from subspace_hub._version import __version__
from subspace_hub.cli.analyze import analyze
from subspace_hub.cli.build import build
from subspace_hub.cli.data import data
from subspace_hub.cli.evaluate import evaluate
from subspace_hub.cli.extract import extract
from subspace_hub.cli.hub import pull, push
from subspace_hub.cli.params import params
from subspace_hub.cli.plugins import plugins
from subspace_hub.cli.quickstart import quickstart
from subspace_hub.cli.registry import registry
from subspace_hub.cli.train import finetune, train
from subspace_hub.errors import PluginWarning, SubspaceHubError

DEBUG_ENV = "SUBSPACE_HUB_DEBUG"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, "-V", "--version", prog_name="subspace-hub")
def cli() -> None:
    """Fine-tune 3D foundation models through attribute subspaces mined from LoRA ensembles.

    Set SUBSPACE_HUB_DEBUG=1 to see full tracebacks.
    """


for _command in (
    plugins,
    quickstart,
    params,
    data,
    train,
    finetune,
    extract,
    analyze,
    build,
    evaluate,
    push,
    pull,
    registry,
):
    cli.add_command(_command)


def _one_line(text: str) -> str:
    return " ".join(text.split())


_default_formatwarning = warnings.formatwarning


def _format_warning(message, category, filename, lineno, line=None):  # type: ignore[no-untyped-def]
    """Our own warnings print as one ``Warning: ...`` line, without the source line of the library."""
    if issubclass(category, PluginWarning):
        return f"Warning: {_one_line(str(message))}\n"
    return _default_formatwarning(message, category, filename, lineno, line)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; every error becomes one line on stderr and a non-zero exit status."""
    debug = os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
    warnings.formatwarning = _format_warning
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None, prog_name="subspace-hub", standalone_mode=False
        )
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except SubspaceHubError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"Error: {_one_line(str(exc))}", err=True)
        return 1
    except Exception as exc:  # a missing dependency, or a bug: still one line
        package = (getattr(exc, "name", None) or "").split(".")[0]
        if isinstance(exc, ModuleNotFoundError) and package and package != "subspace_hub":
            if debug:
                traceback.print_exc()
            click.echo(
                f"Error: this command needs the Python package {package!r}, which is not installed here; install "
                f"it (pip install {package}) or reinstall subspace-hub with its dependencies.",
                err=True,
            )
            return 1
        if debug:
            traceback.print_exc()
            click.echo(f"Error: unexpected {type(exc).__name__}: {_one_line(str(exc))}", err=True)
        else:
            click.echo(
                f"Error: unexpected {type(exc).__name__}: {_one_line(str(exc))} "
                f"(this is a bug; set {DEBUG_ENV}=1 for the traceback and report it)",
                err=True,
            )
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
