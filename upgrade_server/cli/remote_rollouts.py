"""`upgrade-server remote rollout …`: start, watch, pause, resume and abort
staged rollouts on a running server, over the management API. The group is
added to `remote` where the command line is put together (cli/main.py,
cli/commands.py).

`status --watch` redraws a table of the waves in place with rich (already
how schemathesis draws; a table of several live bars with figures beside
them is what rich's Live does well, where tqdm or click.progressbar draw one
bar per line and no table).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import click

from upgrade_server.cli.remote import Server, _product_id, _release_id, pass_server

if TYPE_CHECKING:
    from rich.console import Group

# States in which a rollout changes no more by itself.
SETTLED = ("completed", "aborted", "halted")


def _percent(text: str) -> int:
    """A share in percent ("1", "0.5", "100") as basis points."""
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not a percentage") from exc
    if not 0 <= value <= 100:
        raise click.BadParameter(f"{text!r} is not between 0 and 100")
    return round(value * 100)


def _gate(pairs: tuple[str, ...]) -> dict[str, Any]:
    gates: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--gate")
        try:
            gates[name.strip()] = json.loads(value)
        except ValueError as exc:
            raise click.BadParameter(f"{value!r} is not a number or true/false") from exc
    return gates


@click.group(
    "rollout",
    help="Staged rollouts: start, status (--watch), pause, resume, abort, advance;"
    " exclude-hardware, device (pin or exclude).",
)
def rollout_group() -> None:
    pass


@rollout_group.command("start", help="Roll VERSION of PRODUCT out to CHANNEL wave by wave.")
@click.argument("product")
@click.argument("version")
@click.option("--channel", default="stable", show_default=True)
@click.option(
    "--waves",
    default="1,10,50,100",
    show_default=True,
    help="Cumulative shares of the eligible fleet in percent, the last 100.",
)
@click.option(
    "--early-organisation",
    "early",
    multiple=True,
    type=int,
    help="Organisation id in the first wave whatever its devices' buckets (repeat).",
)
@click.option(
    "--pin",
    "pins",
    multiple=True,
    type=int,
    help="Device id in the first wave from the start, e.g. a lab's (repeat).",
)
@click.option("--exclude-hardware", multiple=True, help="Hardware revision left out (repeat).")
@click.option("--gate", "gates", multiple=True, help="A gate knob NAME=VALUE (repeat).")
@click.option("--manual", is_flag=True, help="A person approves each wave (`advance`).")
@click.option("--emergency-reason", help="An emergency security fix: ignores windows.")
@pass_server
def start(
    server: Server,
    product: str,
    version: str,
    channel: str,
    waves: str,
    early: tuple[int, ...],
    pins: tuple[int, ...],
    exclude_hardware: tuple[str, ...],
    gates: tuple[str, ...],
    manual: bool,
    emergency_reason: str | None,
) -> None:
    shares = [_percent(s) for s in waves.split(",") if s.strip()]
    plan: list[dict[str, Any]] = [{"share": s} for s in shares]
    if early and plan:
        plan[0]["organisations"] = list(early)
    if pins and plan:
        # Named in the first wave when it starts: no pass of the gates comes first.
        plan[0]["devices"] = list(pins)
    knobs = _gate(gates)
    if manual:
        knobs["auto_advance"] = False
    body: dict[str, Any] = {
        "channel": channel,
        "waves": plan,
        "gates": knobs,
        "excluded_hardware": list(exclude_hardware),
    }
    if emergency_reason:
        body.update(emergency=True, override_reason=emergency_reason)
    release_id = _release_id(server, _product_id(server, product), version)
    rollout = server.call("POST", f"/api/v1/releases/{release_id}/rollouts", body)
    reached = ", ".join(f"{w['share'] / 100:g} %" for w in rollout["waves"])
    click.echo(
        f"rollout {rollout['id']}: {product} {version} to {channel}, waves {reached}: "
        f"{rollout['state']}"
    )


def render(rollout: dict[str, Any]) -> Group:
    """The rollout's state and a row per wave, with a bar of installed devices."""
    # Imported when drawn: every other `upgrade-server` command starts without rich.
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    state = rollout["state"]
    head = Text.assemble(
        (f"Rollout {rollout['id']} ", "bold"),
        f"{rollout['product']} {rollout['version']} → {rollout['channel']}: ",
        (state, "red" if state in ("halted", "aborted") else "green"),
        f", wave {rollout['current_wave'] + 1} of {len(rollout['waves'])}",
    )
    table = Table(expand=False)
    for column in ("wave", "share", "eligible", "offered", "downloading", "installed"):
        table.add_column(column, justify="right")
    table.add_column("progress", min_width=20)
    for column in ("failed", "rolled back", "alarms"):
        table.add_column(column, justify="right")
    for row in rollout["progress"]["waves"]:
        marker = "▶ " if row["wave"] == rollout["current_wave"] else ""
        table.add_row(
            f"{marker}{row['wave'] + 1}",
            f"{row['share_percent']:g} %",
            str(row["eligible"]),
            str(row["offered"]),
            str(row["downloading"]),
            str(row["installed"]),
            ProgressBar(total=max(row["eligible"], 1), completed=row["installed"], width=20),
            str(row["failed"]),
            str(row["rolled_back"]),
            str(row["alarms"]),
        )
    parts: list[Any] = [head, table]
    if rollout.get("halted_reason"):
        parts.append(Text(f"halted: {rollout['halted_reason']}", style="red"))
    for decision in rollout.get("decisions", [])[:3]:
        reasons = " ".join(decision["reasons"])
        parts.append(
            Text(f"{decision['at']} {decision['action']} ({decision['actor']}): {reasons}")
        )
    return Group(*parts)


@rollout_group.command("status", help="Show a rollout's progress per wave.")
@click.argument("rollout_id", type=int)
@click.option("--watch", is_flag=True, help="Redraw live until the rollout settles (Ctrl-C ends).")
@click.option(
    "--interval", type=float, default=5.0, show_default=True, help="Seconds between redraws."
)
@click.option("--json", "as_json", is_flag=True, help="Print the rollout as JSON.")
@pass_server
def status(server: Server, rollout_id: int, watch: bool, interval: float, as_json: bool) -> None:
    path = f"/api/v1/rollouts/{rollout_id}"
    rollout = server.call("GET", path)
    if as_json:
        click.echo(json.dumps(rollout, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.live import Live

    console = Console()
    if not watch:
        console.print(render(rollout))
        return
    with Live(render(rollout), console=console, auto_refresh=False) as live:
        try:
            while rollout["state"] not in SETTLED:
                time.sleep(max(interval, 0.5))  # the poll's period, not a wait on a condition
                rollout = server.call("GET", path)
                live.update(render(rollout), refresh=True)
        except KeyboardInterrupt:
            pass


def _act(action: str, help_text: str) -> None:
    @rollout_group.command(action, help=help_text)
    @click.argument("rollout_id", type=int)
    @click.option("--reason", default="", help="Why (kept in the audit log).")
    @pass_server
    def command(server: Server, rollout_id: int, reason: str) -> None:
        path = f"/api/v1/rollouts/{rollout_id}/{action}"
        rollout = server.call("POST", path, {"reason": reason})
        click.echo(
            f"rollout {rollout['id']}: {rollout['state']}, wave {rollout['current_wave'] + 1}"
        )


_act("pause", "Hold a rollout at its wave.")
_act("resume", "Run a paused or halted rollout again.")
_act("abort", "End a rollout and withdraw its offer.")
_act("advance", "Approve the next wave now.")


@rollout_group.command("exclude-hardware", help="Leave a hardware revision out of a rollout.")
@click.argument("rollout_id", type=int)
@click.argument("code")
@click.option("--undo", is_flag=True, help="Take the revision back in.")
@pass_server
def exclude_hardware(server: Server, rollout_id: int, code: str, undo: bool) -> None:
    path = f"/api/v1/rollouts/{rollout_id}/excluded-hardware"
    if undo:
        rollout = server.call("DELETE", f"{path}/{quote(code, safe='')}")
    else:
        rollout = server.call("POST", path, {"code": code})
    excluded = ", ".join(rollout["excluded_hardware"]) or "none"
    click.echo(f"rollout {rollout['id']}: hardware left out: {excluded}")


@rollout_group.command("device", help="Pin a device into a rollout, exclude it, or neither.")
@click.argument("rollout_id", type=int)
@click.argument("device_id", type=int)
@click.option(
    "--as",
    "kind",
    type=click.Choice(["pin", "exclude", "none"]),
    required=True,
    help="pin: offered from the first wave; exclude: never offered; none: by its bucket.",
)
@pass_server
def device(server: Server, rollout_id: int, device_id: int, kind: str) -> None:
    path = f"/api/v1/rollouts/{rollout_id}/devices/{device_id}"
    if kind == "none":
        rollout = server.call("DELETE", path)
    else:
        rollout = server.call("POST", f"{path}?kind={kind}")
    click.echo(
        f"rollout {rollout['id']}: pinned {rollout['pinned'] or 'none'},"
        f" excluded {rollout['excluded_devices'] or 'none'}"
    )
