"""What a publisher may say about a release, with its types checked.

The metadata arrives as a JSON document beside the artifact (multipart), so no
request schema sees it: this model is its schema. A value of the wrong type is
refused at publish, never stored for the release page to trip over later.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr
from pydantic import ValidationError as PydanticValidationError

from upgrade_server.errors import InvalidInputError

Language = Literal["zh-CN", "en"]
GuidanceKind = Literal["installation", "operation", "maintenance"]

Name = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Text = Annotated[StrictStr, Field(max_length=200_000)]
Short = Annotated[StrictStr, Field(max_length=200)]
Scalar = StrictStr | StrictInt | StrictFloat | StrictBool | None


class _Strict(BaseModel):
    # Unknown keys are ignored (older publishers send more), known ones are typed.
    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)


class Requirement(_Strict):
    name: Name
    value: Scalar = None
    unit: Short | None = None


class ParameterChange(_Strict):
    name: Name
    old_default: Scalar = None
    new_default: Scalar = None
    unit: Short | None = None
    operator_action: StrictBool = False
    action: Text | None = None


class ReleaseMetadata(_Strict):
    version: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    filename: Short | None = None
    channels: list[Name] | None = None
    hardware_revisions: list[Name] | None = None
    min_from_version: Short | None = None
    security_fix: StrictBool = False
    notes: dict[Language, Text] = Field(default_factory=dict)
    guidance: dict[GuidanceKind, dict[Language, Text]] = Field(default_factory=dict)
    requirements: list[Requirement] = Field(default_factory=list)
    parameters: list[ParameterChange] = Field(default_factory=list)


def parse_metadata(data: Any) -> ReleaseMetadata:
    """The publisher's metadata, typed. Raises InvalidInputError naming each bad field."""
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
                {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"]}
                for error in exc.errors(include_url=False, include_input=False)
            ],
        ) from exc
