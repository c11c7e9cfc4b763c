"""What the update check asks of rollouts (rollouts/offer.py), from plain
data: no database, no app."""

from __future__ import annotations

import random
from collections import namedtuple

import pytest

from upgrade_server.rollouts.offer import ActiveRollouts, RolloutView, build, offered
from upgrade_server.rollouts.plan import Target, Wave, in_wave
from upgrade_server.rollouts.progress import first_wave

WAVES = (Wave(0, organisations=frozenset({7})), Wave(1000), Wave(10000))
A = Target(device_id=1, organisation_id=7, hardware="rev-a")  # in wave 0 by organisation
B = Target(device_id=2, organisation_id=8, hardware="rev-b")


def _view(state: str = "running", reached: int = 1, **kw) -> ActiveRollouts:
    return ActiveRollouts({10: RolloutView(1, state, "salt", WAVES[:reached], **kw)})


def _not_in_first_waves() -> Target:
    """A device whose bucket is beyond 10 %: in the last wave only."""
    for device_id in range(3, 10_000):
        target = Target(device_id, 8, "rev-a")
        if not in_wave(WAVES, 1, "salt", target, frozenset(), frozenset(), frozenset()):
            return target
    raise AssertionError("every device in 10 %")


def test_a_release_under_no_rollout_or_a_completed_one_is_offered_as_any():
    assert offered(ActiveRollouts(), 10, A) is None
    assert offered(_view(), 11, A) is None
    assert offered(_view("completed", 3), 10, B) is None


@pytest.mark.parametrize(
    ("state", "expected"),
    [("running", True), ("paused", True), ("halted", False), ("aborted", False)],
)
def test_a_reached_device_is_offered_while_the_rollout_runs_or_pauses(state, expected):
    assert offered(_view(state), 10, A) is expected


def test_a_halted_rollout_offers_only_to_the_devices_part_way_through():
    late = _not_in_first_waves()
    halted = _view("halted", in_progress=frozenset({late.device_id}))
    assert (offered(halted, 10, A), offered(halted, 10, late)) == (False, True)
    aborted = _view("aborted", in_progress=frozenset({late.device_id}))
    assert offered(aborted, 10, late) is False


def test_a_device_is_offered_once_its_wave_is_reached():
    late = _not_in_first_waves()
    assert [offered(_view(reached=n), 10, late) for n in (1, 2, 3)] == [False, False, True]


def test_pins_and_exclusions():
    late = _not_in_first_waves()
    assert offered(_view(pinned=frozenset({late.device_id})), 10, late) is True
    assert offered(_view(excluded_devices=frozenset({A.device_id})), 10, A) is False
    assert offered(_view(reached=3, excluded_hardware=frozenset({"rev-b"})), 10, B) is False


def test_what_a_rollout_left_out_it_never_offers_even_once_completed_or_halted():
    other = Target(3, 8, "rev-a")
    done = _view("completed", 3, excluded_hardware=frozenset({"rev-b"}))
    assert (offered(done, 10, B), offered(done, 10, other)) == (False, None)
    done = _view("completed", 3, excluded_devices=frozenset({A.device_id}))
    assert (offered(done, 10, A), offered(done, 10, other)) == (False, None)
    part_way = frozenset({A.device_id, B.device_id})
    halted = _view("halted", excluded_hardware=frozenset({"rev-b"}), in_progress=part_way)
    assert (offered(halted, 10, A), offered(halted, 10, B)) == (True, False)


Row = namedtuple(
    "Row",
    "id release_id state salt waves current_wave excluded_hardware emergency in_progress"
    " device_id kind",
)


def test_the_latest_rollout_of_a_release_counts_with_its_pins_and_exclusions():
    waves = [w.to_json() for w in WAVES]
    rows = [
        Row(1, 10, "aborted", "s1", waves, 0, [], False, [], None, None),
        Row(2, 10, "running", "s2", waves, 1, ["rev-c"], True, [], 5, "pin"),
        Row(2, 10, "running", "s2", waves, 1, ["rev-c"], True, [], 6, "exclude"),
        Row(3, 11, "completed", "s3", waves, 2, [], False, [], None, None),
    ]
    active = build(rows)
    view = active.by_release[10]
    assert (view.rollout_id, view.salt, len(view.waves), view.emergency) == (2, "s2", 2, True)
    assert (view.pinned, view.excluded_devices, view.excluded_hardware) == (
        frozenset({5}),
        frozenset({6}),
        frozenset({"rev-c"}),
    )
    assert offered(active, 11, B) is None


def test_first_wave_agrees_with_in_wave():
    rng = random.Random(16)
    waves = (
        Wave(0, hardware=frozenset({"rev-x"})),
        Wave(100),
        Wave(1000, devices=frozenset({3})),
        Wave(10000),
    )
    pinned, excluded = frozenset({1, 2}), frozenset({4})
    for device_id in range(1, 3000):
        target = Target(device_id, rng.randrange(5), rng.choice(["rev-a", "rev-x", "rev-y"]))
        first = first_wave(waves, "salt", target, pinned, excluded, frozenset({"rev-y"}))
        member = [
            in_wave(waves, n, "salt", target, pinned, excluded, frozenset({"rev-y"}))
            for n in range(len(waves))
        ]
        assert member == [first is not None and n >= first for n in range(len(waves))]
