#!/usr/bin/env bash
# Creates .venv with Python 3.11+ and installs the given requirements file into it.
# Used by demo.sh and test.sh; on a fresh Debian machine it installs python3-venv.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to run: $*" >&2; exit 1; fi
}

apt_install() {
  command -v apt-get >/dev/null || { echo "please install: $*" >&2; exit 1; }
  if [ -z "${APT_UPDATED:-}" ]; then as_root apt-get update -qq; export APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# System packages: PDF notes need Pango and CJK fonts (WeasyPrint renders
# Chinese with Noto CJK); the suite also drives Debian's Chromium and reads
# PDFs with pdftotext and moves the process clock with libfaketime.
SYSTEM_PACKAGES="libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-cjk"
if [ "${1:-requirements.txt}" = "requirements-dev.txt" ]; then
  SYSTEM_PACKAGES="$SYSTEM_PACKAGES chromium poppler-utils faketime swupdate cpio openssl"
fi
# RAUC's hawkBit client (tests/test_ddi_rauc.py) runs on Debian's Python with
# its GObject bindings, on a private dbus-daemon.
if [ "${1:-requirements.txt}" = "requirements-dev.txt" ]; then
  SYSTEM_PACKAGES="$SYSTEM_PACKAGES python3-gi gir1.2-glib-2.0 python3-cairo dbus python3-venv"
fi
missing=""
for package in $SYSTEM_PACKAGES; do
  dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
if [ -n "$missing" ]; then
  # shellcheck disable=SC2086
  apt_install $missing
fi

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' 2>/dev/null || {
  echo "upgrade_server needs Python 3.11 or newer as '$PYTHON'" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv 2>/dev/null || { rm -rf .venv; apt_install python3-venv; "$PYTHON" -m venv .venv; }
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r "${1:-requirements.txt}"

# RAUC's hawkBit client in a venv of its own, on Debian's Python (for python3-gi).
if [ "${1:-requirements.txt}" = "requirements-dev.txt" ] && [ ! -x .venv-rauc-hawkbit/bin/rauc-hawkbit-client ]; then
  rm -rf .venv-rauc-hawkbit
  /usr/bin/python3 -m venv --system-site-packages .venv-rauc-hawkbit
  .venv-rauc-hawkbit/bin/python -m pip install -q -r tests/ddi/rauc-hawkbit-requirements.txt
fi
