"""Every text the portal and the console show has its Chinese translation, and the compiled
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
    ("upgrade_server/console/**.py", "python"),
    ("upgrade_server/templates/**.html", "jinja2"),
]


def test_every_portal_text_is_translated_and_compiled():
    used = {message for _, _, message, _, _ in extract_from_dir(str(ROOT), METHODS)}
    assert len(used) > 50
    with open(CATALOGUE / "messages.po", "rb") as f:
        po = read_po(f)
    with open(CATALOGUE / "messages.mo", "rb") as f:
        mo = read_mo(f)

    def translated(message) -> bool:  # a plural's every form, not just one
        entry = po.get(message)
        text = entry.string if entry else None
        return bool(text) and (all(text) if isinstance(text, (list, tuple)) else True)

    missing = sorted(str(m) for m in used if not translated(m))
    assert missing == [], "run pybabel extract/update and translate these"

    def text(string):  # a plural's forms: a tuple in the .po, a list in the .mo
        return tuple(string) if isinstance(string, (list, tuple)) else string

    stale = sorted(
        str(m.id)
        for m in po
        if m.id and (mo.get(m.id) is None or text(mo.get(m.id).string) != text(m.string))
    )
    assert stale == [], "run: pybabel compile -d upgrade_server/translations"


def test_every_stored_code_has_words_in_both_languages(app):
    """Each status, kind and mode the models can hold has a label, and in
    Chinese the label is not the code itself."""
    from flask_babel import force_locale

    from upgrade_server.entitlements.coverage import Kind
    from upgrade_server.notes.documents import GUIDANCE_KINDS
    from upgrade_server.releases.models import ReleaseStatus
    from upgrade_server.service.models import Mode, SessionKind
    from upgrade_server.tickets import deadlines
    from upgrade_server.tickets.models import STATUSES
    from upgrade_server.updates.models import InstallStatus
    from upgrade_server.web.labels import label, unlabelled

    domains = {
        "ticket-status": STATUSES,
        "session-kind": [k.value for k in SessionKind],
        "mode": [m.value for m in Mode],
        "install-status": [s.value for s in InstallStatus],
        "release-status": [s.value for s in ReleaseStatus],
        "coverage-kind": [k.value for k in Kind],
        "guidance": GUIDANCE_KINDS,
        "deadline": [deadlines.ACK, deadlines.ON_SITE, deadlines.PART_ON_SITE, deadlines.REPORT],
    }
    with app.test_request_context(), force_locale("zh_CN"):
        for domain, codes in domains.items():
            assert unlabelled(domain, codes) == [], domain
            raw = [c for c in codes if label(c, domain) == c]
            assert raw == [], f"{domain}: shown untranslated in Chinese"
