"""The applicant contract: what it accepts, what it rejects, and that it stays one definition."""

import pytest
from credit_api.schema import (
    BY_NAME,
    CATEGORICAL,
    EXAMPLE_APPLICANT,
    FEATURE_NAMES,
    NUMERIC,
    Applicant,
    describe,
    schema_hash,
)
from pydantic import ValidationError


def test_sixteen_inputs_and_no_protected_attributes():
    assert len(FEATURE_NAMES) == 16
    assert set(CATEGORICAL) | set(NUMERIC) == set(FEATURE_NAMES)
    for forbidden in ("personal_status_and_sex", "foreign_worker", "sex", "nationality"):
        assert forbidden not in FEATURE_NAMES


def test_example_applicant_is_valid():
    assert Applicant.model_validate(EXAMPLE_APPLICANT).model_dump() == EXAMPLE_APPLICANT


def test_unknown_field_is_rejected():
    with pytest.raises(ValidationError) as info:
        Applicant.model_validate({**EXAMPLE_APPLICANT, "sex": "female"})
    assert info.value.errors()[0]["type"] == "extra_forbidden"


def test_missing_field_is_rejected():
    body = dict(EXAMPLE_APPLICANT)
    del body["age"]
    with pytest.raises(ValidationError) as info:
        Applicant.model_validate(body)
    assert info.value.errors()[0]["loc"] == ("age",)


@pytest.mark.parametrize("age,ok", [(17, False), (18, True), (100, True), (101, False)])
def test_age_bounds(age, ok):
    body = {**EXAMPLE_APPLICANT, "age": age}
    if ok:
        Applicant.model_validate(body)
    else:
        with pytest.raises(ValidationError):
            Applicant.model_validate(body)


@pytest.mark.parametrize("value", ["3000", 3000.5, True, None])
def test_numeric_inputs_are_strict(value):
    with pytest.raises(ValidationError):
        Applicant.model_validate({**EXAMPLE_APPLICANT, "amount": value})


def test_unknown_code_lists_allowed_codes():
    with pytest.raises(ValidationError) as info:
        Applicant.model_validate({**EXAMPLE_APPLICANT, "housing": "castle"})
    message = info.value.errors()[0]["msg"]
    for code in BY_NAME["housing"].codes:
        assert code in message


def test_openapi_schema_carries_labels_and_bounds():
    schema = Applicant.model_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["properties"]["age"]["minimum"] == 18
    assert schema["properties"]["housing"]["x-codes"]["own"] == "Owns their home"


def test_schema_hash_ignores_wording_but_not_codes(monkeypatch):
    import credit_api.schema as schema

    before = schema_hash()
    reworded = tuple(schema.Feature(**{**vars(f), "description": "reworded"}) for f in schema.FEATURES)
    monkeypatch.setattr(schema, "FEATURES", reworded)
    assert schema_hash() == before
    recoded = (schema.Feature(**{**vars(reworded[0]), "codes": {"x": "y"}}), *reworded[1:])
    monkeypatch.setattr(schema, "FEATURES", recoded)
    assert schema_hash() != before


def test_describe_lists_every_input_in_order():
    assert [d["name"] for d in describe()] == list(FEATURE_NAMES)
