"""A rollout's plan: who is in which wave, and whether a wave may advance.

Pure functions over plain data: no database, no Flask, no clock (the caller
passes `now`). The service stores what these take; the update check asks
`in_wave`; the background evaluation asks `evaluate`.

Statistics. The issue asks that a wave stops when failures or alarms cross a
stop threshold and advances when its rates hold. Judged on the observed rates
alone, a release whose true failure rate sits on the threshold advances about
half the time (one lucky wave), and one early failure among ten reports halts
a good release. So the gates compare confidence bounds, not point estimates:
a wave advances only when its success rate (Wilson score bound) and its alarm
ratio (log-normal bound of a Poisson rate ratio) clear their gates by
`Gates.confidence_z` standard errors, and it halts as soon as the observed rate
crosses a stop threshold with enough evidence behind it (`min_reported_to_halt`,
`min_failures_to_halt`, `min_alarms_to_halt`, `min_device_days_to_judge_alarms`).
A wave that can never advance halts too, for a person to look: one clearly
below its success gate or clearly above its alarm gate, and one whose every
offered device has reported while its success gate still fails. A wave too
small for any bound to be confident is judged on its observed rates.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

from upgrade_server.rollouts.bounds import (
    rate_ratio_interval,
    smallest_confident_sample,
    wilson_interval,
)

_sha256 = hashlib.sha256

BUCKETS = 10_000
"""Buckets a device can fall in; a wave's share is in the same unit (basis points)."""

Action = Literal["wait", "advance", "wait-for-approval", "complete", "halt"]


def bucket(salt: str, device_id: int) -> int:
    """The device's bucket in a rollout, uniform in [0, BUCKETS) and stable.

    The rollout's own random salt makes each rollout pick different devices first.
    """
    return bucket_of(f"{salt}:".encode(), device_id)


def bucket_of(prefix: bytes, device_id: int) -> int:
    """`bucket` with the salt already encoded as `salt:` (the update check's path)."""
    digest = _sha256(prefix + b"%d" % device_id).digest()
    # 64 bits modulo 10,000: the bias is below 1e-15, far under any share.
    return int.from_bytes(digest[:8], "big") % BUCKETS


@dataclass(frozen=True)
class Wave:
    """One wave: a cumulative share of the eligible fleet plus named sets.

    `share` is in basis points of the eligible fleet (100 = 1 %, 10000 = all)
    and counts devices of earlier waves too. Members of the named sets
    (organisations that volunteered, explicit devices, hardware revisions) are
    in the wave whatever their bucket.
    """

    share: int
    organisations: frozenset[int] = field(default_factory=frozenset)
    devices: frozenset[int] = field(default_factory=frozenset)
    hardware: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not 0 <= self.share <= BUCKETS:
            raise ValueError(f"a wave's share is 0..{BUCKETS} basis points, not {self.share}")

    def to_json(self) -> dict[str, Any]:
        return {
            "share": self.share,
            "organisations": sorted(self.organisations),
            "devices": sorted(self.devices),
            "hardware": sorted(self.hardware),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Wave:
        return cls(
            share=int(data["share"]),
            organisations=frozenset(int(x) for x in data.get("organisations", ())),
            devices=frozenset(int(x) for x in data.get("devices", ())),
            hardware=frozenset(str(x) for x in data.get("hardware", ())),
        )


def wave_problems(waves: Sequence[Wave]) -> tuple[str, ...]:
    """What is wrong with a list of waves (empty when it is a valid plan).

    A plan has at least one wave, shares that never go down, and a last wave
    of the whole fleet (10000).
    """
    if not waves:
        return ("A rollout needs at least one wave.",)
    problems = []
    for index, (earlier, later) in enumerate(itertools.pairwise(waves), start=2):
        if later.share < earlier.share:
            problems.append(
                f"Wave {index} has a share of {later.share} basis points, "
                f"less than the {earlier.share} of the wave before it."
            )
    if waves[-1].share != BUCKETS:
        problems.append(
            f"The last wave must cover the whole fleet ({BUCKETS} basis points), "
            f"not {waves[-1].share}."
        )
    return tuple(problems)


@dataclass(frozen=True)
class Target:
    """The device an update check asks for."""

    device_id: int
    organisation_id: int
    hardware: str


def _in_named_set(wave: Wave, target: Target) -> bool:
    return (
        target.device_id in wave.devices
        or target.organisation_id in wave.organisations
        or target.hardware in wave.hardware
    )


def in_wave(
    waves: Sequence[Wave],
    wave_index: int,
    salt: str,
    target: Target,
    pinned: frozenset[int] = frozenset(),
    excluded_devices: frozenset[int] = frozenset(),
    excluded_hardware: frozenset[str] = frozenset(),
) -> bool:
    """Whether the device is in the rollout's current wave `wave_index` (0-based).

    Excluded devices and hardware revisions never are; pinned devices always
    are; any other device is when it is in a wave up to the current one, by
    its bucket or a named set. Monotone: in wave N implies in every later wave.
    """
    if target.device_id in excluded_devices or target.hardware in excluded_hardware:
        return False
    if target.device_id in pinned:
        return True
    current = waves[: wave_index + 1]
    if not current:
        return False
    share = max(wave.share for wave in current)
    if share and bucket(salt, target.device_id) < share:
        return True
    return any(_in_named_set(wave, target) for wave in current)


def wave_of(waves: Sequence[Wave], salt: str, target: Target) -> int | None:
    """The first wave (0-based) the device is in, by bucket or named set; None if none.

    Pins and exclusions are the caller's (they apply to every wave alike).
    """
    device_bucket = bucket(salt, target.device_id)
    for index, wave in enumerate(waves):
        if device_bucket < wave.share or _in_named_set(wave, target):
            return index
    return None


@dataclass(frozen=True)
class Gates:
    """When a wave advances by itself, and when the rollout halts by itself."""

    min_soak_seconds: int = 3600
    """A wave runs at least this long before it may advance."""
    min_reported: int = 20
    """Devices of the wave with an outcome before it may advance (fewer if the wave is smaller)."""
    min_success_rate: float = 0.95
    """Installed / reported must be at least this (with `confidence_z`) to advance."""
    max_alarm_ratio: float = 2.0
    """Alarm rate of updated devices / control rate must be at most this to advance."""
    stop_failure_rate: float = 0.05
    """Halt when (failed + rolled back) / reported reaches this."""
    min_reported_to_halt: int = 10
    """Reports needed before the failure rate may halt the rollout."""
    min_failures_to_halt: int = 3
    """Failures needed before the failure rate may halt the rollout: one or two
    unlucky devices among the first reports do not stop a good release."""
    stop_alarm_ratio: float = 3.0
    """Halt when the alarm ratio reaches this (once there is enough exposure)."""
    min_alarms_to_halt: int = 5
    """Alarms of updated devices needed before the alarm ratio may halt the rollout."""
    min_device_days_to_judge_alarms: float = 100.0
    """Device-days of exposure of updated devices before the alarm ratio is
    judged, either way (or a day per device of a smaller wave): until then the
    alarm gate waits. 100 device-days is a day of a 1 % wave of 10,000 devices."""
    confidence_z: float = 2.0
    """Standard errors by which the success rate and alarm ratio must clear
    their advance gates (about 97.7 % one-sided confidence at 2.0; 0 judges
    the observed rates alone). At 2.0 a wave needs 76 clean reports to clear
    95 %: a smaller wave is judged on its observed rates."""
    auto_advance: bool = True
    """Advance when the gates hold; when False a person approves each wave."""

    def __post_init__(self) -> None:
        for name in ("min_success_rate", "stop_failure_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a rate between 0 and 1")
        for name in (
            "min_soak_seconds",
            "min_reported",
            "min_reported_to_halt",
            "min_failures_to_halt",
            "min_alarms_to_halt",
            "min_device_days_to_judge_alarms",
            "confidence_z",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} cannot be negative")
        if self.max_alarm_ratio <= 0 or self.stop_alarm_ratio <= 0:
            raise ValueError("alarm ratios are positive")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Gates:
        """Gates from stored or posted JSON; absent knobs keep their defaults.

        Raises ValueError for an unknown knob or a value out of range.
        """
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown gate settings: {', '.join(unknown)}")
        return cls(**dict(data))


@dataclass(frozen=True)
class WaveStats:
    """Figures of the devices of one wave, and of the control group.

    `offered` counts every device that has been offered the release, whatever
    happened next; `downloading` those that started and have no outcome yet.
    Exposures are device-hours: of this wave's devices since they installed,
    and of comparable devices still on the previous release over the same period.
    """

    eligible: int = 0
    offered: int = 0
    downloading: int = 0
    installed: int = 0
    failed: int = 0
    rolled_back: int = 0
    alarms_treated: int = 0
    exposure_treated: float = 0.0
    alarms_control: int = 0
    exposure_control: float = 0.0

    @property
    def reported(self) -> int:
        return self.installed + self.failed + self.rolled_back

    @property
    def failures(self) -> int:
        return self.failed + self.rolled_back

    @property
    def success_rate(self) -> float | None:
        return self.installed / self.reported if self.reported else None

    @property
    def failure_rate(self) -> float | None:
        return self.failures / self.reported if self.reported else None

    @property
    def alarm_ratio(self) -> float | None:
        """Alarm rate of updated devices over the control rate.

        None without exposure on either side or without a control alarm (no
        rate to compare with).
        """
        if self.exposure_treated <= 0 or self.exposure_control <= 0 or not self.alarms_control:
            return None
        treated = self.alarms_treated / self.exposure_treated
        control = self.alarms_control / self.exposure_control
        return treated / control


@dataclass(frozen=True)
class Decision:
    """What to do with the rollout now, why (English sentences with figures), the figures."""

    action: Action
    reasons: tuple[str, ...]
    figures: dict[str, Any]


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def evaluate(
    gates: Gates,
    stats: WaveStats,
    wave_started_at: datetime,
    now: datetime,
    last_wave: bool,
) -> Decision:
    """Decide for a running rollout's current wave: halt, advance, complete or wait.

    Halt checks come first (stop thresholds, then a settled wave that cannot
    pass), then the advance gates (soak, reports, success rate, alarm ratio).
    """
    soaked = (now - wave_started_at).total_seconds()
    ratio = stats.alarm_ratio
    # A wave with no device of its own (a small share of a small fleet) has
    # nothing to judge but its soak.
    empty = stats.eligible == 0 and stats.offered == 0
    # A wave smaller than min_reported is judged on what it observed: no bound
    # can be confident about a handful of devices.
    smallest = smallest_confident_sample(gates.min_success_rate, gates.confidence_z)
    small = 0 < stats.eligible < max(gates.min_reported, smallest)
    alarm_hours = gates.min_device_days_to_judge_alarms * 24
    if stats.eligible:
        alarm_hours = min(alarm_hours, stats.eligible * 24.0)  # or a day per device
    judge_alarms = stats.exposure_treated >= alarm_hours
    success_bound, success_upper = wilson_interval(
        stats.installed, stats.reported, gates.confidence_z
    )
    ratio_interval = rate_ratio_interval(
        stats.alarms_treated,
        stats.exposure_treated,
        stats.alarms_control,
        stats.exposure_control,
        gates.confidence_z,
    )
    ratio_bound = None if ratio_interval is None else ratio_interval[1]
    figures: dict[str, Any] = {
        "eligible": stats.eligible,
        "offered": stats.offered,
        "downloading": stats.downloading,
        "installed": stats.installed,
        "failed": stats.failed,
        "rolled_back": stats.rolled_back,
        "reported": stats.reported,
        "success_rate": stats.success_rate,
        "success_rate_bounds": [success_bound, success_upper] if stats.reported else None,
        "failure_rate": stats.failure_rate,
        "alarms_treated": stats.alarms_treated,
        "exposure_treated_hours": round(stats.exposure_treated, 2),
        "alarms_control": stats.alarms_control,
        "exposure_control_hours": round(stats.exposure_control, 2),
        "alarm_ratio": ratio,
        "alarm_ratio_bounds": None if ratio_interval is None else list(ratio_interval),
        "soak_seconds": int(soaked),
        "last_wave": last_wave,
    }

    halts = _halts(gates, stats, judge_alarms, success_upper, ratio_interval)
    if halts:
        return Decision("halt", tuple(halts), figures)

    waits = []
    if soaked < gates.min_soak_seconds:
        waits.append(
            f"The wave has soaked {int(soaked)} s of the {gates.min_soak_seconds} s required."
        )
    if empty:
        return _after_gates(gates, stats, waits, figures, last_wave, soaked)

    required = max(1, min(gates.min_reported, stats.eligible or gates.min_reported))
    if stats.reported < required:
        waits.append(f"{stats.reported} of the {required} required devices have reported.")

    if small:
        success_holds = (stats.success_rate or 0.0) >= gates.min_success_rate
    else:
        success_holds = stats.reported > 0 and success_bound >= gates.min_success_rate
    if stats.reported and not success_holds:
        settled = stats.downloading == 0 and stats.reported >= stats.offered
        sentence = (
            f"The success rate is {_percent(stats.success_rate)} of {stats.reported} reports "
            f"(lower bound {_percent(success_bound)}), not clearly at or above "
            f"{_percent(gates.min_success_rate)}."
        )
        if settled and stats.reported >= required and soaked >= gates.min_soak_seconds:
            return Decision(
                "halt",
                (sentence + " Every offered device has reported, so waiting cannot change it.",),
                figures,
            )
        waits.append(sentence)

    if not judge_alarms:
        waits.append(
            f"Updated devices have {stats.exposure_treated / 24:.1f} of the "
            f"{alarm_hours / 24:g} device-days needed to judge alarms."
        )
    elif small or alarm_hours == 0:
        if ratio is not None and ratio > gates.max_alarm_ratio:
            waits.append(f"The alarm ratio is {ratio:.2f}, above {gates.max_alarm_ratio:.2f}.")
    elif ratio_bound is None or ratio_bound > gates.max_alarm_ratio:
        shown = "n/a" if ratio is None else f"{ratio:.2f}"
        bound = "n/a" if ratio_bound is None else f"{ratio_bound:.2f}"
        waits.append(
            f"The alarm ratio is {shown} (upper bound {bound}), not clearly at or below "
            f"{gates.max_alarm_ratio:.2f}."
        )
    return _after_gates(gates, stats, waits, figures, last_wave, soaked)


def _halts(
    gates: Gates,
    stats: WaveStats,
    judge_alarms: bool,
    success_upper: float,
    ratio_interval: tuple[float, float] | None,
) -> list[str]:
    """The stop thresholds the wave has crossed, each as a sentence with its figures.

    Besides the stop thresholds, a wave clearly below its success gate or
    clearly above its alarm gate halts: it could never advance.
    """
    halts = []
    failure_rate = stats.failure_rate
    if (
        failure_rate is not None
        and stats.reported >= gates.min_reported_to_halt
        and stats.failures >= gates.min_failures_to_halt
    ):
        if failure_rate >= gates.stop_failure_rate:
            halts.append(
                f"{stats.failures} of {stats.reported} devices that reported failed or rolled "
                f"back ({_percent(failure_rate)}), at or above the stop threshold of "
                f"{_percent(gates.stop_failure_rate)}."
            )
        elif success_upper < gates.min_success_rate:
            halts.append(
                f"The success rate is {_percent(stats.success_rate)} of {stats.reported} "
                f"reports (upper bound {_percent(success_upper)}), clearly below the gate of "
                f"{_percent(gates.min_success_rate)}: this wave cannot advance."
            )
    ratio = stats.alarm_ratio
    if judge_alarms and ratio is not None and stats.alarms_treated >= gates.min_alarms_to_halt:
        if ratio >= gates.stop_alarm_ratio:
            halts.append(
                f"Updated devices raised {stats.alarms_treated} alarms in "
                f"{stats.exposure_treated:.0f} device-hours, {ratio:.2f} times the rate of "
                f"devices still on the previous release, at or above the stop ratio of "
                f"{gates.stop_alarm_ratio:.2f}."
            )
        elif ratio_interval is not None and ratio_interval[0] > gates.max_alarm_ratio:
            halts.append(
                f"Updated devices raised {stats.alarms_treated} alarms in "
                f"{stats.exposure_treated:.0f} device-hours, {ratio:.2f} times the control "
                f"rate (lower bound {ratio_interval[0]:.2f}), clearly above the gate of "
                f"{gates.max_alarm_ratio:.2f}: this wave cannot advance."
            )
    return halts


def _after_gates(
    gates: Gates,
    stats: WaveStats,
    waits: list[str],
    figures: dict[str, Any],
    last_wave: bool,
    soaked: float,
) -> Decision:
    if waits:
        return Decision("wait", tuple(waits), figures)
    ratio = stats.alarm_ratio
    held = (
        f"Gates hold: {stats.installed} of {stats.reported} installed "
        f"({_percent(stats.success_rate)}), alarm ratio "
        f"{'n/a' if ratio is None else f'{ratio:.2f}'}, soaked {int(soaked)} s."
    )
    if last_wave:
        return Decision("complete", (held,), figures)
    if not gates.auto_advance:
        return Decision("wait-for-approval", (held + " A person approves the next wave.",), figures)
    return Decision("advance", (held,), figures)
