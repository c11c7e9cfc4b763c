"""What a publisher may say about a release: its schema, with types checked
and unknown fields refused.

The metadata arrives as a JSON document beside the artifact (multipart), so no
request schema sees it: this model is its schema (the OpenAPI document carries
it as `ReleaseMetadata`). A value of the wrong type, or a field the schema does
not know (a misspelling such as `operator_acton` would otherwise be published
as if it said nothing), is refused at publish with its JSON path, never stored
for the release page to trip over later.

Texts people read (notes, guidance, a parameter's action, a requirement's name
or value) may be given once, or per language as {"zh-CN": ..., "en": ...};
pages and PDFs show the reader's language (notes.documents.text_in).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    WithJsonSchema,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError

from upgrade_server.errors import InvalidInputError

Language = Literal["zh-CN", "en"]
LANGUAGES: tuple[str, ...] = ("zh-CN", "en")
GuidanceKind = Literal["installation", "operation", "maintenance"]

MAX_TEXT = 200_000
MAX_SHORT = 200

Name = Annotated[StrictStr, Field(min_length=1, max_length=MAX_SHORT)]
Text = Annotated[StrictStr, Field(max_length=MAX_TEXT)]
MAX_VERSION = 64
Short = Annotated[StrictStr, Field(max_length=MAX_SHORT)]
Scalar = StrictStr | StrictInt | StrictFloat | StrictBool | None
Texts = dict[Language, Text]


def _check(limit: int, *, least: int = 0, scalar: bool = False) -> Callable[[Any], Any]:
    """A text given once, or per language: "..." or {"zh-CN": "...", "en": "..."};
    with `scalar`, a number, a boolean or null too."""

    def text(value: Any) -> bool:
        return isinstance(value, str) and least <= len(value) <= limit

    def check(value: Any) -> Any:
        if scalar and (value is None or isinstance(value, bool | int)):
            return value
        if scalar and isinstance(value, float):
            if not math.isfinite(value):
                raise PydanticCustomError("finite_number", "must be a finite number")
            return value
        if isinstance(value, str):
            if not text(value):
                raise PydanticCustomError(
                    "text_length", "{least} to {limit} characters", {"least": least, "limit": limit}
                )
            return value
        if isinstance(value, dict) and value:
            unknown = [key for key in value if key not in LANGUAGES]
            if unknown:
                raise PydanticCustomError(
                    "language", "unknown language {unknown}; zh-CN or en", {"unknown": unknown}
                )
            if not all(text(t) for t in value.values()):
                raise PydanticCustomError(
                    "translated_text",
                    "each language's text is a string of {least} to {limit} characters",
                    {"least": least, "limit": limit},
                )
            return dict(value)
        also = "a number, a boolean, " if scalar else ""
        raise PydanticCustomError(
            "translatable", "must be {also}a text, or texts by language (zh-CN, en)", {"also": also}
        )

    return check


def _schema(limit: int, *, least: int = 0, scalar: bool = False) -> dict[str, Any]:
    one = {"type": "string", "minLength": least, "maxLength": limit}
    forms: list[dict[str, Any]] = [
        one,
        {
            "type": "object",
            "properties": {language: one for language in LANGUAGES},
            "additionalProperties": False,
            "minProperties": 1,
        },
    ]
    if scalar:
        forms += [{"type": "number"}, {"type": "boolean"}, {"type": "null"}]
    schema = {
        "oneOf": forms,
        "description": 'one text for every reader, or per language: {"zh-CN": ..., "en": ...}',
    }
    return schema


Translatable = Annotated[Any, PlainValidator(_check(MAX_TEXT)), WithJsonSchema(_schema(MAX_TEXT))]
TranslatableName = Annotated[
    Any,
    PlainValidator(_check(MAX_SHORT, least=1)),
    WithJsonSchema(_schema(MAX_SHORT, least=1)),
]
TranslatableValue = Annotated[
    Any,
    PlainValidator(_check(MAX_SHORT, scalar=True)),
    WithJsonSchema(_schema(MAX_SHORT, scalar=True)),
]


class _Strict(BaseModel):
    # A field the schema does not know is refused: a misspelt one would be
    # published as if it had not been said.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Requirement(_Strict):
    """A hardware requirement of the release, shown in its notes and the changelog."""

    name: TranslatableName = Field(description="what is required, e.g. memory")
    value: TranslatableValue = Field(None, description="e.g. 512, or a text")
    unit: Short | None = Field(None, description="e.g. MiB")


class ParameterChange(_Strict):
    """A changed parameter default; `operator_action` makes the device wait for
    the operator's acknowledgement."""

    name: Name = Field(description="the parameter's name on the device")
    old_default: Scalar = None
    new_default: Scalar = None
    unit: Short | None = None
    operator_action: StrictBool = Field(False, description="the operator must act before it")
    action: Translatable | None = Field(None, description="what the operator must do")


class ReleaseMetadata(_Strict):
    """The `metadata` part of a publish: what the release is and what its notes say."""

    # 64: what every table keeps of a version (releases, devices, install events).
    version: Annotated[StrictStr, Field(min_length=1, max_length=MAX_VERSION)] = Field(
        description="semantic version, e.g. 2.1.0 or 2.1.0-rc.1"
    )
    filename: Short | None = Field(None, description="default: the artifact part's file name")
    channels: list[Name] | None = Field(None, description="default: the product's lowest channel")
    hardware_revisions: list[Name] | None = Field(
        None, description="default: every revision of the product"
    )
    min_from_version: Annotated[StrictStr, Field(max_length=MAX_VERSION)] | None = Field(
        None, description="the lowest version it installs from"
    )
    security_fix: StrictBool = False
    notes: Texts = Field(default_factory=dict, description="Markdown, per language")
    guidance: dict[GuidanceKind, Texts] = Field(
        default_factory=dict, description="installation, operation and maintenance guidance"
    )
    requirements: list[Requirement] = Field(default_factory=list)
    parameters: list[ParameterChange] = Field(default_factory=list)


def json_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a JSON path: parameters[0].operator_acton."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "[key]":
            path += f".{part}" if path else str(part)
    return path or "metadata"


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "literal_error" and error["loc"][-1:] == ("[key]",):
        return f"unknown key; {error['ctx']['expected']}"
    return str(error["msg"])


def parse_metadata(data: Any) -> ReleaseMetadata:
    """The publisher's metadata, typed. Raises InvalidInputError naming each
    bad or unknown field by its JSON path."""
    if not isinstance(data, dict):
        raise InvalidInputError(
            "the release description is invalid",
            [{"field": "metadata", "message": "must be a JSON object"}],
        )
    # null means "not given" for every field, as it did before types were checked.
    given = {key: value for key, value in data.items() if value is not None}
    try:
        return ReleaseMetadata.model_validate(given)
    except PydanticValidationError as exc:
        raise InvalidInputError(
            "the release description is invalid",
            [
                {"field": json_path(error["loc"]), "message": _message(error)}
                for error in exc.errors(include_url=False, include_input=False)
            ],
        ) from exc


def metadata_json_schema() -> dict[str, Any]:
    """ReleaseMetadata and the models it uses, as OpenAPI 3.1 component schemas."""
    schema = ReleaseMetadata.model_json_schema(ref_template="#/components/schemas/{model}")
    components: dict[str, Any] = schema.pop("$defs", {})
    components["ReleaseMetadata"] = schema
    return components


def translated(value: Any, lang: str) -> Any:
    """A text of the metadata as a reader of `lang` reads it: a per-language
    text in that language (else the other), anything else as it is."""
    if isinstance(value, dict):
        return value.get(lang) or next((t for t in value.values() if t), "")
    return value
