"""The rollout simulation meets the issue's acceptance, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bad_releases_halt_in_the_first_wave_and_a_good_one_completes():
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "rollout_sim.py"), "--repeat", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("[PASS]") == 3
    assert "=> halt after" in run.stdout and "in wave 1;" in run.stdout
    assert "=> complete after" in run.stdout
    assert "over 2 seeds: 2 halt, 2 pass" in run.stdout
    assert "over 2 seeds: 2 complete, 2 pass" in run.stdout
