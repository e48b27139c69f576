"""The contract every hostile-input test checks: one clean error line or a clean success.

On failure: one ``miva-sync: error:`` line, last on stderr; the documented exit
code; no traceback; no secret. On success: exit 0, no error line, no secret.
"""

from __future__ import annotations

from typing import Any

from tests.support.fakes import KEY, TOKEN

SECRETS = (TOKEN, KEY)
ERROR_PREFIX = "miva-sync: error: "


def assert_clean_failure(
    result: Any,
    codes: int | tuple[int, ...],
    case: str,
    secrets: tuple[str, ...] = SECRETS,
) -> None:
    """One ``miva-sync: error:`` line, last on stderr; an expected code; no traceback or secret."""
    codes = (codes,) if isinstance(codes, int) else codes
    err, out = result.stderr, result.stdout
    assert result.exit_code in codes, (
        f"{case}: exit {result.exit_code}, stderr: {err[-800:]}"
    )
    assert "Traceback" not in err + out, f"{case}: traceback: {err[-2000:]}"
    errors = [line for line in err.splitlines() if line.startswith("miva-sync: error")]
    assert len(errors) == 1, f"{case}: {len(errors)} error lines: {err[-800:]}"
    assert err.splitlines()[-1].startswith(ERROR_PREFIX), (
        f"{case}: last line: {err[-400:]}"
    )
    for secret in secrets:
        assert secret not in err and secret not in out, f"{case}: a secret was shown"


def assert_clean_success(
    result: Any, case: str, secrets: tuple[str, ...] = SECRETS
) -> None:
    err = result.stderr
    assert result.exit_code == 0, (
        f"{case}: exit {result.exit_code}, stderr: {err[-800:]}"
    )
    assert "Traceback" not in err and "miva-sync: error" not in err, (
        f"{case}: {err[-800:]}"
    )
    for secret in secrets:
        assert secret not in err and secret not in result.stdout, (
            f"{case}: a secret was shown"
        )
