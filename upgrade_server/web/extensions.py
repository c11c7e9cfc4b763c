"""The portal's extensions, created unbound and bound in web.init_app(): CSRF
protection for its forms, and the language its pages are in (Babel's locale)."""

from __future__ import annotations

from flask import request, session
from flask_wtf.csrf import CSRFProtect

LANGUAGES = {"zh-CN": "zh_CN", "en": "en"}

csrf = CSRFProtect()


def current_language() -> str:
    """ "zh-CN" or "en": the user's choice, else the browser's, else zh-CN."""
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return str(chosen)
    best = request.accept_languages.best_match(["zh-CN", "zh", "en"], default="zh-CN")
    return "en" if best == "en" else "zh-CN"


def locale() -> str:
    """Babel's locale for the current request."""
    return LANGUAGES[current_language()]
