"""examples/cron.txt, the systemd unit and the README's crontab line, run as
cron and systemd run them (issue 21): under `env -i`, with only HOME and
PATH=/usr/bin:/bin plus what the file itself sets, and the paths it says to
write out substituted for a throwaway home."""

from __future__ import annotations

import re
import shlex
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from miva_sync.sandbox import Sandbox
from miva_sync.state.file import StateStore
from tests.support.sandbox_cli import miva_sync_exe

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PLACEHOLDER_HOME = "/home/me"  # what cron.txt says to replace with your home folder
CRON_PATH = "/usr/bin:/bin"
SCHEDULE = re.compile(r"[\d*/,-]+")
ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")


def crontab(text: str, home: Path) -> tuple[dict[str, str], list[str]]:
    """A crontab's ``NAME=value`` settings and its jobs' commands, /home/me replaced."""
    settings: dict[str, str] = {}
    jobs: list[str] = []
    for raw in text.replace(PLACEHOLDER_HOME, str(home)).splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(None, 5)
        if all(SCHEDULE.fullmatch(f) for f in fields[:5]) and len(fields) == 6:
            jobs.append(fields[5])
            continue
        setting = ASSIGNMENT.fullmatch(line)
        assert setting, f"neither a job nor a setting: {line}"
        settings[setting.group(1)] = setting.group(2)
    return settings, jobs


def as_cron(
    command: str, home: Path, settings: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run a job's command as cron does: a bare environment, the crontab's
    settings, its SHELL (default /bin/sh), started in HOME."""
    shell = settings.get("SHELL", "/bin/sh")
    assigned = [f"{k}={v}" for k, v in settings.items()]
    return subprocess.run(
        ["env", "-i", f"HOME={home}", f"PATH={CRON_PATH}", f"LOGNAME={home.name}",
         f"SHELL={shell}", *assigned, shell, "-c", command],
        cwd=home, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home folder where pipx would have put miva-sync (~/.local/bin)."""
    me = tmp_path / "me"
    (me / ".local" / "bin").mkdir(parents=True)
    (me / ".local" / "bin" / "miva-sync").symlink_to(miva_sync_exe())
    return me


@pytest.fixture
def shop() -> Iterator[Sandbox]:
    with Sandbox(orders=60, seed=4) as sb:
        yield sb


def jsonl_ids(path: Path) -> list[int]:
    return [
        int(line.split('"id":')[1].split(",")[0])
        for line in path.read_text().splitlines()
    ]


def test_cron_txt_runs_as_written_under_a_bare_environment(
    home: Path, shop: Sandbox
) -> None:
    settings, jobs = crontab((EXAMPLES / "cron.txt").read_text(), home)
    pull, alarm = jobs
    folder = Path(settings["MIVA_SYNC_HOME"])  # config and state, written out
    assert folder.is_absolute() and str(folder).startswith(str(home))
    output = folder / "shop.jsonl"
    binary = '"$HOME/.local/bin/miva-sync"'
    # the profile and the first pull, as the file's header says to make them
    init = as_cron(
        f"{binary} config init --profile shop --url {shop.url} "
        f"--store-code {shop.store_code} --api-token {shop.api_token} "
        f"--signing-key {shop.signing_key} -o {output} </dev/null",
        home, settings,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    first = as_cron(f"{binary} --profile shop pull --since 30d --quiet", home, settings)
    assert first.returncode == 0, first.stderr
    assert (folder / "config.toml").exists() and (folder / "state.json").exists()

    added = shop.store.add_order()
    done = as_cron(pull, home, settings)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # --quiet: no mail from cron when all is well
    assert max(jsonl_ids(output)) == added["id"]

    assert as_cron(alarm, home, settings).returncode == 0
    # the alarm fires once the last successful run is old
    state = StateStore(folder / "state.json")
    record = state.get("profile:shop")
    assert record is not None
    record["last_run"] = {**record.get("last_run", {}), "finished_at": 1_000_000_000}
    state.put("profile:shop", record)
    fired = as_cron(alarm, home, settings)
    assert fired.returncode == 9
    assert "more than --max-age 2h" in fired.stderr


def quick_start_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def test_readme_quick_start_crontab_line_runs_under_a_bare_environment(
    home: Path,
) -> None:
    settings, jobs = crontab(
        "\n".join(
            line for line in quick_start_block().splitlines()
            if SCHEDULE.fullmatch(line.split(" ", 1)[0])
        ),
        home,
    )  # fmt: skip
    (job,) = jobs
    # step 1 of the quick start, in the folder it makes
    work = home / "miva"
    work.mkdir()
    first = subprocess.run(
        ["env", "-i", f"HOME={home}", f"PATH={home}/.local/bin:{CRON_PATH}",
         "miva-sync", "pull", "--sandbox", "--since", "30d", "-o",
         "sqlite:///orders.db", "--no-progress"],
        cwd=work, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(work / "orders.db") as db:
        before = db.execute("SELECT count(*) FROM orders").fetchone()[0]
    assert before > 0

    done = as_cron(job, home, settings)  # started in HOME, not in ~/miva
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert not list(home.glob("*.db"))  # no stray database where cron starts
    with sqlite3.connect(work / "orders.db") as db:
        after = db.execute("SELECT count(*) FROM orders").fetchone()[0]
    assert after >= before  # resumed into the same database


def unit(text: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_systemd_units_run_as_written_under_a_bare_environment(
    home: Path, shop: Sandbox
) -> None:
    service = unit(
        (EXAMPLES / "miva-sync.service").read_text().replace("%h", str(home))
    )
    timer = unit((EXAMPLES / "miva-sync.timer").read_text())
    assert service["Type"] == ["oneshot"]
    assert timer["OnUnitActiveSec"] and timer["WantedBy"] == ["timers.target"]
    environment = dict(v.split("=", 1) for v in service.get("Environment", []))
    folder = Path(environment["MIVA_SYNC_HOME"])
    assert folder.is_absolute()
    folder.mkdir()
    # the EnvironmentFile (optional: "-") holds the secret the profile references
    (env_file,) = service["EnvironmentFile"]
    secrets = Path(env_file.removeprefix("-"))
    assert secrets.parent == folder
    secrets.write_text(f"SHOP_TOKEN={shop.api_token}\n")
    environment.update(line.split("=", 1) for line in secrets.read_text().splitlines())
    argv = shlex.split(service["ExecStart"][0])
    assert Path(argv[0]).is_absolute()  # systemd needs the binary in full

    def systemd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["env", "-i", f"HOME={home}", f"PATH={CRON_PATH}",
             *(f"{k}={v}" for k, v in environment.items()), *args],
            cwd=home, capture_output=True, text=True, timeout=180,
        )  # fmt: skip

    output = folder / "shop.jsonl"
    init = systemd(
        argv[0], "config", "init", "--profile", "shop", "--url", shop.url,
        "--store-code", shop.store_code, "--api-token", "env:SHOP_TOKEN",
        "--signing-key", shop.signing_key or "", "-o", str(output),
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    first = systemd(argv[0], "--profile", "shop", "pull", "--since", "30d", "--quiet")
    assert first.returncode == 0, first.stderr

    added = shop.store.add_order()
    done = systemd(*argv)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # --quiet: nothing for the journal when all is well
    assert max(jsonl_ids(output)) == added["id"]
