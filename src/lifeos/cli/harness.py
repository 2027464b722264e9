"""``lifeos test run FILE.yaml``: run a harness file and check its expectations."""

from __future__ import annotations

from pathlib import Path

import click

from lifeos.cli._common import json_option, print_json


@click.group()
def test() -> None:
    """Run harness test files (scenarios and expectations)."""


@test.command("run")
@click.argument("file", type=click.Path(dir_okay=False))
@json_option
def run_cmd(file: str, as_json: bool) -> int:
    """Run FILE's scenarios; exit 0 if every expectation holds, 1 if not, 2 if FILE is bad."""
    from lifeos.errors import HarnessFileError, ReasonCode
    from lifeos.harness import load_suite_file, run_suite

    suite = load_suite_file(Path(file))
    result = run_suite(suite)
    if as_json:
        print_json(result.to_dict())
    else:
        for o in result.outcomes:
            mark = "PASS" if o.passed else "FAIL"
            reason = f" [{o.reason_code}]" if o.reason_code else ""
            click.echo(f"{mark}  {o.scenario} / {o.label}: {o.status}{reason}")
            for check in o.checks:
                if not check.passed:
                    click.echo(f"        expected {check.describe()}")
        body = result.to_dict()
        t = body["totals"]
        click.echo(
            f"suite {result.suite}: {t['scenarios']} scenarios, {t['runs']} runs, "
            f"{t['expectations'] - t['failed']} passed, {t['failed']} failed"
        )
        click.echo(f"hash: {body['hash']}")
    if result.bad_input is not None:
        code = ReasonCode(result.bad_reason) if result.bad_reason else None
        raise HarnessFileError(f"{file}: {result.bad_input}", code)
    if not result.passed:
        failed = sum(1 for o in result.outcomes for c in o.checks if not c.passed)
        click.echo(
            f"lifeos: error: {failed} expectation(s) failed "
            f"[{ReasonCode.EXPECTATION_FAILED.value}]",
            err=True,
        )
        return 1
    return 0
