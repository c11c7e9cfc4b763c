"""`upgrade-server remote rollout …` against the real API (the HTTP client's
calls are answered by the app's test client)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from tests.helpers.rollouts import fleet
from upgrade_server.cli import remote
from upgrade_server.cli.remote_rollouts import rollout_group


@pytest.fixture
def cli(client, monkeypatch):
    """Runs `remote …` with the HTTP calls answered in-process; `hooks` run
    before each answer (method, path) -> None."""
    hooks = []

    def call(self, method, path, body=None):
        for hook in hooks:
            hook(method, path)
        r = client.open(
            path, method=method, json=body, headers={"Authorization": f"Bearer {self.token}"}
        )
        return remote._answer(SimpleNamespace(status=r.status_code, data=r.get_data()))

    monkeypatch.setattr(remote.Server, "call", call)
    remote.remote_group.add_command(rollout_group)  # as cli/main.py does

    def run(token, *args):
        # A terminal wide enough for the table of waves on one line each.
        result = CliRunner(env={"COLUMNS": "160"}).invoke(
            remote.remote_group, ["--server", "http://test", "--token", token, *args]
        )
        return result

    run.hooks = hooks
    return run


def test_start_status_pause_resume_abort(cli, client, factory):
    f = fleet(client, factory, 3, 1)
    token = f.publisher.token
    started = cli(
        token,
        "rollout",
        "start",
        f.product.code,
        "1.1.0",
        "--waves",
        "1,10,100",
        "--gate",
        "min_soak_seconds=60",
        "--manual",
        "--exclude-hardware",
        "rev-b",
    )
    assert started.exit_code == 0, started.output
    assert "waves 1 %, 10 %, 100 %: running" in started.output
    rollout_id = started.output.split(":")[0].split()[1]
    shown = cli(token, "rollout", "status", rollout_id)
    assert shown.exit_code == 0, shown.output
    assert f"Rollout {rollout_id}" in shown.output and "running" in shown.output
    assert "1 %" in shown.output and "100 %" in shown.output
    as_json = cli(token, "rollout", "status", rollout_id, "--json")
    assert '"excluded_hardware": [\n    "rev-b"\n  ]' in as_json.output
    assert '"auto_advance": false' in as_json.output
    for action, state in (
        ("pause", "paused"),
        ("resume", "running"),
        ("advance", "running"),
        ("abort", "aborted"),
    ):
        done = cli(token, "rollout", action, rollout_id, "--reason", "test")
        assert done.exit_code == 0, done.output
        assert f"rollout {rollout_id}: {state}" in done.output
    again = cli(token, "rollout", "resume", rollout_id)
    assert again.exit_code != 0 and "409" in again.output


def test_status_watch_redraws_until_the_rollout_settles(cli, client, factory):
    f = fleet(client, factory, 2, 0)
    token = f.publisher.token
    started = cli(token, "rollout", "start", f.product.code, "1.1.0", "--waves", "50,100")
    rollout_id = started.output.split(":")[0].split()[1]
    gets = []

    def abort_on_second_look(method, path):
        if method == "GET" and path.endswith(f"/rollouts/{rollout_id}"):
            gets.append(path)
            if len(gets) == 2:
                client.post(
                    f"/api/v1/rollouts/{rollout_id}/abort", json={}, headers=f.publisher.headers
                )

    cli.hooks.append(abort_on_second_look)
    watched = cli(token, "rollout", "status", rollout_id, "--watch", "--interval", "0.5")
    assert watched.exit_code == 0, watched.output
    assert len(gets) == 2 and "aborted" in watched.output


def test_bad_arguments_are_refused_before_any_call(cli, client, factory):
    f = fleet(client, factory, 1, 0)
    bad = cli(f.publisher.token, "rollout", "start", f.product.code, "1.1.0", "--waves", "1,abc")
    assert bad.exit_code == 2 and "not a percentage" in bad.output
    refused = cli(
        f.publisher.token, "rollout", "start", f.product.code, "1.1.0", "--waves", "10,50"
    )
    assert refused.exit_code == 1 and "422" in refused.output


def test_exclude_hardware_and_pin_or_exclude_devices(cli, client, factory):
    f = fleet(client, factory, 2, 1)
    token = f.publisher.token
    rollout_id = str(f.start(client)["id"])
    left_out = cli(token, "rollout", "exclude-hardware", rollout_id, "rev-b")
    assert left_out.exit_code == 0, left_out.output
    assert f"rollout {rollout_id}: hardware left out: rev-b" in left_out.output
    back = cli(token, "rollout", "exclude-hardware", rollout_id, "rev-b", "--undo")
    assert "hardware left out: none" in back.output
    unknown = cli(token, "rollout", "exclude-hardware", rollout_id, "rev-z")
    assert unknown.exit_code != 0 and "no such hardware revision" in unknown.output
    first, second = (str(d.id) for d in f.devices[:2])
    pinned = cli(token, "rollout", "device", rollout_id, first, "--as", "pin")
    assert f"pinned [{first}], excluded none" in pinned.output, pinned.output
    excluded = cli(token, "rollout", "device", rollout_id, second, "--as", "exclude")
    assert f"pinned [{first}], excluded [{second}]" in excluded.output
    cleared = cli(token, "rollout", "device", rollout_id, first, "--as", "none")
    assert f"pinned none, excluded [{second}]" in cleared.output


def test_start_with_pinned_devices_in_the_first_wave(cli, client, factory):
    f = fleet(client, factory, 3, 0)
    pinned = [str(d.id) for d in f.devices[:2]]
    started = cli(
        f.publisher.token,
        "rollout",
        "start",
        f.product.code,
        "1.1.0",
        "--waves",
        "1,100",
        "--pin",
        pinned[0],
        "--pin",
        pinned[1],
    )
    assert started.exit_code == 0, started.output
    rollout_id = started.output.split(":")[0].split()[1]
    shown = cli(f.publisher.token, "rollout", "status", rollout_id, "--json")
    assert f'"devices": [\n        {pinned[0]},\n        {pinned[1]}\n      ]' in shown.output
