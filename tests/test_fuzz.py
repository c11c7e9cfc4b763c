"""The real server fuzzed from its own OpenAPI document: no input gets a 5xx.

Schemathesis (its CLI, so all of its phases run: schema examples, boundary and
wrong-type coverage, random fuzzing and stateful sequences) against gunicorn
with the demo data, once as an admin, a customer admin and a device. A fixed
seed and a time budget per role (FUZZ_SECONDS) keep it repeatable and inside
CI's time; `FUZZ_SECONDS=600 pytest tests/test_fuzz.py -s` is a longer run.

Operations that end the caller's own access (revoking its token, rotating the
device token, changing users) run last, in a run of their own per role, so
that they cannot leave the main run answering 401 to everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.gunicorn_server import gunicorn
from upgrade_server.cli.demo import DEMO_ORG

pytestmark = [pytest.mark.own_app, pytest.mark.slow]

BUDGET = int(os.environ.get("FUZZ_SECONDS", "25"))
SEED = int(os.environ.get("FUZZ_SEED", "20261202"))
ENDS_ACCESS = (
    r"^/api/(v1/tokens/\{token_id\}|v1/users/\{user_id\}|v1/users/me"
    r"|device/v1/token|v1/devices/\{device_id\}/token)$"
)


def _load_demo(database_url: str, instance: Path) -> dict[str, str]:
    from upgrade_server import create_app
    from upgrade_server.cli.demo import load_demo
    from upgrade_server.config import Settings
    from upgrade_server.extensions import db
    from upgrade_server.migrate import upgrade

    upgrade(database_url)
    app = create_app({"SETTINGS": Settings(instance_path=instance, database_url=database_url)})
    with app.app_context():
        shown = load_demo()
        db.engine.dispose()
    return {
        "admin": next(v for k, v in shown.items() if k.startswith("admin ")),
        "customer": next(v for k, v in shown.items() if k.startswith("customer ")),
        "device": shown["device DEMO-0001"],
    }


def _fuzz(
    url: str,
    token: str,
    folder: Path,
    name: str,
    seconds: int,
    *select: str,
    scheme: str = "Bearer",
) -> dict[str, Any]:
    report = folder / f"{name}.json"
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{url}/api/openapi.json",
        "--checks",
        "not_a_server_error",
        "--header",
        f"Authorization: {scheme} {token}",
        "--seed",
        str(SEED),
        "--max-time",
        str(seconds),
        # One worker: Python 3.11's ast is not safe across hypothesis' threads.
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
        "--report-json-path",
        str(report),
        *select,
    ]
    result = subprocess.run(
        command, cwd=folder, capture_output=True, text=True, timeout=seconds * 3 + 120
    )
    (folder / f"{name}.txt").write_text(result.stdout + result.stderr)
    assert report.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    found: dict[str, Any] = json.loads(report.read_text())
    found["output"] = result.stdout
    return found


def test_no_input_the_document_allows_or_not_gets_a_5xx(scratch_url, tmp_path):
    instance = tmp_path / "instance"
    tokens = _load_demo(scratch_url, instance)
    runs: dict[str, dict[str, Any]] = {}
    with gunicorn(scratch_url, instance, workers=2) as url:
        for role, token in tokens.items():
            runs[role] = _fuzz(
                url, token, tmp_path, role, BUDGET, "--exclude-path-regex", ENDS_ACCESS
            )
        # The demo device speaking hawkBit DDI: its tenant and controller id
        # fixed (schemathesis.toml in the run's folder), all else generated.
        (tmp_path / "schemathesis.toml").write_text(
            f'[parameters]\n"path.tenant" = "{DEMO_ORG}"\n"path.controller_id" = "DEMO-0001"\n'
        )
        runs["device over DDI"] = _fuzz(
            url,
            tokens["device"],
            tmp_path,
            "ddi",
            max(5, BUDGET // 2),  # eight operations
            "--include-path-regex",
            "/controller/v1/",
            scheme="TargetToken",
        )
        (tmp_path / "schemathesis.toml").unlink()
        # The admin last: it may end the others' access.
        for role in ("device", "customer", "admin"):
            runs[f"{role}, ending access"] = _fuzz(
                url,
                tokens[role],
                tmp_path,
                f"{role}-ends",
                max(5, BUDGET // 4),
                "--include-path-regex",
                ENDS_ACCESS,
            )
    log = (instance / "gunicorn.log").read_text(errors="replace")
    cases = sum(run["test_cases"]["generated"] for run in runs.values())
    for name, run in runs.items():
        print(
            f"fuzz {name}: {run['test_cases']['generated']} cases, "
            f"{run['operations']['tested']} operations, {len(run['failures'])} failures"
        )
    print(f"fuzz total: {cases} cases, seed {SEED}, {BUDGET} s per role")
    failures = {name: run["failures"] for name, run in runs.items() if run["failures"]}
    assert not failures, {n: runs[n]["output"][-4000:] for n in failures}
    assert "unhandled error" not in log and "Traceback" not in log, log[-4000:]
    # The run reached the API as each role, not only its 401s.
    assert all(run["operations"]["tested"] > 0 for run in runs.values())
    assert runs["admin"]["test_cases"]["generated"] > 100
