"""``tap-miva``: the Singer tap's command line (Singer spec, Meltano conventions).

``tap-miva --config FILE [--state FILE] [--catalog FILE | --properties FILE]``
emits SCHEMA, RECORD and STATE messages on stdout; ``--discover`` prints the
catalog; ``--about [--format json|markdown]`` and ``--version`` describe the
tap. ``--config ENV`` reads TAP_MIVA_<SETTING> variables. The work is
:mod:`miva_sync.app.tap`'s; errors end as one stderr line and an exit code,
as in ``miva-sync``.
"""

from __future__ import annotations

import json
import sys

import click

from miva_sync import __version__
from miva_sync.errors import ExitStatus, MivaSyncError, UsageError

HELP = """Orders from a Miva Merchant store as a Singer tap (for Meltano).

\b
Examples:
    tap-miva --about
    tap-miva --config config.json --discover > catalog.json
    tap-miva --config config.json --catalog catalog.json --state state.json
    TAP_MIVA_URL=… tap-miva --config ENV --discover
"""


@click.command(help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="tap-miva")
@click.option(
    "--config",
    "configs",
    multiple=True,
    metavar="FILE|ENV",
    help="JSON settings (repeatable, later wins); ENV: TAP_MIVA_* variables.",
)
@click.option(
    "--state", "state_file", metavar="FILE", help="Singer state to resume from."
)
@click.option(
    "--catalog", "catalog_file", metavar="FILE", help="Selected streams/fields."
)
@click.option(
    "--properties", "properties_file", metavar="FILE", help="Older --catalog."
)
@click.option("--discover", is_flag=True, help="Print the catalog and exit.")
@click.option("--about", is_flag=True, help="Describe the tap and its settings.")
@click.option(
    "--format",
    "about_format",
    type=click.Choice(["json", "markdown"]),
    default="json",
    help="--about's format.",
)
def tap(
    configs: tuple[str, ...],
    state_file: str | None,
    catalog_file: str | None,
    properties_file: str | None,
    discover: bool,
    about: bool,
    about_format: str,
) -> None:
    from miva_sync.app import tap as app

    if about:
        if about_format == "markdown":
            sys.stdout.write(app.about_markdown())
        else:
            sys.stdout.write(json.dumps(app.about(), indent=2) + "\n")
        return
    if not configs:
        raise UsageError("--config FILE is required (or --config ENV)")
    if catalog_file and properties_file:
        raise UsageError("give --catalog or --properties, not both")
    config = app.load_config(configs)
    if discover:
        sys.stdout.write(json.dumps(app.discover(config), indent=2) + "\n")
        return
    state = app.read_json(state_file, "--state") if state_file else None
    chosen = catalog_file or properties_file
    catalog = app.read_json(chosen, "--catalog") if chosen else None
    app.run_tap(config, state, catalog)


def main(argv: list[str] | None = None) -> None:
    """Console entry point ``tap-miva``."""
    from miva_sync.base.stdio import guard_std_streams
    from miva_sync.cli.main import _fail, _flush_stdout

    guard_std_streams()
    try:
        tap.main(args=argv, prog_name="tap-miva", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        _fail(f"{exc.format_message()} (see 'tap-miva --help')", ExitStatus.USAGE)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        _fail("interrupted", ExitStatus.INTERRUPTED)
    except MivaSyncError as exc:
        _fail(str(exc), exc.exit_code)
    except BrokenPipeError:
        _fail("output closed (broken pipe)", ExitStatus.OUTPUT)
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        _fail(
            f"internal error ({type(exc).__name__}); this is a bug", ExitStatus.INTERNAL
        )
    _flush_stdout()
    sys.exit(0)
