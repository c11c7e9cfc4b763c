"""The publish form's fields: read from a posted form, turned into the
release metadata the API takes (releases/metadata.py is its schema), and
given back to the template as entered when the page shows again.

The form asks for texts people read in both languages side by side; a text
given in one language only is stored for that language. Whatever is wrong
with what was entered, the service says (it raises InvalidInputError with
JSON paths); here its paths become the form's field ids and words."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flask_babel import lazy_gettext as _
from werkzeug.datastructures import MultiDict

from upgrade_server.notes.documents import GUIDANCE_KINDS
from upgrade_server.notes.markdown import render
from upgrade_server.releases.metadata import LANGUAGES

MIN_ROWS = 2
MAX_ROWS = 20
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_NOT_IN_FILENAME = re.compile(r"[^A-Za-z0-9._+-]+")

# What each field is called on the form, and what it expects.
FIELD_NAMES: dict[str, Any] = {
    "version": _("Version"),
    "channels": _("Channels"),
    "min_from_version": _("Installs from version"),
    "hardware_revisions": _("Hardware revisions"),
    "filename": _("File"),
    "artifact": _("File"),
    "notes": _("Release notes"),
    "guidance": _("Guidance"),
    "requirements": _("Hardware requirements"),
    "parameters": _("Parameter changes"),
    "security_fix": _("Security fix"),
}
HINTS: dict[str, Any] = {
    "version": _("a semantic version, such as 2.1.0 or 2.1.0-rc.1, not published yet"),
    "channels": _("channels of this product only"),
    "min_from_version": _("a semantic version below the release's"),
    "hardware_revisions": _("at least one revision of this product"),
    "filename": _("letters, digits and . _ + - only"),
    "artifact": _("choose the file to publish"),
}
_ROW = re.compile(r"^(requirements|parameters)\[(\d+)\]")


def _texts(form: MultiDict[str, str], prefix: str) -> dict[str, str]:
    return {lang: form.get(f"{prefix}-{lang}", "").strip() for lang in LANGUAGES}


def _given(texts: dict[str, str]) -> dict[str, str]:
    return {lang: text for lang, text in texts.items() if text}


def _rows(form: MultiDict[str, str], name: str) -> int:
    value = form.get(f"{name}_rows", "")
    count = int(value) if value.isascii() and value.isdigit() else MIN_ROWS
    return max(MIN_ROWS, min(count, MAX_ROWS))


def scalar(value: str) -> Any:
    """A default as typed: empty is none, true/false a boolean, digits a number."""
    value = value.strip()
    if not value:
        return None
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    if _NUMBER.match(value):
        return float(value) if "." in value else int(value)
    return value


def one_or_both(texts: dict[str, str]) -> Any:
    """Texts by language as the metadata takes them (None when both are empty)."""
    given = _given(texts)
    return given or None


@dataclass
class Entered:
    """What the publisher typed, kept to show the form again."""

    version: str = ""
    channels: list[str] = field(default_factory=list)
    min_from_version: str = ""
    security_fix: bool = False
    hardware: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    guidance: dict[str, dict[str, str]] = field(default_factory=dict)
    requirements: list[dict[str, Any]] = field(default_factory=list)
    parameters: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def blank(cls, channels: list[str], hardware: list[str]) -> Entered:
        """A new form: the lowest channel and every hardware revision ticked."""
        return cls(
            channels=channels[:1],
            hardware=list(hardware),
            notes=dict.fromkeys(LANGUAGES, ""),
            guidance={kind: dict.fromkeys(LANGUAGES, "") for kind in GUIDANCE_KINDS},
            requirements=[_requirement(MultiDict(), i) for i in range(MIN_ROWS)],
            parameters=[_parameter(MultiDict(), i) for i in range(MIN_ROWS)],
        )

    @classmethod
    def from_form(cls, form: MultiDict[str, str], more_rows: bool = False) -> Entered:
        extra = 2 if more_rows else 0
        requirement_rows = min(_rows(form, "requirements") + extra, MAX_ROWS)
        parameter_rows = min(_rows(form, "parameters") + extra, MAX_ROWS)
        return cls(
            version=form.get("version", "").strip(),
            channels=form.getlist("channels"),
            min_from_version=form.get("min_from_version", "").strip(),
            security_fix=form.get("security_fix") == "1",
            hardware=form.getlist("hardware_revisions"),
            notes=_texts(form, "notes"),
            guidance={kind: _texts(form, f"guidance-{kind}") for kind in GUIDANCE_KINDS},
            requirements=[_requirement(form, i) for i in range(requirement_rows)],
            parameters=[_parameter(form, i) for i in range(parameter_rows)],
        )

    def metadata(self, filename: str | None) -> dict[str, Any]:
        """The release metadata, as the API's publish takes it."""
        requirements = [
            {"name": one_or_both(r["name"]), "value": scalar(r["value"]), "unit": r["unit"] or None}
            for r in self.requirements
            if any(r["name"].values())
        ]
        parameters = [
            {
                "name": p["name"],
                "old_default": scalar(p["old"]),
                "new_default": scalar(p["new"]),
                "unit": p["unit"] or None,
                "operator_action": p["operator"],
                "action": one_or_both(p["action"]),
            }
            for p in self.parameters
            if p["name"]
        ]
        return {
            "version": self.version,
            "filename": filename,
            "channels": self.channels or None,
            # None would mean every revision: a form with none ticked is refused.
            "hardware_revisions": self.hardware or [""],
            "min_from_version": self.min_from_version or None,
            "security_fix": self.security_fix,
            "notes": _given(self.notes),
            "guidance": {k: _given(t) for k, t in self.guidance.items() if _given(t)},
            "requirements": requirements,
            "parameters": parameters,
        }


def _requirement(form: MultiDict[str, str], i: int) -> dict[str, Any]:
    return {
        "name": _texts(form, f"requirement-{i}-name"),
        "value": form.get(f"requirement-{i}-value", "").strip(),
        "unit": form.get(f"requirement-{i}-unit", "").strip(),
    }


def _parameter(form: MultiDict[str, str], i: int) -> dict[str, Any]:
    return {
        "name": form.get(f"parameter-{i}-name", "").strip(),
        "old": form.get(f"parameter-{i}-old", "").strip(),
        "new": form.get(f"parameter-{i}-new", "").strip(),
        "unit": form.get(f"parameter-{i}-unit", "").strip(),
        "operator": form.get(f"parameter-{i}-operator") == "1",
        "action": _texts(form, f"parameter-{i}-action"),
    }


def safe_filename(name: str | None) -> str | None:
    """The uploaded file's name as a release's file name may be (the browser
    sends any name; spaces and the like become dashes)."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _NOT_IN_FILENAME.sub("-", base).lstrip("._+-")[:200]
    return cleaned or None


@dataclass(frozen=True)
class Problem:
    """A field the service refused: the form's element id and words for it."""

    element: str
    name: str
    hint: str


def problems(errors: list[dict[str, Any]]) -> list[Problem]:
    """The service's field errors as the form's fields, each once."""
    found: dict[str, Problem] = {}
    for error in errors:
        path = str(error.get("field") or "")
        row = _ROW.match(path)
        if row:
            kind, index = row.group(1), int(row.group(2))
            element = f"{kind[:-1]}-{index}-name" + ("-zh-CN" if kind == "requirements" else "")
            name = _("%(what)s, row %(row)d", what=FIELD_NAMES[kind], row=index + 1)
            found.setdefault(element, Problem(element, str(name), str(_("check this row"))))
            continue
        top = re.split(r"[.\[]", path, maxsplit=1)[0]
        if top == "notes":
            element = "notes-" + path.split(".", 1)[1] if "." in path else "notes-zh-CN"
        elif top == "guidance":
            element = "guidance-" + path.split(".", 1)[1].replace(".", "-") if "." in path else ""
        else:
            element = top if top in FIELD_NAMES else ""
        if top == "filename":
            element = "artifact"
        name = FIELD_NAMES.get(top, _("Release"))
        hint = HINTS.get(top, _("check the value"))
        found.setdefault(element or top, Problem(element, str(name), str(hint)))
    return list(found.values())


def rendered_texts(texts: dict[str, str] | None) -> list[tuple[str, Any]]:
    """A text per language, rendered (sanitised) as the portal renders notes."""
    texts = texts or {}
    return [(lang, render(texts.get(lang))) for lang in LANGUAGES]
