"""data/credit.csv: its shape and checksum, its derivation from the committed UCI file, its validation."""

import re
from pathlib import Path

import pandas as pd
import pytest
from credit_api.schema import COLUMNS, FEATURE_NAMES, TARGET

from training.data import (
    CREDIT_CSV,
    DROPPED,
    RAW_CSV,
    RAW_SHA256,
    RAW_TO_CODE,
    ROOT,
    build,
    derive,
    load,
    sha256_file,
    validate,
)

README = ROOT / "data" / "README.md"
RAW_README = ROOT / "data" / "raw" / "README.md"


def documented_sha256() -> str:
    match = re.search(r"sha256 of `credit.csv`: `([0-9a-f]{64})`", README.read_text(encoding="utf-8"))
    assert match, "data/README.md must state the sha256 of credit.csv"
    return match.group(1)


def test_checksum_is_the_documented_one():
    assert sha256_file(CREDIT_CSV) == documented_sha256()


def test_shape_columns_and_default_rate():
    frame = load()
    assert frame.shape == (1000, 17)
    assert list(frame.columns) == list(COLUMNS)
    assert int(frame[TARGET].sum()) == 300
    assert not frame.isna().any().any()
    assert not set(DROPPED) & set(frame.columns)


def test_the_raw_file_ships_in_the_repository_with_its_documented_checksum():
    assert RAW_CSV.is_relative_to(ROOT), "the raw file must be in the repository, not beside it"
    documented = re.search(r"sha256: `([0-9a-f]{64})`", RAW_README.read_text(encoding="utf-8"))
    assert documented, "data/raw/README.md must state the raw file's sha256"
    assert sha256_file(RAW_CSV) == RAW_SHA256 == documented.group(1)


def test_the_raw_readme_states_the_licence_and_the_citation():
    text = RAW_README.read_text(encoding="utf-8")
    assert "CC BY 4.0" in text and "https://doi.org/10.24432/C5NC77" in text


def test_derivation_from_the_uci_file_reproduces_credit_csv(tmp_path):
    out = build(RAW_CSV, tmp_path / "credit.csv")
    assert out.read_bytes() == CREDIT_CSV.read_bytes()


def test_build_refuses_a_raw_file_that_is_not_the_documented_one(tmp_path):
    altered = tmp_path / "germancredit.csv"
    altered.write_bytes(RAW_CSV.read_bytes().replace(b",67,", b",68,", 1))
    with pytest.raises(ValueError, match="sha256"):
        build(altered, tmp_path / "credit.csv")


def test_an_unmapped_raw_label_is_an_error():
    raw = pd.read_csv(RAW_CSV, dtype=str, keep_default_na=False)
    raw.loc[3, "purpose"] = "vacation"
    with pytest.raises(ValueError, match="purpose: raw values without a code: \\['vacation'\\]"):
        derive(raw)


@pytest.mark.parametrize(
    "column,value,message",
    [
        ("age", 17, "age"),
        ("purpose", "vacation", "purpose"),
        ("months_loan_duration", 73, "months_loan_duration"),
    ],
)
def test_validation_rejects_rows_outside_the_schema(column, value, message):
    frame = load()
    frame[column] = frame[column].astype(object)
    frame.loc[10, column] = value
    with pytest.raises(ValueError, match=f"row 10: \\('{message}',\\)"):
        validate(frame)


def test_validation_rejects_a_label_other_than_0_or_1():
    frame = load()
    frame.loc[0, TARGET] = 2
    with pytest.raises(ValueError, match="default must be 0 or 1"):
        validate(frame)


def test_validation_rejects_missing_or_reordered_columns():
    frame = load()
    with pytest.raises(ValueError, match="differ from the schema"):
        validate(frame[[*reversed(FEATURE_NAMES), TARGET]])


def test_readme_mapping_is_the_code_mapping():
    rows = re.findall(
        r"^\| (.+?) \| `([a-z0-9_]+)` \| .+ \|$", README.read_text(encoding="utf-8"), re.MULTILINE
    )
    documented = {(raw, code) for raw, code in rows}
    coded = {(raw, code) for mapping in RAW_TO_CODE.values() for raw, code in mapping.items()}
    assert documented == coded


def test_credit_csv_is_committed_with_unix_newlines():
    assert b"\r\n" not in Path(CREDIT_CSV).read_bytes()
