"""``miva-sync pull --all-profiles``: each profile in its own process, one summary."""

from __future__ import annotations

from typing import Any

import click

from miva_sync.cli.common import from_command_line, shared
from miva_sync.cli.params import Span, WaitFor

# pull options that --all-profiles cannot pass on to every profile
_PER_STORE = {
    "ids": "--ids",
    "ids_from": "--ids-from",
    "use_sandbox": "--sandbox",
}
_SHARED_PER_STORE = {
    "url": "--url",
    "store_code": "--store-code",
    "api_token": "--api-token",
    "signing_key": "--signing-key",
    "profile": "--profile",
}


def _forwarded_args(ctx: click.Context) -> list[str]:
    """The pull's own options, as given on the command line, for each child."""
    opts = shared(ctx)
    clash = [flag for key, flag in _SHARED_PER_STORE.items() if opts.get(key)]
    clash += [
        flag
        for key, flag in _PER_STORE.items()
        if from_command_line(ctx, key) and ctx.params.get(key)
    ]
    if clash:
        raise click.UsageError(
            f"--all-profiles takes each store's settings from its profile; "
            f"drop {', '.join(clash)}"
        )
    from miva_sync.config import CONNECTION_KEYS

    args: list[str] = []
    for key in (*CONNECTION_KEYS, "log_format"):
        flag, value = f"--{key.replace('_', '-')}", opts.get(key)
        if value is True:
            args.append(flag)  # --insecure
        elif value is not None and value is not False:
            args.append(f"{flag}={value}")
    args += ["-v"] * int(opts.get("verbose") or 0)
    args += ["-q"] if opts.get("quiet") else []
    args += ["--debug"] if opts.get("debug") else []
    args.append("pull")
    for param in ctx.command.params:
        name = param.name or ""
        if (
            not isinstance(param, click.Option)
            or not param.expose_value
            or name in ("all_profiles", "jobs")
            or not from_command_line(ctx, name)
        ):
            continue
        value = ctx.params.get(name)
        flag = max(param.opts, key=len)
        if param.is_flag and param.secondary_opts:
            args.append(flag if value else max(param.secondary_opts, key=len))
        elif param.is_flag:
            if value:
                args.append(flag)
        elif value is True:  # --wait alone: an optional value left out
            args.append(flag)
        elif value is not None and value is not False:
            # Span options arrive as seconds: pass them on as such ("900s")
            spans = isinstance(param.type, Span | WaitFor)
            text = f"{value}s" if spans else str(value)
            args.append(f"{flag}={text}")
    return args


def pull_all_profiles(ctx: click.Context, options: dict[str, Any]) -> None:
    from miva_sync import console as ui
    from miva_sync.app import all_profiles as multi
    from miva_sync.config import home_from, read_config
    from miva_sync.errors import ConfigError

    # the config file as it is, not the default profile's settings: one broken
    # profile must not stop the rest (its own run reports it)
    profiles = (read_config(home_from()) or {}).get("profiles", {})
    names = sorted(profiles)
    if not names:
        raise ConfigError(
            "--all-profiles: the config file has no profiles; add one with "
            "'miva-sync config init --profile NAME'"
        )
    child_args = _forwarded_args(ctx)
    if from_command_line(ctx, "output"):
        to_stdout = names if options["output"] == "-" else []
    else:
        to_stdout = [
            name
            for name in names
            if isinstance(profiles[name], dict)
            and profiles[name].get("output", "-") == "-"
        ]
    if len(to_stdout) > 1:
        raise click.UsageError(
            f"profiles {', '.join(to_stdout)} would all write to stdout, interleaved: "
            "set output in each profile (miva-sync config init --force -o …) or "
            "pass -o with a database target"
        )
    quiet = bool(shared(ctx).get("quiet"))

    def done(result: Any) -> None:
        # each child's messages, whole and labelled, as it finishes
        ui.relay(result.profile, result.stderr)

    results = multi.run_profiles(names, child_args, jobs=options["jobs"], on_done=done)
    if not quiet:
        ui.print_table(
            f"miva-sync pull --all-profiles: {len(results)} profiles",
            ["profile", "exit", "result", "last message"],
            [
                [r.profile, str(r.exit_code), r.meaning, _clip(r.last_line, 160)]
                for r in results
            ],
            styles=[None if r.exit_code == 0 else "red" for r in results],
        )
    error = multi.summary_error(results)
    if error is not None:
        raise error


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
