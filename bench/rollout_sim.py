"""A staged rollout over a simulated fleet: no server, a simulated clock.

100,000 devices each check for updates every 30 minutes at their own random
phase. A rollout of 1 % -> 10 % -> 50 % -> 100 % with the default gates
(upgrade_server.rollouts.plan.Gates) is evaluated every 5 simulated minutes,
exactly as the server's background job would call `evaluate`. A device that
checks while its wave is open is offered the release, installs it in 5 to 25
minutes, and reports `installed` or `failed`. Devices raise fault alarms as a
Poisson process: BASE_ALARM_RATE per device-hour on the previous release (the
control group), that times the scenario's factor once updated. A halt stops
offering at once (devices already installing still report).

    python bench/rollout_sim.py [--devices 100000] [--seed 16] [--repeat 1]

Acceptance (issue 16): with 5 % of devices failing the install the rollout
halts having exposed at most 1.5 % of the fleet; with updated devices raising
alarms at 3x the control rate it halts too; a good release completes. Exits 1
if a run misses its expectation. `--repeat N` runs each scenario with N seeds
and reports the worst.
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import math
import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from upgrade_server.rollouts.plan import (  # noqa: E402
    BUCKETS,
    Decision,
    Gates,
    Target,
    Wave,
    WaveStats,
    evaluate,
    wave_of,
)

POLL_SECONDS = 30 * 60
TICK_SECONDS = 5 * 60
INSTALL_MINUTES = (5.0, 25.0)
BASE_ALARM_RATE = 0.005  # alarms per device-hour: about one a device every eight days
MAX_EXPOSURE = 0.015  # the acceptance: a bad release reaches at most 1.5 % of the fleet
GIVE_UP_SECONDS = 14 * 24 * 3600
WAVES = (Wave(100), Wave(1000), Wave(5000), Wave(BUCKETS))
EPOCH = datetime(2030, 1, 6, tzinfo=UTC)  # any instant: the simulated clock's zero


@dataclass(frozen=True)
class Scenario:
    name: str
    fail_share: float  # of all devices, failing the install
    alarm_factor: float  # alarm rate of updated devices / control rate
    expect: str  # "halt" or "complete"


SCENARIOS = (
    Scenario("5 % of devices fail the install", 0.05, 1.0, "halt"),
    Scenario("installs succeed, updated devices raise alarms at 3x", 0.0, 3.0, "halt"),
    Scenario("a good release (0.5 % flaky installs, alarms as before)", 0.005, 1.0, "complete"),
)


@dataclass
class Result:
    scenario: Scenario
    outcome: str  # halt, complete, or unfinished
    seconds: int
    offered: int
    fleet: int
    waves_started: int
    decision: Decision | None

    @property
    def exposure(self) -> float:
        return self.offered / self.fleet

    @property
    def passed(self) -> bool:
        if self.outcome != self.scenario.expect:
            return False
        return self.outcome != "halt" or self.exposure <= MAX_EXPOSURE


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method, in slices so exp(-mean) never underflows)."""
    count = 0
    while mean > 0:
        part = min(mean, 30.0)
        mean -= part
        limit, product = math.exp(-part), rng.random()
        while product > limit:
            count += 1
            product *= rng.random()
    return count


def hours(seconds: float) -> str:
    whole = int(seconds // 60)
    return f"{whole // 60} h {whole % 60:02d} min"


@dataclass
class WaveCounters:
    """What the server would count for the devices that joined in one wave."""

    eligible: int
    offered: int = 0
    downloading: int = 0
    installed: int = 0
    failed: int = 0
    installed_at_sum: float = 0.0  # seconds, for the exposure since install
    alarms: int = 0
    exposure_seen: float = 0.0  # device-hours already drawn alarms for

    def exposure(self, now: float) -> float:
        return max(0.0, (self.installed * now - self.installed_at_sum) / 3600)


def simulate(
    scenario: Scenario, fleet: int, seed: int, gates: Gates, history: list[str] | None = None
) -> Result:
    """One rollout; the waves' openings and the final decision go to `history`."""
    history = [] if history is None else history
    rng = random.Random(f"{seed}:{scenario.name}")
    salt = f"{rng.getrandbits(64):016x}"
    phase = [rng.uniform(0, POLL_SECONDS) for _ in range(fleet + 1)]
    failing = set(rng.sample(range(1, fleet + 1), round(fleet * scenario.fail_share)))
    members: list[list[int]] = [[] for _ in WAVES]
    for device in range(1, fleet + 1):
        index = wave_of(WAVES, salt, Target(device, organisation_id=1, hardware="rev-a"))
        assert index is not None  # the last wave is the whole fleet
        members[index].append(device)

    now = 0.0
    wave = -1
    started = 0.0
    counters = WaveCounters(eligible=0)
    offers: list[tuple[float, int]] = []  # (time of the device's next check, device)
    next_offer = 0
    outcomes: list[tuple[float, int, int]] = []  # heap: (report time, wave, device)
    per_wave: list[WaveCounters] = []
    offered_total = 0
    control_alarms, control_exposure = 0, 0.0

    def open_wave() -> None:
        nonlocal wave, started, counters, offers, next_offer, control_alarms, control_exposure
        wave += 1
        started = now
        counters = WaveCounters(eligible=len(members[wave]))
        per_wave.append(counters)
        offers = sorted(
            (phase[d] + math.ceil(max(0.0, now - phase[d]) / POLL_SECONDS) * POLL_SECONDS, d)
            for d in members[wave]
        )
        next_offer = 0
        control_alarms, control_exposure = 0, 0.0
        history.append(f"{hours(now):>12}  wave {wave + 1} opens: {WAVES[wave].share / 100:g} %")

    open_wave()
    while now < GIVE_UP_SECONDS:
        now += TICK_SECONDS
        # Devices whose check fell in this tick are offered the release.
        end = bisect.bisect_right(offers, (now, fleet + 1), lo=next_offer)
        for offered_at, device in offers[next_offer:end]:
            counters.offered += 1
            counters.downloading += 1
            report_at = offered_at + rng.uniform(*INSTALL_MINUTES) * 60
            heapq.heappush(outcomes, (report_at, wave, device))
        offered_total += end - next_offer
        next_offer = end
        # Installs that finished in this tick report.
        while outcomes and outcomes[0][0] <= now:
            report_at, of_wave, device = heapq.heappop(outcomes)
            target = per_wave[of_wave]
            target.downloading -= 1
            if device in failing:
                target.failed += 1
            else:
                target.installed += 1
                target.installed_at_sum += report_at
        # Alarms: updated devices of this wave, and devices never offered (the control).
        exposure = counters.exposure(now)
        rate = BASE_ALARM_RATE * scenario.alarm_factor
        counters.alarms += poisson(rng, rate * (exposure - counters.exposure_seen))
        counters.exposure_seen = exposure
        control_hours = (fleet - offered_total) * TICK_SECONDS / 3600
        control_exposure += control_hours
        control_alarms += poisson(rng, BASE_ALARM_RATE * control_hours)

        stats = WaveStats(
            eligible=counters.eligible,
            offered=counters.offered,
            downloading=counters.downloading,
            installed=counters.installed,
            failed=counters.failed,
            rolled_back=0,
            alarms_treated=counters.alarms,
            exposure_treated=exposure,
            alarms_control=control_alarms,
            exposure_control=control_exposure,
        )
        last = wave == len(WAVES) - 1
        at = EPOCH + timedelta(seconds=now)
        decision = evaluate(gates, stats, EPOCH + timedelta(seconds=started), at, last)
        if decision.action == "advance":
            history.append(f"{hours(now):>12}  wave {wave + 1} advances: {decision.reasons[0]}")
            open_wave()
        elif decision.action in ("halt", "complete"):
            history.append(f"{hours(now):>12}  {decision.action}: {' '.join(decision.reasons)}")
            return Result(
                scenario,
                decision.action,
                int(now),
                offered_total,
                fleet,
                wave + 1,
                decision,
            )
    return Result(scenario, "unfinished", int(now), offered_total, fleet, wave + 1, None)


def report(result: Result, history: list[str]) -> None:
    verdict = "PASS" if result.passed else "FAIL"
    print(f"[{verdict}] {result.scenario.name}: expected {result.scenario.expect}")
    for line in history:
        print(f"    {line}")
    print(
        f"    => {result.outcome} after {hours(result.seconds)} in wave {result.waves_started}; "
        f"offered to {result.offered:,} of {result.fleet:,} devices "
        f"(exposure {result.exposure * 100:.2f} %, limit for a bad release "
        f"{MAX_EXPOSURE * 100:.1f} %)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=1, help="seeds per scenario")
    args = parser.parse_args()
    gates = Gates()
    print(f"fleet {args.devices:,} devices, checks every 30 min, evaluation every 5 min")
    print(f"gates: {gates}")
    print(f"control alarm rate {BASE_ALARM_RATE} per device-hour\n")
    began = time.perf_counter()
    failed = False
    for scenario in SCENARIOS:
        history: list[str] = []
        results = [simulate(scenario, args.devices, args.seed, gates, history)]
        results += [
            simulate(scenario, args.devices, args.seed + n, gates) for n in range(1, args.repeat)
        ]
        report(results[0], history)
        if args.repeat > 1:
            done = [r for r in results if r.outcome == scenario.expect]
            print(
                f"    over {args.repeat} seeds: {len(done)} {scenario.expect}, "
                f"{sum(r.passed for r in results)} pass; exposure max "
                f"{max(r.exposure for r in results) * 100:.2f} %; time "
                f"{hours(min(r.seconds for r in results))} .. "
                f"{hours(max(r.seconds for r in results))}"
            )
        failed |= not all(r.passed for r in results)
        print()
    print(f"simulated in {time.perf_counter() - began:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
