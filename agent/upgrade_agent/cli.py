"""`upgrade-agent`: the reference device agent's command line."""

from __future__ import annotations

import random
import time
from pathlib import Path

import click

from upgrade_agent.config import AgentConfig
from upgrade_agent.core import (
    Agent,
    AgentError,
    Offer,
    WaitingForOperatorError,
    describe_actions,
)


def _log(message: str) -> None:
    click.echo(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}", err=True)


@click.group(help="The reference device agent of upgrade_server.")
@click.option(
    "--config",
    "config_path",
    envvar="UPGRADE_AGENT_CONFIG",
    default="/etc/upgrade-agent/agent.toml",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
)
@click.pass_context
def main(ctx: click.Context, config_path: Path) -> None:
    ctx.obj = Agent(AgentConfig.load(config_path), log=_log)


pass_agent = click.make_pass_decorator(Agent)


def _offer_or_fail(agent: Agent) -> Offer:
    offer = agent.offer()
    if offer is None:
        raise click.ClickException("nothing offered: run `check` first")
    return offer


@main.command(help="Ask the server what to install now.")
@pass_agent
def check(agent: Agent) -> None:
    try:
        offer = agent.check()
    except AgentError as error:
        raise click.ClickException(str(error)) from error
    wait = agent.waiting()
    if wait:
        until = wait.get("until") or "its next opening"
        click.echo(f"waiting: outside the maintenance window until {until}")
    elif offer is None:
        click.echo(f"up to date ({agent.current_version})")
    else:
        click.echo(f"offered {offer.version} ({offer.length} bytes); now {agent.current_version}")
        _say_operator_actions(agent, offer)
    hint = agent.not_entitled()
    if hint:
        click.echo(
            f"{hint['version']} is not covered: upgrade coverage ended on"
            f" {hint['coverage_ends_on']}; a contract that covers it brings it"
        )


def _say_operator_actions(agent: Agent, offer: Offer) -> None:
    if not offer.operator_actions:
        return
    if agent.acknowledged(offer):
        click.echo(f"{offer.version} changes parameters the operator acts on (acknowledged):")
    else:
        click.echo(
            f"{offer.version} waits for the operator: its parameter changes need action first"
        )
    for line in describe_actions(offer, agent.config.language):
        click.echo(f"  {line}")
    if not agent.acknowledged(offer):
        click.echo(
            f"Once done, run `upgrade-agent acknowledge {offer.version}`; the next run installs it."
        )


@main.command(
    help="Acknowledge, as the operator, the parameter changes of the offered update"
    " VERSION (done, or will be): the next `run` or `install` installs it."
)
@click.argument("version")
@pass_agent
def acknowledge(agent: Agent, version: str) -> None:
    try:
        offer = agent.acknowledge(version)
    except AgentError as error:
        raise click.ClickException(str(error)) from error
    if not offer.operator_actions:
        click.echo(f"{version} needs no acknowledgement: its parameter changes need no action")
        return
    click.echo(f"acknowledged {version}:")
    for line in describe_actions(offer, agent.config.language):
        click.echo(f"  {line}")
    click.echo("the next run installs it")


@main.command(help="Upload a fault alarm (or, with --clear, its clearing).")
@click.option("--code", required=True)
@click.option("--level", type=click.IntRange(1, 4), required=True)
@click.option("--message", default="")
@click.option("--clear", is_flag=True)
@pass_agent
def alarm(agent: Agent, code: str, level: int, message: str, clear: bool) -> None:
    try:
        ticket = agent.alarm(code, level, message, clear=clear)
    except AgentError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"alarm {code} uploaded; ticket {ticket}")


@main.command(help="Download the offered artifact, resuming a partial one.")
@click.option("--deadline", type=float, default=3600.0, show_default=True, help="Seconds.")
@pass_agent
def download(agent: Agent, deadline: float) -> None:
    offer = _offer_or_fail(agent)
    try:
        path = agent.download(offer, deadline)
    except AgentError as error:
        agent.report("failed", offer, error=error)
        raise click.ClickException(str(error)) from error
    click.echo(str(path))


@main.command(help="Verify the downloaded artifact with the signed TUF metadata.")
@pass_agent
def verify(agent: Agent) -> None:
    offer = _offer_or_fail(agent)
    path = agent.artifact_path(offer)
    if not path.exists():
        raise click.ClickException("not downloaded yet")
    try:
        agent.verify(offer, path)
    except AgentError as error:
        agent.report("failed", offer, error=error)
        path.unlink(missing_ok=True)
        raise click.ClickException(f"{error.code}: {error}") from error
    click.echo(f"{offer.version} verified")


@main.command(help="Verify, then run the install command on the artifact.")
@pass_agent
def install(agent: Agent) -> None:
    offer = _offer_or_fail(agent)
    path = agent.artifact_path(offer)
    if not agent.acknowledged(offer):
        _say_operator_actions(agent, offer)
        raise click.ClickException(str(WaitingForOperatorError(offer)))
    try:
        agent.verify(offer, path)
        agent.install(offer, path)
    except AgentError as error:
        agent.report("failed", offer, error=error)
        raise click.ClickException(f"{error.code}: {error}") from error
    click.echo(f"installed {offer.version}")


@main.command(help="Poll, download, verify and install, forever (or until idle).")
@click.option("--until-idle", is_flag=True, help="Stop when the server offers nothing.")
@click.option("--max-cycles", type=int, default=None)
@click.option("--deadline", type=float, default=3600.0, show_default=True)
@pass_agent
def run(agent: Agent, until_idle: bool, max_cycles: int | None, deadline: float) -> None:
    cycles = 0
    failures = 0
    poll = 1800.0
    while max_cycles is None or cycles < max_cycles:
        cycles += 1
        try:
            offer = agent.cycle(deadline)
            failures = 0
        except AgentError:
            failures += 1
            offer = None
            if until_idle and failures >= 3:
                raise click.ClickException("giving up after 3 failed cycles") from None
        if offer is not None:
            poll = offer.poll_seconds
            continue  # something was installed: ask again at once
        if until_idle and failures == 0:
            return
        # Back off on errors; spread polls so a fleet does not call in lockstep.
        wait = min(poll, 10.0 * 2**failures) if failures else poll
        time.sleep(wait * random.uniform(0.8, 1.2))  # noqa: S311


if __name__ == "__main__":
    main()
