"""Derive ``data/credit.csv`` from the UCI Statlog German Credit file, and load it.

The raw file spells categories out in the UCI documentation's words; the
project uses the schema's short codes. The mapping below is the only place
that knows the raw words, so the derivation is deterministic and reviewable.
Four raw attributes are dropped: ``personal_status_and_sex`` and
``foreign_worker`` (sex, marital status and national origin may not be credit
factors) and ``other_debtors_or_guarantors``, ``property``.

Run ``credit data`` to (re)build the file from the raw copy in ``data/raw/``, which
ships in the repository (CC BY 4.0) so the derivation and its tests run from a plain clone.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
from credit_api.schema import CATEGORICAL, COLUMNS, FEATURE_NAMES, NUMERIC, TARGET, Applicant
from pydantic import ValidationError

ROOT = Path(__file__).resolve().parents[1]
RAW_CSV = ROOT / "data" / "raw" / "germancredit.csv"
"""The UCI file as obtained, committed byte for byte; ``data/raw/README.md`` says where from."""
CREDIT_CSV = ROOT / "data" / "credit.csv"
RAW_SHA256 = "2c0bae00275c028fc853a1ea72cc7a68002c3f6876c41300c5c948711540c8c6"

RENAME: dict[str, str] = {
    "status_of_existing_checking_account": "checking_balance",
    "duration_in_month": "months_loan_duration",
    "credit_history": "credit_history",
    "purpose": "purpose",
    "credit_amount": "amount",
    "savings_account_and_bonds": "savings_balance",
    "present_employment_since": "employment_duration",
    "installment_rate_in_percentage_of_disposable_income": "percent_of_income",
    "present_residence_since": "years_at_residence",
    "age_in_years": "age",
    "other_installment_plans": "other_credit",
    "housing": "housing",
    "number_of_existing_credits_at_this_bank": "existing_loans_count",
    "job": "job",
    "number_of_people_being_liable_to_provide_maintenance_for": "dependents",
    "telephone": "phone",
}
DROPPED = ("personal_status_and_sex", "foreign_worker", "other_debtors_or_guarantors", "property")

RAW_TO_CODE: dict[str, dict[str, str]] = {
    "checking_balance": {
        "... < 0 DM": "lt_0",
        "0 <= ... < 200 DM": "0_to_200",
        "... >= 200 DM / salary assignments for at least 1 year": "ge_200",
        "no checking account": "none",
    },
    "credit_history": {
        "critical account/ other credits existing (not at this bank)": "critical",
        "existing credits paid back duly till now": "repaid",
        "delay in paying off in the past": "delayed",
        "no credits taken/ all credits paid back duly": "none_or_all_repaid",
        "all credits at this bank paid back duly": "all_repaid_this_bank",
    },
    "purpose": {
        "car (new)": "car_new",
        "car (used)": "car_used",
        "furniture/equipment": "furniture",
        "radio/television": "radio_tv",
        "domestic appliances": "appliances",
        "repairs": "repairs",
        "education": "education",
        "retraining": "retraining",
        "business": "business",
        "others": "other",
    },
    "savings_balance": {
        "... < 100 DM": "lt_100",
        "100 <= ... < 500 DM": "100_to_500",
        "500 <= ... < 1000 DM": "500_to_1000",
        "... >= 1000 DM": "ge_1000",
        "unknown/ no savings account": "unknown",
    },
    "employment_duration": {
        "unemployed": "unemployed",
        "... < 1 year": "lt_1",
        "1 <= ... < 4 years": "1_to_4",
        "4 <= ... < 7 years": "4_to_7",
        "... >= 7 years": "ge_7",
    },
    "other_credit": {"none": "none", "bank": "bank", "stores": "store"},
    "housing": {"own": "own", "rent": "rent", "for free": "free"},
    "job": {
        "unemployed/ unskilled - non-resident": "unemployed_nonresident",
        "unskilled - resident": "unskilled",
        "skilled employee / official": "skilled",
        "management/ self-employed/ highly qualified employee/ officer": "management",
    },
    "phone": {"yes, registered under the customers name": "yes", "none": "no"},
}
TARGET_CODE = {"good": 0, "bad": 1}


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def derive(raw: pd.DataFrame) -> pd.DataFrame:
    """Map the raw UCI frame to the project's columns and codes; fail loudly on any unmapped value."""
    frame = raw.drop(columns=list(DROPPED)).rename(columns=RENAME)
    for column, mapping in RAW_TO_CODE.items():
        unmapped = set(frame[column]) - set(mapping)
        if unmapped:
            raise ValueError(f"{column}: raw values without a code: {sorted(unmapped)}")
        frame[column] = frame[column].map(mapping)
    frame[TARGET] = raw["creditability"].map(TARGET_CODE)
    if frame[TARGET].isna().any():
        raise ValueError("creditability must be 'good' or 'bad'")
    frame[list(NUMERIC)] = frame[list(NUMERIC)].astype("int64")
    frame[TARGET] = frame[TARGET].astype("int64")
    return frame[list(COLUMNS)]


def validate(frame: pd.DataFrame) -> None:
    """Check every row against the applicant schema, the same check a request gets."""
    if list(frame.columns) != list(COLUMNS):
        raise ValueError(f"columns {list(frame.columns)} differ from the schema's {list(COLUMNS)}")
    errors: list[str] = []
    for index, record in enumerate(frame[list(FEATURE_NAMES)].to_dict("records")):
        try:
            Applicant.model_validate({k: v if isinstance(v, str) else int(v) for k, v in record.items()})
        except ValidationError as exc:
            errors.append(f"row {index}: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}")
    if not set(frame[TARGET].unique()) <= {0, 1}:
        errors.append(f"{TARGET} must be 0 or 1")
    if errors:
        raise ValueError(f"{len(errors)} invalid rows, first: {errors[:5]}")


def load(path: Path = CREDIT_CSV) -> pd.DataFrame:
    """The project's data set, validated: categorical columns as str, numeric as int64."""
    frame = pd.read_csv(path, dtype={c: str for c in CATEGORICAL}, keep_default_na=False)
    validate(frame)
    return frame


def build(raw_csv: Path = RAW_CSV, out_csv: Path = CREDIT_CSV) -> Path:
    """Derive and write the project's copy, refusing a raw file that isn't the documented one."""
    digest = sha256_file(raw_csv)
    if digest != RAW_SHA256:
        raise ValueError(f"{raw_csv} has sha256 {digest}, expected {RAW_SHA256}")
    frame = derive(pd.read_csv(raw_csv, dtype=str, keep_default_na=False).pipe(_numeric))
    validate(frame)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_csv, index=False, lineterminator="\n")
    return out_csv


def _numeric(raw: pd.DataFrame) -> pd.DataFrame:
    numeric_raw = [raw_name for raw_name, name in RENAME.items() if name in NUMERIC]
    return raw.astype({c: "int64" for c in numeric_raw})
