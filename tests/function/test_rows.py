"""credit_api.rows: a CSV row read as the JSON a client would send, then the applicant schema."""

from __future__ import annotations

from credit_api.rows import applicant_or_errors, cell
from credit_api.schema import EXAMPLE_APPLICANT


def test_cells_become_the_json_values_a_client_would_send() -> None:
    assert cell(" 2500.0 ", numeric=True) == 2500  # whole numbers as int, as 2500.0 is in JSON
    assert cell("2500.5", numeric=True) == 2500.5
    assert cell("2_500", numeric=True) == "2_500"  # Python's int() takes it; JSON does not
    assert cell("1e3", numeric=True) == 1000
    assert cell("  ", numeric=True) is None and cell(None, numeric=False) is None
    assert cell("007", numeric=True) == "007"  # not a JSON number: left as text, refused below
    assert cell(" lt_0 ", numeric=False) == "lt_0"


def test_a_row_is_accepted_or_refused_with_the_apis_messages_and_other_columns_ride_along() -> None:
    row = {k: str(v) for k, v in EXAMPLE_APPLICANT.items()} | {"loan_ref": "L1"}
    assert applicant_or_errors(row) == (EXAMPLE_APPLICANT, [])
    applicant, errors = applicant_or_errors({**row, "age": "007", "phone": ""})
    assert applicant is None
    assert [(e["field"], e["message"]) for e in errors] == [
        ("age", "age must be a whole number from 18 to 100 (years); got '007'"),
        (
            "phone",
            "phone must be one of 'yes' (Yes, registered in the applicant's name), 'no' (No); got None",
        ),
    ]
