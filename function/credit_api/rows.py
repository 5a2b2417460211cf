"""CSV rows as the API's validated applicants: one reading for ``credit score`` and portfolio files.

A CSV cell is text; the API takes JSON. A cell is read as the JSON value a client would send
for it, then validated by the applicant schema, so a row is accepted or refused exactly as the
same applicant sent to ``POST /predict`` would be, with the API's own field-level messages.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from credit_api.errors import field_errors
from credit_api.schema import FEATURE_NAMES, NUMERIC, Applicant, fields

JSON_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")
"""A number as JSON writes it (RFC 8259): what a numeric cell must look like to be sent as one."""


def cell(text: str | None, *, numeric: bool) -> int | float | str | None:
    """A CSV cell as the JSON value a client would send for it: a number in a numeric column if it
    is written as one (whole numbers as int, like ``4.0`` in JSON), else the text. Surrounding spaces
    are CSV layout, not data; a blank (or absent) cell is a missing input."""
    text = (text or "").strip()
    if not text:
        return None
    if not numeric or not JSON_NUMBER.fullmatch(text):
        return text
    number = float(text)
    return int(number) if math.isfinite(number) and number.is_integer() else number


def applicant_or_errors(row: Mapping[str, str | None]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(the validated applicant, []) or (None, the API's field errors) for one CSV row.

    Only the schema's inputs are read: other columns (a loan number, say) ride along untouched.
    """
    try:
        applicant = Applicant.model_validate(
            {name: cell(row.get(name), numeric=name in NUMERIC) for name in FEATURE_NAMES}
        )
    except ValidationError as exc:
        raw = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        return None, field_errors(raw)
    return dict(fields(applicant)), []
