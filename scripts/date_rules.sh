#!/usr/bin/env bash
# The date-rule tests at other dates, two ways (tests/clock.py):
#  - pinned: TEST_NOW moves the instant every test starts at;
#  - the process's own clock moved by libfaketime (no TEST_NOW), so the
#    tests see the date the operating system would give them.
# The dates are computed from today, so they stay ahead of the calendar:
# this year's last evening in UTC (already next year in Asia/Shanghai), the
# next 29 February late in the UTC day (1 March there), a day years ahead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
TESTS=(tests/test_entitlements.py tests/test_coverage_rules.py tests/test_ticket_deadlines.py
       tests/test_service_record.py tests/test_service_promises.py tests/test_working_days.py
       tests/test_sites.py)

mapfile -t PINNED < <("$PY" - <<'PYEOF'
from datetime import UTC, date, datetime, timedelta
today = datetime.now(UTC).date()
leap = next(y for y in range(today.year, today.year + 8)
            if (y % 4 == 0 and y % 100 != 0 or y % 400 == 0) and date(y, 2, 29) >= today)
print(f"{today.year}-12-31T23:30:00+00:00")
print(f"{leap}-02-29T16:30:00+00:00")
print(f"{(today + timedelta(days=3 * 365 + 123)).isoformat()}T04:00:00+00:00")
PYEOF
)
for now in "${PINNED[@]}"; do
  echo "-- pinned at $now"
  TEST_NOW="$now" "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
done

command -v faketime >/dev/null || { echo "faketime is missing (Debian package faketime)" >&2; exit 1; }
for moved in "@$(date -u +%Y)-12-31 22:45:00" "+1000d" "+1461d"; do
  echo "-- process clock at $moved (libfaketime)"
  TZ=UTC FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f "$moved" \
    "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
done
