"""The agent against an honest server, a flaky network and a lying server."""

from __future__ import annotations

import json
import urllib.request

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from tests.agent_helpers import installed, write_config
from tests.helpers.tuf import run_remote
from tests.live import add_product, live_server
from tests.proxy import proxy_of
from upgrade_agent.config import AgentConfig
from upgrade_agent.core import Agent, AgentError
from upgrade_server.accounts.principal import Principal
from upgrade_server.devices import provisioning
from upgrade_server.extensions import db
from upgrade_server.tickets.models import Alarm

pytestmark = pytest.mark.own_app
BIG = 3 * 1024 * 1024


@pytest.fixture
def world(scratch_url, tmp_path):
    with live_server(scratch_url, tmp_path / "instance") as live:
        add_product(live, "gw")
        add_product(live, "other")
        versions = {}
        for product, version, extra, size in (
            ("gw", "1.0.0", [], 1000),
            ("gw", "1.1.0", ["--min-from", "1.0.0"], BIG),
            ("gw", "2.0.0", ["--min-from", "1.1.0", "--hardware", "rev-a"], 2000),
            ("other", "5.0.0", [], 1500),
        ):
            artifact = tmp_path / f"{product}-{version}.bin"
            artifact.write_bytes(bytes(range(256)) * (size // 256) + version.encode())
            run_remote(
                live,
                "publish",
                product,
                version,
                str(artifact),
                "--channel",
                "stable",
                *extra,
                "--no-progress",
            )
            versions[(product, version)] = artifact.read_bytes()
        with live.app.app_context():
            cli = Principal.cli()
            from upgrade_server.organisations import service as organisations

            organisations.create_organisation(db.session, cli, slug="acme", name="ACME")
            tokens = {}
            for rev in ("rev-a", "rev-b"):
                tokens[rev] = provisioning.create_device(
                    db.session,
                    cli,
                    {
                        "serial": f"D-{rev}",
                        "product": "gw",
                        "hardware_revision": rev,
                        "organisation": "acme",
                    },
                ).secret
            db.session.commit()
        root = urllib.request.urlopen(f"{live.url}/tuf/gw/metadata/1.root.json").read()
        with proxy_of(live.url) as proxy:
            yield {
                "live": live,
                "proxy": proxy,
                "tokens": tokens,
                "root": root,
                "tmp": tmp_path,
                "bytes": versions,
            }


def agent_for(world, revision="rev-a", version="0.9.0", name="device") -> tuple[Agent, object]:
    home = world["tmp"] / f"{name}-{revision}-{version}"
    config = write_config(
        home, world["proxy"].url, world["tokens"][revision], revision, world["root"]
    )
    agent = Agent(AgentConfig.load(config), log=lambda m: None)
    agent.save(current_version=version)
    return agent, home


def _log(world, revision):
    live = world["live"]
    with live.app.app_context():
        from sqlalchemy import select

        from upgrade_server.devices.models import Device
        from upgrade_server.updates.models import InstallEvent

        device = db.session.execute(
            select(Device).where(Device.serial == f"D-{revision}")
        ).scalar_one()
        events = (
            db.session.execute(
                select(InstallEvent)
                .where(InstallEvent.device_id == device.id)
                .order_by(InstallEvent.id)
            )
            .scalars()
            .all()
        )
        return [(e.version, e.status, e.error_code) for e in events]


def test_a_cut_download_resumes_with_range_and_verifies(world):
    proxy = world["proxy"]
    agent, home = agent_for(world, version="1.0.0")
    offer = agent.check()
    assert offer.version == "1.1.0"
    path = offer.download_url
    cut = {"done": False}

    def cut_once(environ):
        status, headers, body = proxy.forward(environ)
        if cut["done"] or environ.get("HTTP_RANGE"):
            return status, headers, body
        cut["done"] = True
        data = b"".join(body)

        def half():
            yield data[: len(data) // 2]
            raise ConnectionResetError("network dropped")

        return status, headers, half()

    proxy.overrides[("GET", path)] = cut_once
    assert agent.cycle() is not None
    assert cut["done"]
    assert installed(home) == ["1.1.0"]
    assert (home / "installed" / "1.1.0").read_bytes() == world["bytes"][("gw", "1.1.0")]
    assert ("1.1.0", "installed", None) in _log(world, "rev-a")


def test_download_deadline(world):
    proxy = world["proxy"]
    agent, home = agent_for(world, version="1.0.0")
    offer = agent.check()

    def always_cut(environ):
        def nothing():
            raise ConnectionResetError("no network")
            yield b""

        return 200, {"Content-Length": str(offer.length)}, nothing()

    proxy.overrides[("GET", offer.download_url)] = always_cut
    with pytest.raises(AgentError) as error:
        agent.download(offer, deadline_seconds=1.0)
    assert error.value.code == "E_DOWNLOAD_DEADLINE"
    assert installed(home) == []


def _lie(world, offer_body, artifact=None):
    proxy = world["proxy"]

    def update_check(environ):
        return 200, {"Content-Type": "application/json"}, [json.dumps(offer_body).encode()]

    proxy.overrides[("POST", "/api/device/v1/update-check")] = update_check
    if artifact is not None:
        proxy.overrides[("GET", offer_body["download_url"])] = lambda environ: (
            200,
            {"Content-Length": str(len(artifact))},
            [artifact],
        )


def _offer(world, product, version, revision="rev-a"):
    """A genuine offer (as the honest server would make it) for a release."""
    live = world["live"]
    with live.app.app_context():
        from sqlalchemy import select

        from upgrade_server.products.models import Product
        from upgrade_server.releases.models import Release

        release = db.session.execute(
            select(Release).join(Product).where(Product.code == product, Release.version == version)
        ).scalar_one()
        return {
            "release_id": release.id,
            "version": release.version,
            "target_path": release.target_path,
            "length": release.artifact_size,
            "hashes": {"sha256": release.artifact_sha256},
            "download_url": f"/api/device/v1/releases/{release.id}/artifact",
            "poll_seconds": 60,
        }


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("another products artifact", "E_VERIFY_UNKNOWN_TARGET"),
        ("a downgrade", "E_DOWNGRADE"),
        ("a tampered file", "E_VERIFY_HASH"),
        ("a target for other hardware", "E_WRONG_HARDWARE"),
        ("a version the signed metadata does not say", "E_WRONG_VERSION"),
    ],
)
def test_a_lying_server_installs_nothing(world, case, code):
    revision, current = "rev-a", "1.1.0"
    if case == "another products artifact":
        offer = _offer(world, "other", "5.0.0")
        offer["release_id"] = _offer(world, "gw", "2.0.0")["release_id"]
        artifact = world["bytes"][("other", "5.0.0")]
    elif case == "a downgrade":
        offer = _offer(world, "gw", "1.0.0")
        artifact = world["bytes"][("gw", "1.0.0")]
    elif case == "a tampered file":
        offer = _offer(world, "gw", "2.0.0")
        genuine = world["bytes"][("gw", "2.0.0")]
        artifact = b"\x00" * len(genuine)
    elif case == "a target for other hardware":
        revision = "rev-b"
        offer = _offer(world, "gw", "2.0.0", "rev-b")
        artifact = world["bytes"][("gw", "2.0.0")]
    else:
        offer = _offer(world, "gw", "2.0.0")
        offer["version"] = "9.0.0"
        artifact = world["bytes"][("gw", "2.0.0")]
    _lie(world, offer, artifact)
    agent, home = agent_for(world, revision=revision, version=current, name=case.replace(" ", "-"))
    with pytest.raises(AgentError) as error:
        agent.cycle()
    assert error.value.code == code
    assert installed(home) == []
    assert agent.current_version == current
    assert list((agent.config.state_dir / "downloads").glob("*.bin")) == []
    # The failure was reported with its code.
    assert any(status == "failed" and err == code for _, status, err in _log(world, revision))


def test_the_agent_cli(world):
    from upgrade_agent.cli import main

    _, home = agent_for(world, version="1.0.0", name="cli")
    config = str(home / "agent.toml")
    runner = CliRunner()
    out = runner.invoke(main, ["--config", config, "check"])
    assert "offered 1.1.0" in out.output, out.output
    assert runner.invoke(main, ["--config", config, "download"]).exit_code == 0
    assert "verified" in runner.invoke(main, ["--config", config, "verify"]).output
    assert "installed 1.1.0" in runner.invoke(main, ["--config", config, "install"]).output
    assert installed(home) == ["1.1.0"]
    # The next step of the path is offered now.
    assert "offered 2.0.0" in runner.invoke(main, ["--config", config, "check"]).output
    # Outside its organisation's maintenance window the server says to wait.
    until = "2027-01-03T17:00:00+00:00"  # only echoed: any instant will do
    wait = {"reason": "maintenance-window", "until": until}
    body = json.dumps({"poll_seconds": 1800, "wait": wait}).encode()
    world["proxy"].overrides[("POST", "/api/device/v1/update-check")] = lambda environ: (
        200,
        {"Content-Type": "application/json", "ETag": '"w"'},
        [body],
    )
    out = runner.invoke(main, ["--config", config, "check"]).output
    assert f"waiting: outside the maintenance window until {until}" in out, out


# --- a device's version, and updates that wait for the operator ----------------

WATCHDOG = {
    "name": "watchdog_timeout",
    "old_default": "30",
    "new_default": "60",
    "unit": "s",
    "operator_action": True,
    "action": {
        "zh-CN": "确认监控系统能容忍更长的超时。",
        "en": "Check that monitoring tolerates the longer timeout.",
    },
}


@pytest.fixture
def ops(scratch_url, tmp_path):
    """Product `ops`: 1.0.0 changes a parameter the operator must act on.
    Device OPS-1 is known to the server at 0.9.0; OPS-2's version is unknown."""
    with live_server(scratch_url, tmp_path / "instance") as live:
        add_product(live, "ops")
        artifact = tmp_path / "ops-1.0.0.bin"
        artifact.write_bytes(b"ops firmware 1.0.0\n" * 100)
        metadata = tmp_path / "ops-1.0.0.json"
        metadata.write_text(json.dumps({"parameters": [WATCHDOG]}))
        run_remote(
            live,
            "publish",
            "ops",
            "1.0.0",
            str(artifact),
            "--channel",
            "stable",
            "--metadata",
            str(metadata),
            "--no-progress",
        )
        with live.app.app_context():
            from upgrade_server.organisations import service as organisations

            cli = Principal.cli()
            organisations.create_organisation(db.session, cli, slug="ops-org", name="Ops")
            tokens = {}
            for serial, version in (("OPS-1", "0.9.0"), ("OPS-2", None)):
                data = {
                    "serial": serial,
                    "product": "ops",
                    "hardware_revision": "rev-a",
                    "organisation": "ops-org",
                }
                if version:
                    data["current_version"] = version
                tokens[serial] = provisioning.create_device(db.session, cli, data).secret
            db.session.commit()
        root = urllib.request.urlopen(f"{live.url}/tuf/ops/metadata/1.root.json").read()
        yield {"live": live, "tokens": tokens, "root": root, "tmp": tmp_path}


def ops_agent(ops, serial="OPS-1", initial_version=None, extra=""):
    home = ops["tmp"] / f"agent-{serial}-{initial_version}-{len(extra)}"
    config = write_config(
        home,
        ops["live"].url,
        ops["tokens"][serial],
        "rev-a",
        ops["root"],
        product="ops",
        initial_version=initial_version,
        extra=extra,
    )
    logged: list[str] = []
    return Agent(AgentConfig.load(config), log=logged.append), home, config, logged


def _server_side(ops, serial):
    """(the device's version as the server knows it, its install steps)."""
    from sqlalchemy import select

    from upgrade_server.devices.models import Device
    from upgrade_server.updates.models import InstallEvent

    with ops["live"].app.app_context():
        device = db.session.execute(select(Device).where(Device.serial == serial)).scalar_one()
        steps = db.session.execute(
            select(InstallEvent.version, InstallEvent.status)
            .where(InstallEvent.device_id == device.id)
            .order_by(InstallEvent.id)
        ).all()
        return device.current_version, [tuple(s) for s in steps]


def test_an_agent_without_a_version_takes_the_servers_and_never_reports_one_made_up(ops):
    agent, _, _, logged = ops_agent(ops)
    assert agent.current_version is None
    offer = agent.check()
    assert offer is not None and offer.version == "1.0.0"
    assert agent.current_version == "0.9.0"  # as the server knows it, now kept
    assert "installed version 0.9.0, as the server knows it" in logged
    assert _server_side(ops, "OPS-1") == ("0.9.0", [])


def test_when_neither_the_agent_nor_the_server_knows_the_version_nothing_is_reported(ops):
    agent, home, _, _ = ops_agent(ops, "OPS-2")
    with pytest.raises(AgentError) as error:
        agent.cycle()
    assert error.value.code == "E_VERSION_UNKNOWN"
    assert "initial_version" in str(error.value)
    assert agent.current_version is None
    assert installed(home) == []
    assert _server_side(ops, "OPS-2") == (None, [])


def test_an_update_that_needs_the_operators_action_waits_for_an_acknowledgement(ops):
    from upgrade_agent.cli import main

    agent, home, config, logged = ops_agent(ops)
    # Unattended, `run` installs nothing, says why and tells the server once.
    assert agent.cycle() is None
    assert agent.cycle() is None
    assert installed(home) == []
    assert any("1.0.0 waits for the operator" in line for line in logged)
    assert (
        "  watchdog_timeout: default 30 s -> 60 s; action: Check that monitoring"
        " tolerates the longer timeout." in logged
    )
    assert _server_side(ops, "OPS-1") == ("0.9.0", [("1.0.0", "waiting")])

    runner = CliRunner()
    checked = runner.invoke(main, ["--config", str(config), "check"])
    assert checked.exit_code == 0, checked.output
    assert "1.0.0 waits for the operator" in checked.output
    assert "watchdog_timeout: default 30 s -> 60 s" in checked.output
    assert "upgrade-agent acknowledge 1.0.0" in checked.output
    # The manual steps refuse to install it too, and report no failure.
    refused = runner.invoke(main, ["--config", str(config), "install"])
    assert refused.exit_code == 1
    assert "E_NOT_ACKNOWLEDGED" not in refused.output
    assert "waits for the operator" in refused.output
    # Only the version offered now can be acknowledged.
    wrong = runner.invoke(main, ["--config", str(config), "acknowledge", "2.0.0"])
    assert wrong.exit_code == 1
    assert "2.0.0 is not the update offered now (1.0.0)" in wrong.output

    done = runner.invoke(main, ["--config", str(config), "acknowledge", "1.0.0"])
    assert done.exit_code == 0, done.output
    assert "acknowledged 1.0.0" in done.output
    assert agent.cycle() is not None
    assert installed(home) == ["1.0.0"]
    version, steps = _server_side(ops, "OPS-1")
    assert version == "1.0.0"
    assert [s for _, s in steps] == [
        "waiting",
        "downloading",
        "downloaded",
        "verified",
        "installing",
        "installed",
    ]


def test_a_site_that_allows_it_installs_operator_action_updates_unattended(ops):
    agent, home, _, _ = ops_agent(ops, extra="auto_acknowledge = true\n")
    assert agent.cycle() is not None
    assert installed(home) == ["1.0.0"]


def test_operator_actions_read_in_the_configured_language(ops):
    from upgrade_agent.core import describe_actions

    agent, _, _, _ = ops_agent(ops, extra='language = "zh-CN"\n')
    offer = agent.check()
    assert describe_actions(offer, agent.config.language) == [
        "watchdog_timeout: default 30 s -> 60 s; action: 确认监控系统能容忍更长的超时。"
    ]


def test_an_alarm_a_proxy_answers_502_for_is_sent_again_and_counted_once(world):
    """Its node went down behind the proxy: the same alarm id goes again."""
    proxy = world["proxy"]
    agent, _ = agent_for(world)
    bounced = []

    def bad_gateway_once(environ):
        if not bounced:
            bounced.append(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
            return 502, {"Content-Type": "text/plain"}, [b"node down"]
        return proxy.forward(environ)

    proxy.overrides[("POST", "/api/device/v1/alarms")] = bad_gateway_once
    ticket = agent.alarm("E-TEMP", 2, "too hot")
    assert bounced and ticket is not None
    with world["live"].app.app_context():
        alarms = db.session.execute(select(Alarm).where(Alarm.code == "E-TEMP")).scalars().all()
        assert len(alarms) == 1
        assert alarms[0].alarm_id == json.loads(bounced[0])["alarm_id"]
