"""Fleet simulation: provision N devices on a server and run an agent for each.

For demos and load tests. Devices are provisioned in one CSV import (all or
nothing), each gets its own state folder and the real agent code
(upgrade_agent), and a thread pool runs their poll cycles with jitter.

    python scripts/fleet_sim.py --server http://127.0.0.1:8000 --token usk_... \\
        --product edge-gw --org demo-customer --devices 50 --cycles 3

The token needs the support or admin role. The product's root.json is taken
from --root, or fetched once from the server (trust on first use: fine for a
demo, not for a real device).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from upgrade_agent.config import AgentConfig  # noqa: E402
from upgrade_agent.core import Agent, AgentError  # noqa: E402


def provision(
    server: str, token: str, product: str, org: str, revision: str, count: int, version: str
) -> list[tuple[str, str]]:
    run = uuid.uuid4().hex[:6]
    rows = [
        f"SIM-{run}-{i:05d},{product},{revision},{org},fleet simulation,,,,{version}"
        for i in range(count)
    ]
    body = (
        "serial,product,hardware_revision,organisation,site,delivered_on,accepted_on,channel,"
        "current_version\n" + "\n".join(rows) + "\n"
    )
    request = urllib.request.Request(
        f"{server}/api/v1/devices/import",
        data=body.encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
    )
    with urllib.request.urlopen(request) as response:
        answer = json.load(response)
    return [(d["serial"], d["token"]) for d in answer["devices"]]


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--token", required=True, help="API token (support or admin)")
    parser.add_argument("--product", required=True)
    parser.add_argument("--org", required=True, help="organisation slug")
    parser.add_argument("--revision", default="rev-a")
    parser.add_argument("--channel", default="stable")
    parser.add_argument("--initial-version", default="0.9.0")
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--jitter", type=float, default=0.5, help="max seconds between cycles")
    parser.add_argument("--root", type=Path, help="the product's trusted root.json")
    parser.add_argument("--state", type=Path, help="folder for the devices' state")
    args = parser.parse_args(argv)
    server = args.server.rstrip("/")
    state = args.state or Path(tempfile.mkdtemp(prefix="fleet-"))
    state.mkdir(parents=True, exist_ok=True)
    root = state / "root.json"
    if args.root:
        root.write_bytes(args.root.read_bytes())
    else:
        url = f"{server}/tuf/{args.product}/metadata/1.root.json"
        root.write_bytes(urllib.request.urlopen(url).read())
    devices = provision(
        server,
        args.token,
        args.product,
        args.org,
        args.revision,
        args.devices,
        args.initial_version,
    )
    print(f"provisioned {len(devices)} devices; state in {state}")
    outcomes: collections.Counter[str] = collections.Counter()

    def run_device(serial: str, token: str) -> str:
        config = AgentConfig(
            server=server,
            token=token,
            product=args.product,
            hardware_revision=args.revision,
            channel=args.channel,
            root=root,
            state_dir=state / serial,
            install_command=[sys.executable, "-c", "pass"],
            initial_version=args.initial_version,
        )
        agent = Agent(config, log=lambda message: None)
        for _ in range(args.cycles):
            try:
                while agent.cycle() is not None:
                    pass  # keep walking the upgrade path
            except AgentError as error:
                return f"failed {error.code}"
            time.sleep(random.uniform(0, args.jitter))
        return f"at {agent.current_version}"

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        for result in pool.map(lambda d: run_device(*d), devices):
            outcomes[result] += 1
    seconds = time.perf_counter() - started
    for outcome, count in sorted(outcomes.items()):
        print(f"{count:>6} devices {outcome}")
    print(f"{len(devices)} devices x {args.cycles} cycles in {seconds:.1f}s")
    return {"outcomes": dict(outcomes), "seconds": seconds}


if __name__ == "__main__":
    main()
