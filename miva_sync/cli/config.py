"""``miva-sync config``: profiles in the config file."""

from __future__ import annotations

from typing import Any

import click

from miva_sync.cli.common import (
    reporting,
    require_terminal,
    settings_from,
    shared,
    shared_options,
    tell,
)
from miva_sync.cli.completion import queue_codes


@click.group()
def config() -> None:
    """Profiles in the config file: init, show, path.

    A profile holds a store's connection settings and pull defaults in
    config.toml (mode 0600) in the config folder, or in $MIVA_SYNC_HOME.
    A secret may be a reference, api_token = "env:SHOP_TOKEN", read from the
    environment at run time. Flags win over the environment, which wins
    over the profile.

    \b
    Examples:
        miva-sync config init --profile shop
        miva-sync config show
    """


@config.command("init")
@click.option("--output", "-o", "output", help="Default -o for pull and listen.")
@click.option("--overlap", help="Default number-mode overlap (30, or a span like 45m).")
@click.option("--lookback", help="Default date/updated lookback (a span like 15m).")
@click.option("--page-size", type=click.IntRange(1, 1000), help="Default page size.")
@click.option(
    "--queue",
    "queue",
    metavar="CODE",
    help="The store's workflow queue.",
    shell_complete=queue_codes,
)
@click.option("--columns", help="Default on-demand columns.")
@click.option(
    "--webhook-secret",
    help="Secret path segment for listen (or env:NAME).",
)
@click.option("--force", is_flag=True, help="Replace an existing profile.")
@click.option(
    "--default/--no-default",
    "make_default",
    default=None,
    help="Make it the default profile (default: when there is none yet).",
)
@shared_options
@click.pass_context
def config_init(ctx: click.Context, /, **options: Any) -> None:
    """Write a profile to the config file, prompting for what flags do not give.

    Secrets are prompted without echo. In scripts, give every value as a
    flag; a value "env:NAME" is saved as a reference to that environment
    variable, so the file holds no secret (and ps shows none).

    \b
    Examples:
        miva-sync config init --profile shop
        miva-sync config init --profile shop --url https://shop.example.com/mm5/json.mvc \\
            --store-code PS --api-token env:SHOP_TOKEN --signing-key env:SHOP_KEY \\
            -o sqlite:///shop.db
    """
    from miva_sync.app.profiles import check_profile_name, save_profile
    from miva_sync.config import (
        CONNECTION_KEYS,
        DEFAULT_KEYS,
        ENV_REF_PREFIX,
        decode_signing_key,
        home_from,
    )

    with reporting(ctx):
        opts = shared(ctx)
        name = check_profile_name(opts.get("profile") or "default")
        values: dict[str, Any] = {
            "url": opts.get("url"),
            "store_code": opts.get("store_code"),
            "api_token": opts.get("api_token"),
            "signing_key": opts.get("signing_key"),
        }
        missing = [f"--{k.replace('_', '-')}" for k, v in values.items() if v is None]
        if missing:
            token_only = (
                " ('' for token-only auth)" if "--signing-key" in missing else ""
            )
            require_terminal(f"pass {', '.join(missing)}{token_only}")
        if values["url"] is None:
            values["url"] = click.prompt(
                "Store JSON URL (e.g. https://shop.example.com/mm5/json.mvc)",
                err=True,
            )
        if values["store_code"] is None:
            values["store_code"] = click.prompt("Store code", err=True)
        if values["api_token"] is None:
            values["api_token"] = click.prompt(
                "API token (or env:NAME)", hide_input=True, err=True
            )
        if values["signing_key"] is None:
            values["signing_key"] = click.prompt(
                "Signing key (empty for token-only auth; or env:NAME)",
                default="",
                show_default=False,
                hide_input=True,
                err=True,
            )
        for key in CONNECTION_KEYS:
            if opts.get(key) is not None:
                values[key] = opts[key]
        # the profile's pull defaults, and the receiver's secret
        values.update(
            {k: options[k] for k in (*sorted(DEFAULT_KEYS), "webhook_secret")}
        )
        given_key = opts.get("signing_key")
        if given_key and not str(given_key).startswith(ENV_REF_PREFIX):
            # a bad key typed as a flag is named as the flag, not as the profile key
            decode_signing_key(str(given_key), where="--signing-key")
        path = save_profile(
            home_from(),
            name,
            values,
            force=options["force"],
            make_default=options["make_default"],
        )
    tell(
        ctx,
        f"saved profile {name!r} in {path} (mode 0600); next: "
        f"miva-sync --profile {name} check",
    )


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@shared_options
@click.pass_context
def config_show(ctx: click.Context, as_json: bool) -> None:
    """Show the effective settings and where each comes from (secrets masked).

    Secrets show their first characters only, or the env:NAME reference
    they come from. Flags and the environment are applied, so this is
    exactly what a pull would use.

    \b
    Examples:
        miva-sync config show
        miva-sync --profile shop config show --json | jq .settings.url
    """
    import json

    from miva_sync.app.profiles import describe

    with reporting(ctx):
        data = describe(settings_from(ctx))
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"{'profile':<15}{data['profile'] or '-'}")
    click.echo(f"{'config file':<15}{data['config_file']}")
    click.echo(f"{'state file':<15}{data['state_file']}")
    click.echo(f"{'store key':<15}{data['store_key'] or '-'}")
    for name, item in data["settings"].items():
        value = "-" if item["value"] is None else item["value"]
        if "set" in item:  # an env:NAME reference: is NAME there for a pull?
            value = f"{value} ({'set' if item['set'] else 'NOT SET'})"
        click.echo(f"{name:<15}{value!s:<44} {item['source']}")
        if item.get("problem"):
            click.echo(f"{'':<15}! {item['problem']}")
    for name, value in data["defaults"].items():
        click.echo(f"{'default ' + name:<15}{value!s:<44} profile")


@config.command("path")
@click.option("--state", is_flag=True, help="Print the state file's path instead.")
@shared_options
@click.pass_context
def config_path_cmd(ctx: click.Context, state: bool) -> None:
    """Print the config file's path (or the state file's) on stdout.

    \b
    Examples:
        $EDITOR "$(miva-sync config path)"
        miva-sync config path --state
    """
    from miva_sync.config import config_path, home_from

    if state:
        with reporting(ctx):
            click.echo(settings_from(ctx).state_path())
        return
    click.echo(config_path(home_from()))
