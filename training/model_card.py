"""``docs/model-card.md``, written by training from the numbers training wrote.

Nothing here is typed by hand that training measures: the metrics come from the manifest and
``reports/model_comparison.json``, the money from ``reports/economics.json``, the fairness tables
and the age treatment from ``reports/fairness.json`` (the same renderer as ``reports/fairness.md``),
the policy and versions from the manifest. What is prose is what no run can measure: who the model
is for, what it is not fit for, and the data's known flaws (``data/README.md`` has their sources).
The same inputs give the same bytes (``tests/training/test_fairness.py`` checks it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from credit_api import age_rule
from credit_api.manifest import MANIFEST_FILE, Manifest

from training import comparison, economics, fairness
from training.data import ROOT

CARD = ROOT / "docs" / "model-card.md"

_INTENDED = [
    "- **Use**: decision support for consumer instalment-credit applications at the bank's credit desk:"
    " for each application, the probability of default, a decision (approve, review, decline), a score,"
    " a grade, and for review and decline the principal reasons an adverse action notice needs.",
    "- **Users**: the bank's credit officers, through the web page or the API; the risk team, who read"
    " decisions and record outcomes. A `review` is referred to a credit officer, who decides.",
    "- **Inputs**: the 16 schema inputs (`GET /model`), within the schema's codes and bounds. Sex,"
    " marital status and national origin are not inputs; age is accepted but not used by the model.",
]
_UNFIT = [
    "- Automated declines without a person able to review them and an adverse action notice.",
    "- Applicants, products or economies unlike the data: other countries, business or mortgage loans,"
    " amounts or terms outside the schema's bounds, or today's money without revalidation (the loans are"
    " of 1973-75, in Deutsche Mark).",
    "- Pricing, credit limits, marketing or collections, and any decision outside credit (employment,"
    " insurance, housing): the model was neither built nor validated for them.",
    "- Reading probabilities as the bank's default rates without the population correction: the sample"
    " oversamples defaults (below).",
    "- Any use of sex, marital status, national origin or age to treat applicants differently.",
]
_FLAWS = [
    "- **Defaults oversampled**: {default_rate:.0%} of the sample defaulted; the real 1973-75 book's share"
    " was much lower (Grömping 2019). The policy corrects probabilities to an assumed population rate of"
    " {population:.0%} before deciding; that rate is an assumption, and `reports/economics.md` shows how"
    " the results move with it.",
    "- **Credit-history labels permuted**: the UCI labels of `credit_history` do not match the original"
    " coding (Grömping 2019; the default rates agree with her: 62% for `none_or_all_repaid`, 17% for"
    " `critical`). The model learns from outcomes either way; the labels people see and the reason texts"
    " inherit the doubt.",
    "- **Deutsche Mark of 1973-75**: amounts are fifty years old; the data suit a demonstration of method,"
    " not a live credit policy.",
    "- **Small groups**: {smallest} are too few for firm conclusions by group; `percent_of_income` is"
    " a band whose direction is disputed; several inputs are coarse bands.",
]


def _load(reports_dir: Path, name: str) -> dict[str, Any]:
    return json.loads((reports_dir / name).read_text())


def render(
    manifest: Manifest,
    comparison_result: Mapping[str, Any],
    economics_result: Mapping[str, Any],
    fairness_result: Mapping[str, Any],
) -> str:
    """The card's markdown from the four inputs alone."""
    cv = comparison_result["champion_cv"]
    protocol = comparison_result["protocol"]
    lines = [
        "# Model card: loan-default model",
        "",
        f"Model `{manifest.model_version}` ({manifest.algorithm}), trained {manifest.created_at:%Y-%m-%d}."
        " Written by `make train` (`training/model_card.py`) from the manifest and `reports/*.json`;"
        " do not edit by hand.",
        "",
        "## Intended use and users",
        "",
        *_INTENDED,
        "",
        "## Uses it is not fit for",
        "",
        *_UNFIT,
        "",
        "## Data and its known flaws",
        "",
        f"`data/credit.csv` (sha256 `{manifest.training_data_sha256[:16]}...`): the UCI Statlog German"
        f" Credit data, {fairness_result['n']} loans of a German bank, 1973-75, CC BY 4.0; provenance and"
        " caveats in `data/README.md`.",
        "",
        *(
            line.format(
                default_rate=fairness_result["default_rate"],
                population=manifest.policy.population_default_rate or fairness_result["default_rate"],
                smallest=fairness.smallest_groups(fairness_result),
            )
            for line in _FLAWS
        ),
        "",
        "## Metrics",
        "",
        _metrics_intro(protocol, manifest),
        "",
        "| metric | mean over folds | sd across folds | one fold's likely range (mean ± 2 sd) |",
        "|---|---:|---:|---|",
        *(_metric_row(name, cv[name]) for name in ("roc_auc", "gini", "ks", "accuracy", "brier")),
        "",
        *_economics_lines(economics_result),
        "",
        "## Fairness",
        "",
        "The served decisions by group (out-of-fold, through the served policy and the age rule; method,"
        " treatments and choice in `reports/fairness.md`):",
        "",
        *fairness.group_markdown(fairness_result["assessment"]),
        *_treatment_summary(fairness_result),
        "",
        "## Age and Regulation B",
        "",
        *_age_lines(fairness_result),
        "",
        "## Policy and its assumptions",
        "",
        *_policy_lines(manifest),
        "",
        "## Versions",
        "",
        *_version_lines(manifest),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _metrics_intro(protocol: Mapping[str, Any], manifest: Manifest) -> str:
    return (
        f"Out-of-fold, nested stratified {protocol['outer_splits']}-fold CV x {protocol['outer_repeats']}"
        f" repeats ({protocol['outer_folds']} outer folds), seed {protocol['seed']}; no number was tuned on."
        f" Champion rule: {comparison.RULE}"
        f" Calibrated: {'yes' if manifest.extra.get('calibrated') else 'no'}."
    )


def _metric_row(name: str, summary: Mapping[str, float]) -> str:
    mean, sd = summary["mean"], summary["std"]
    return f"| {name} | {mean:.4f} | {sd:.4f} | {mean - 2 * sd:.3f}-{mean + 2 * sd:.3f} |"


def _economics_lines(result: Mapping[str, Any]) -> list[str]:
    point, ci, scaled = result["point"], result["ci"], result["scaled"]

    def interval(key: str, fmt: str) -> str:
        low, high = ci.get(key, [None, None])
        return "" if low is None else f" ({fmt.format(low)}-{fmt.format(high)})"

    return [
        f"The policy on out-of-fold predictions (bootstrap 95% intervals, {result['resamples']} resamples,"
        f" {result['weighting']}):",
        "",
        f"- approval rate {point['approval_rate']:.1%}{interval('approval_rate', '{:.1%}')}, review rate"
        f" {point['review_rate']:.1%}{interval('review_rate', '{:.1%}')}, decline rate"
        f" {point['decline_rate']:.1%}{interval('decline_rate', '{:.1%}')};",
        f"- defaulters not booked {point['share_of_defaulters_declined']:.1%}"
        f"{interval('share_of_defaulters_declined', '{:.1%}')}; default rate among the booked"
        f" {point['default_rate_booked']:.2%}{interval('default_rate_booked', '{:.2%}')} against"
        f" {point['default_rate_baseline']:.2%} approving everyone;",
        f"- net savings against approving everyone {scaled['net_savings_annual']:,.0f} DM a year"
        f" ({scaled['net_savings_annual_ci'][0]:,.0f} to {scaled['net_savings_annual_ci'][1]:,.0f}) at"
        f" {result['policy']['annual_applications']:,} applications a year"
        " (details: `reports/economics.md`).",
    ]


def _treatment_summary(result: Mapping[str, Any]) -> list[str]:
    rows = {row["name"]: row for row in result["treatments"]}
    served = rows[result["served"]]
    lines = [
        f"Age treatment served: **{served['label']}**, chosen among {len(rows)} options evaluated side by"
        f" side: age-band approval ratio {served['age_approval_ratio']:.2f}, AUC change"
        f" {-served['auc_cost']:+.4f} (target: at least {fairness.FOUR_FIFTHS:.2f}, AUC down by at most"
        f" {fairness.AUC_BUDGET});"
        f" {'meets' if result['choice']['meets_target'] else 'does NOT meet'} the target.",
    ]
    if "as_is" in rows:
        lines[0] += f" With age as an input the ratio was {rows['as_is']['age_approval_ratio']:.2f}."
    return lines


def _age_lines(result: Mapping[str, Any]) -> list[str]:
    lines = [
        f"- No applicant aged {age_rule.AGE_PROTECTED_FROM} or more gets a higher probability of default,"
        " and so a worse decision, score or grade, than the same applicant at any younger age (12 CFR"
        " 1002.6(b)(2)). The model does not use age, so this holds by construction: the export checked that"
        " every training row and 1,000 generated applicants get exactly the same probability at every age"
        " from 18 to 100, and the manifest says `age_invariant: true`, which the function checks again at"
        " load. For any model without that claim the function enforces the rule"
        " (`credit_api.age_rule`: each such applicant is also scored at every younger age in the same"
        " onnxruntime run, and the least probability is served).",
        "- Age is never a reason against an applicant aged 62+ (`credit_api.reasons`), and with age unused"
        " it is never a reason against anyone.",
    ]
    latency = result.get("latency")
    if latency:
        before, after = latency["age_75_model"]["p50_ms"], latency["age_75_with_rule"]["p50_ms"]
        lines.append(
            f"- Cost of the guard, for a model that needs it, on one request for an applicant aged 75: model"
            f" run p50 {before:.3f} ms without, {after:.3f} ms with (younger applicants: no extra rows); the"
            " served model skips it."
        )
    return lines


_POLICY_NOTES = {
    "loss_given_default": "share of the amount lost on a bad loan (Basel foundation-IRB senior unsecured)",
    "annual_margin": "net interest margin a year on the amount (1970s instalment credit, assumed)",
    "review_band": "refer when the probability is within this share of the break-even probability",
    "sample_default_rate": "default rate of the training sample",
    "population_default_rate": "assumed default rate of the bank's applicants (the correction's target)",
    "annual_applications": "applications a year, to scale money (assumed)",
}


def _policy_lines(manifest: Manifest) -> list[str]:
    policy = manifest.policy.model_dump()
    scale = manifest.score_scale
    lines = [
        "Approve when the corrected probability of default is below the loan's break-even"
        " p* = g / (g + LGD), with g = margin x months / 12; decline above it; review within the band."
        " Reasons for every value: `training/config.py`.",
        "",
        "| assumption | value | what |",
        "|---|---|---|",
    ]
    lines += [f"| `{name}` | {value} | {_POLICY_NOTES.get(name, '')} |" for name, value in policy.items()]
    lines += [
        "",
        f"Score: {scale.base_score:g} points at good:bad odds of {scale.base_odds:g}:1,"
        f" {scale.points_to_double_odds:g} points per doubling of the odds; grades A-E by"
        f" {scale.points_to_double_odds:g}-point bands from {scale.base_score:g} down.",
    ]
    return lines


def _version_lines(manifest: Manifest) -> list[str]:
    lines = [
        f"- model `{manifest.model_version}`, ONNX sha256 `{manifest.onnx_sha256[:16]}...`, opset"
        f" {manifest.onnx_opset}, schema hash `{manifest.schema_hash[:16]}...`",
        f"- hyperparameters: `{json.dumps(manifest.extra.get('params', {}), sort_keys=True)}`",
    ]
    lines += [f"- {name} {version}" for name, version in sorted(manifest.package_versions.items())]
    return lines


def write(reports_dir: Path, manifest: Manifest, card: Path = CARD) -> Path:
    """Render from ``reports_dir``'s JSON files and write ``card``; the same inputs, the same bytes."""
    text = render(
        manifest,
        _load(reports_dir, comparison.RESULT),
        _load(reports_dir, economics.RESULT_FILE),
        _load(reports_dir, fairness.RESULT),
    )
    card.parent.mkdir(parents=True, exist_ok=True)
    card.write_text(text)
    return card


def rerender(reports_dir: Path, model_dir: Path, card: Path = CARD) -> Path:
    """Re-render ``reports/fairness.md`` and the card from the JSON training wrote, without training."""
    manifest = Manifest.model_validate_json((model_dir / MANIFEST_FILE).read_text())
    fairness.write(_load(reports_dir, fairness.RESULT), reports_dir)
    return write(reports_dir, manifest, card)
