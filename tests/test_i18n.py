"""Every text the portal shows has its Chinese translation, and the compiled
catalogue the server loads says what the .po file says."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "upgrade_server" / "translations" / "zh_Hans_CN" / "LC_MESSAGES"
METHODS = [
    ("upgrade_server/web/**.py", "python"),
    ("upgrade_server/templates/**.html", "jinja2"),
]


def test_every_portal_text_is_translated_and_compiled():
    used = {message for _, _, message, _, _ in extract_from_dir(str(ROOT), METHODS)}
    assert len(used) > 50
    with open(CATALOGUE / "messages.po", "rb") as f:
        po = read_po(f)
    with open(CATALOGUE / "messages.mo", "rb") as f:
        mo = read_mo(f)
    missing = sorted(m for m in used if not (po.get(m) and po.get(m).string))
    assert missing == [], "run pybabel extract/update and translate these"
    stale = sorted(
        m.id for m in po if m.id and (mo.get(m.id) is None or mo.get(m.id).string != m.string)
    )
    assert stale == [], "run: pybabel compile -d upgrade_server/translations"
