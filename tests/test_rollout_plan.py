"""The rollout plan: buckets, waves, pins and exclusions, gates, halts (pure functions)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import pytest

from tests.clock import NOW
from upgrade_server.rollouts.bounds import rate_ratio_interval, wilson_interval
from upgrade_server.rollouts.plan import (
    BUCKETS,
    Gates,
    Target,
    Wave,
    WaveStats,
    bucket,
    evaluate,
    in_wave,
    wave_of,
    wave_problems,
)

FLEET = 100_000
PLAN = (Wave(100), Wave(1000), Wave(5000), Wave(BUCKETS))
NOTHING: frozenset = frozenset()


def target(device_id: int, organisation_id: int = 1, hardware: str = "rev-a") -> Target:
    return Target(device_id=device_id, organisation_id=organisation_id, hardware=hardware)


def member(waves, index, device, salt="salt", pinned=NOTHING, devices=NOTHING, hardware=NOTHING):
    return in_wave(waves, index, salt, device, pinned, devices, hardware)


# --- buckets -----------------------------------------------------------------


def test_a_bucket_is_the_same_in_every_process_and_release():
    # Pinned values: a change of hash would move devices in and out of running rollouts.
    assert [bucket("s", 1), bucket("s", 2), bucket("rollout-7", 1)] == [
        bucket("s", 1),
        bucket("s", 2),
        bucket("rollout-7", 1),
    ]
    assert bucket("s", 1) == 9035
    assert all(0 <= bucket("x", device) < BUCKETS for device in range(10_000))


def test_each_rollout_salt_picks_other_devices_first():
    first = {d for d in range(10_000) if bucket("one", d) < 100}
    second = {d for d in range(10_000) if bucket("two", d) < 100}
    assert first and second
    assert len(first & second) < len(first) / 2


@pytest.mark.parametrize("salt", ["a1b2c3", "rollout-42", "7f3e9d10"])
@pytest.mark.parametrize("share", [100, 1000, 5000])  # 1 %, 10 %, 50 %
def test_shares_are_uniform_over_100000_devices(salt, share):
    counted = sum(1 for device in range(1, FLEET + 1) if bucket(salt, device) < share)
    expected = FLEET * share / BUCKETS
    p = share / BUCKETS
    assert abs(counted - expected) <= FLEET * 0.01  # the issue's ±1 % of the fleet
    assert abs(counted - expected) <= 4 * math.sqrt(FLEET * p * (1 - p))  # and binomial noise


def test_membership_is_monotone_across_waves():
    for device in range(1, 20_001):
        inside = [member(PLAN, index, target(device)) for index in range(len(PLAN))]
        assert inside == sorted(inside), f"device {device} left a later wave: {inside}"
    assert all(member(PLAN, len(PLAN) - 1, target(d)) for d in range(1, 1001))


def test_wave_of_names_the_first_wave_a_device_is_in():
    for device in range(1, 2001):
        first = wave_of(PLAN, "salt", target(device))
        assert first is not None
        assert member(PLAN, first, target(device))
        assert first == 0 or not member(PLAN, first - 1, target(device))


# --- named sets, pins, exclusions ---------------------------------------------

# A device far outside the first share, in a plan whose first wave is named sets only.
OUTSIDER = next(d for d in range(1, 1000) if bucket("salt", d) >= 9000)
NAMED = (
    Wave(
        0,
        organisations=frozenset({5}),
        devices=frozenset({OUTSIDER + 1}),
        hardware=frozenset({"rev-b"}),
    ),
    Wave(1000),
    Wave(BUCKETS),
)


@pytest.mark.parametrize(
    ("why", "device", "waves_in"),
    [
        ("an early-adopter organisation", target(OUTSIDER, organisation_id=5), [0, 1, 2]),
        ("an explicit device", target(OUTSIDER + 1), [0, 1, 2]),
        ("a hardware revision", target(OUTSIDER, hardware="rev-b"), [0, 1, 2]),
        ("no set and a high bucket", target(OUTSIDER), [2]),
    ],
)
def test_named_sets_are_in_their_wave_whatever_their_bucket(why, device, waves_in):
    # The first wave has a share of 0: only its named sets are in it.
    assert [i for i in range(3) if member(NAMED, i, device)] == waves_in, why


@pytest.mark.parametrize(
    ("why", "pinned", "devices", "hardware", "inside"),
    [
        ("pinned: in the first wave", {OUTSIDER}, set(), set(), True),
        ("excluded device", set(), {OUTSIDER}, set(), False),
        ("excluded hardware", set(), set(), {"rev-a"}, False),
        ("exclusion beats a pin", {OUTSIDER}, {OUTSIDER}, set(), False),
        ("excluded hardware beats a pin", {OUTSIDER}, set(), {"rev-a"}, False),
        ("nothing: outside", set(), set(), set(), False),
    ],
)
def test_pins_and_exclusions(why, pinned, devices, hardware, inside):
    result = member(
        PLAN,
        0,
        target(OUTSIDER),
        pinned=frozenset(pinned),
        devices=frozenset(devices),
        hardware=frozenset(hardware),
    )
    assert result is inside, why


def test_an_excluded_device_is_out_of_the_last_wave_too():
    assert not member(PLAN, 3, target(1), devices=frozenset({1}))
    assert not member(PLAN, 3, target(1, hardware="bad"), hardware=frozenset({"bad"}))
    assert member(PLAN, 3, target(1))


# --- waves ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("waves", "problem"),
    [
        ((), "at least one wave"),
        ((Wave(1000), Wave(100), Wave(BUCKETS)), "Wave 2 has a share of 100"),
        ((Wave(100), Wave(5000)), "must cover the whole fleet"),
        ((Wave(100), Wave(1000), Wave(BUCKETS)), None),
        ((Wave(BUCKETS),), None),
        ((Wave(0, organisations=frozenset({1})), Wave(BUCKETS)), None),
    ],
)
def test_wave_plans_are_checked(waves, problem):
    problems = wave_problems(waves)
    if problem is None:
        assert problems == ()
    else:
        assert any(problem in p for p in problems), problems


@pytest.mark.parametrize("share", [-1, BUCKETS + 1])
def test_a_share_outside_the_fleet_is_refused(share):
    with pytest.raises(ValueError, match="basis points"):
        Wave(share)


def test_waves_and_gates_survive_json():
    wave = Wave(
        100, organisations=frozenset({3}), devices=frozenset({9, 4}), hardware=frozenset({"r1"})
    )
    assert Wave.from_json(wave.to_json()) == wave
    gates = Gates(min_soak_seconds=60, auto_advance=False)
    assert Gates.from_json(gates.to_json()) == gates
    assert Gates.from_json({}) == Gates()
    with pytest.raises(ValueError, match="unknown gate settings: soak"):
        Gates.from_json({"soak": 5})
    with pytest.raises(ValueError, match="between 0 and 1"):
        Gates.from_json({"min_success_rate": 95})


# --- stats ---------------------------------------------------------------------


def test_wave_stats_rates():
    stats = WaveStats(installed=90, failed=6, rolled_back=4)
    assert (stats.reported, stats.failures) == (100, 10)
    assert stats.success_rate == pytest.approx(0.9)
    assert stats.failure_rate == pytest.approx(0.1)
    assert WaveStats().success_rate is None and WaveStats().failure_rate is None
    ratio = WaveStats(
        alarms_treated=30, exposure_treated=1000, alarms_control=100, exposure_control=10_000
    ).alarm_ratio
    assert ratio == pytest.approx(3.0)


@pytest.mark.parametrize(
    "stats",
    [
        WaveStats(alarms_treated=3, exposure_treated=0, alarms_control=9, exposure_control=99),
        WaveStats(alarms_treated=3, exposure_treated=10, alarms_control=9, exposure_control=0),
        WaveStats(alarms_treated=3, exposure_treated=10, alarms_control=0, exposure_control=99),
    ],
)
def test_alarm_ratio_is_none_without_something_to_compare(stats):
    assert stats.alarm_ratio is None


# --- gates and decisions -----------------------------------------------------

# A healthy first wave of 1,000 devices two hours in: 0.5 % failed, alarms at the control rate.
HEALTHY = WaveStats(
    eligible=1000,
    offered=1000,
    downloading=0,
    installed=995,
    failed=5,
    rolled_back=0,
    alarms_treated=15,
    exposure_treated=3000.0,
    alarms_control=1000,
    exposure_control=200_000.0,
)
TWO_HOURS = timedelta(hours=2)


def decide(stats=HEALTHY, soaked=TWO_HOURS, last_wave=False, **gates):
    return evaluate(Gates(**gates), stats, NOW - soaked, NOW, last_wave)


@pytest.mark.parametrize(
    ("case", "stats", "soaked", "gates", "action", "says"),
    [
        ("all gates hold", HEALTHY, TWO_HOURS, {}, "advance", "Gates hold: 995 of 1000"),
        ("soak not over", HEALTHY, timedelta(minutes=30), {}, "wait", "soaked 1800 s of the 3600"),
        (
            "too few reports",
            replace(HEALTHY, installed=15, failed=0, downloading=400),
            TWO_HOURS,
            {},
            "wait",
            "15 of the 20 required",
        ),
        (
            "success rate under the gate, devices still reporting",
            replace(HEALTHY, installed=940, failed=60, downloading=5, offered=1005),
            TWO_HOURS,
            {"stop_failure_rate": 0.2},
            "wait",
            "not clearly at or above 95.0 %",
        ),
        (
            "success rate just over 95 % but not clearly",
            replace(HEALTHY, installed=953, failed=47, downloading=10, offered=1010),
            TWO_HOURS,
            {},
            "wait",
            "lower bound",
        ),
        (
            "alarm exposure too short",
            replace(HEALTHY, exposure_treated=1000.0, alarms_treated=5),
            TWO_HOURS,
            {},
            "wait",
            "device-days needed to judge alarms",
        ),
        (
            "alarm ratio over the gate",
            replace(HEALTHY, alarms_treated=38),
            TWO_HOURS,
            {},
            "wait",
            "The alarm ratio is 2.53",
        ),
        ("gates hold on the last wave", HEALTHY, TWO_HOURS, {}, "complete", "Gates hold"),
        (
            "gates hold, a person approves",
            HEALTHY,
            TWO_HOURS,
            {"auto_advance": False},
            "wait-for-approval",
            "A person approves",
        ),
        (
            "a wave smaller than min_reported, all installed",
            WaveStats(
                eligible=5,
                offered=5,
                installed=5,
                alarms_treated=0,
                exposure_treated=2500.0,
                alarms_control=500,
                exposure_control=100_000.0,
            ),
            TWO_HOURS,
            {},
            "advance",
            "5 of 5 installed",
        ),
        (
            "no soak, no reports and no alarms needed when gates are off",
            WaveStats(
                eligible=3,
                offered=3,
                installed=3,
                exposure_treated=10.0,
                alarms_control=5,
                exposure_control=1000.0,
            ),
            timedelta(0),
            {"min_soak_seconds": 0, "min_device_days_to_judge_alarms": 0, "max_alarm_ratio": 1e9},
            "advance",
            "3 of 3 installed",
        ),
    ],
)
def test_advance_gates(case, stats, soaked, gates, action, says):
    decision = decide(stats, soaked, last_wave=case.endswith("last wave"), **gates)
    assert decision.action == action, (case, decision.reasons)
    assert any(says in reason for reason in decision.reasons), (case, decision.reasons)


@pytest.mark.parametrize(
    ("case", "stats", "action", "says"),
    [
        (
            "failures at the stop rate",
            replace(HEALTHY, installed=45, failed=3, rolled_back=2, offered=900, downloading=50),
            "halt",
            "5 of 50 devices that reported failed or rolled back (10.0 %)",
        ),
        (
            "rolled back count as failures",
            replace(HEALTHY, installed=90, failed=0, rolled_back=10, offered=900),
            "halt",
            "10 of 100",
        ),
        (
            "fewer reports than min_reported_to_halt",
            replace(HEALTHY, installed=6, failed=3, offered=900, downloading=400),
            "wait",
            "9 of the 20 required",
        ),
        (
            "two unlucky failures early do not halt",
            replace(HEALTHY, installed=12, failed=2, offered=900, downloading=400),
            "wait",
            "14 of the 20 required",
        ),
        (
            "failures just under the stop rate do not halt while devices report",
            replace(HEALTHY, installed=951, failed=49, offered=1003, downloading=3),
            "wait",
            "success rate is 95.1 %",
        ),
        (
            "a settled wave that cannot pass its success gate",
            replace(HEALTHY, installed=952, failed=48, offered=1000, downloading=0),
            "halt",
            "Every offered device has reported",
        ),
        (
            "alarms at three times the control rate",
            replace(HEALTHY, alarms_treated=45),
            "halt",
            "3.00 times the rate of devices still on the previous release",
        ),
        (
            "a success rate clearly below the gate (stop at 20 %)",
            replace(HEALTHY, installed=880, failed=120, offered=1100, downloading=100),
            "halt",
            "clearly below the gate of 95.0 %: this wave cannot advance",
        ),
        (
            "an alarm ratio clearly above the gate, under the stop ratio",
            replace(HEALTHY, alarms_treated=42),
            "halt",
            "2.80 times the control rate (lower bound 2.07), clearly above the gate of 2.00",
        ),
        (
            "alarms at three times, exposure too short to judge",
            replace(HEALTHY, alarms_treated=8, exposure_treated=500.0),
            "wait",
            "device-days needed to judge alarms",
        ),
    ],
)
def test_halts(case, stats, action, says):
    gates = {"stop_failure_rate": 0.2} if "(stop at 20 %)" in case else {}
    decision = decide(stats, **gates)
    assert decision.action == action, (case, decision.reasons)
    assert any(says in reason for reason in decision.reasons), (case, decision.reasons)


def test_a_halt_comes_before_any_advance_gate():
    # Soak not over and too few reports, yet the failures already halt.
    stats = replace(HEALTHY, installed=20, failed=5, offered=900, downloading=300)
    decision = decide(stats, soaked=timedelta(minutes=10))
    assert decision.action == "halt"
    assert len(decision.reasons) == 1


def test_both_stop_reasons_are_given_together():
    stats = replace(HEALTHY, installed=900, failed=100, alarms_treated=60)
    decision = decide(stats)
    assert decision.action == "halt"
    assert len(decision.reasons) == 2


def test_a_decision_carries_its_figures():
    decision = decide(replace(HEALTHY, downloading=7))
    assert decision.figures["reported"] == 1000
    assert decision.figures["downloading"] == 7
    assert decision.figures["success_rate"] == pytest.approx(0.995)
    assert decision.figures["alarm_ratio"] == pytest.approx(1.0)
    assert decision.figures["soak_seconds"] == 7200
    assert decision.figures["last_wave"] is False


def test_every_reason_of_a_waiting_wave_is_given():
    stats = replace(HEALTHY, installed=10, failed=0, exposure_treated=10.0, alarms_treated=0)
    decision = decide(stats, soaked=timedelta(minutes=5))
    assert decision.action == "wait"
    # Soak, reports, success rate (10 of 10 is not yet clearly 95 %), alarm exposure.
    assert len(decision.reasons) == 4


def test_a_wave_with_no_device_of_its_own_advances_after_its_soak():
    empty = WaveStats(alarms_control=40, exposure_control=8000.0)
    assert decide(empty, soaked=timedelta(minutes=10)).action == "wait"
    assert decide(empty).action == "advance"


# A wave of five devices, a day after they installed: 120 device-hours.
SMALL = WaveStats(
    eligible=5,
    offered=5,
    installed=5,
    exposure_treated=120.0,
    alarms_control=500,
    exposure_control=100_000.0,
)


@pytest.mark.parametrize(
    ("case", "stats", "action", "says"),
    [
        ("a day per device is enough exposure", SMALL, "advance", "5 of 5 installed"),
        (
            "less than a day per device",
            replace(SMALL, exposure_treated=100.0),
            "wait",
            "4.2 of the 5 device-days needed",
        ),
        (
            "two alarms are too few to halt, but hold the wave",
            replace(SMALL, alarms_treated=2),
            "wait",
            "The alarm ratio is 3.33, above 2.00",
        ),
        (
            "five alarms halt",
            replace(SMALL, alarms_treated=5),
            "halt",
            "8.33 times the rate",
        ),
        (
            "one failure of five: the observed rate decides",
            replace(SMALL, installed=4, failed=1),
            "halt",
            "Every offered device has reported",
        ),
    ],
)
def test_small_waves_are_judged_on_what_they_observed(case, stats, action, says):
    decision = decide(stats)
    assert decision.action == action, (case, decision.reasons)
    assert any(says in reason for reason in decision.reasons), (case, decision.reasons)


def test_a_wave_too_small_for_a_confident_bound_is_judged_on_its_rates():
    # 50 of 50 installed: the lower bound (0.93 at two standard errors) cannot
    # reach 95 % with 50 devices, so the observed 100 % decides.
    fifty = replace(HEALTHY, eligible=50, offered=50, installed=50, failed=0)
    assert decide(fifty).action == "advance"
    assert decide(replace(fifty, installed=47, failed=3)).action == "halt"


@pytest.mark.parametrize(
    ("successes", "total", "z", "lower", "upper"),
    [
        (0, 0, 2.0, 0.0, 1.0),  # nothing observed: anything is possible
        (20, 20, 1.0, 0.952, 1.0),  # 20 clean reports clear 95 % at one standard error
        (76, 76, 2.0, 0.950, 1.0),  # and 76 at two
        (950, 1000, 2.0, 0.934, 0.962),
    ],
)
def test_wilson_interval(successes, total, z, lower, upper):
    low, high = wilson_interval(successes, total, z)
    assert low == pytest.approx(lower, abs=0.001)
    assert high == pytest.approx(upper, abs=0.001)


def test_rate_ratio_interval():
    assert rate_ratio_interval(3, 0.0, 9, 10.0, 2.0) is None
    low, high = rate_ratio_interval(300, 1000.0, 10_000, 100_000.0, 2.0) or (0, 0)
    assert low < 3.0 < high
    assert high / low < 1.3  # many alarms: a narrow interval
    few = rate_ratio_interval(3, 10.0, 100, 1000.0, 2.0)
    assert few is not None and few[1] / few[0] > 5  # three alarms: a wide one
