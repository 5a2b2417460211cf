"""The credit officers' page in headless Chromium, against the real app.

Each test drives the page like an officer would and checks what it shows against the
API's own answer for the same applicant (asked directly with httpx).
"""

from __future__ import annotations

import copy
import csv
import io
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from credit_api.schema import FEATURE_NAMES, NUMERIC
from playwright.sync_api import Page, Route

from tests.web.conftest import PHONE, ROOT, SCREENSHOTS, STAGE_API_KEY

pytestmark = pytest.mark.slow

WORDS = {"approve": "Approve", "review": "Refer for review", "decline": "Decline"}
DATA = ROOT / "data" / "credit.csv"


def data_rows() -> list[dict[str, str]]:
    with DATA.open(newline="") as f:
        return list(csv.DictReader(f))


def applicant_of(row: dict[str, str]) -> dict[str, Any]:
    return {name: int(row[name]) if name in NUMERIC else row[name] for name in FEATURE_NAMES}


@pytest.fixture(scope="module")
def card(app_url: str) -> dict[str, Any]:
    response = httpx.get(f"{app_url}/model")
    assert response.status_code == 200
    return response.json()


@pytest.fixture(scope="module")
def by_decision(app_url: str) -> dict[str, dict[str, Any]]:
    """The first applicant of the data set for each decision the current model makes."""
    applicants = [applicant_of(row) for row in data_rows()]
    response = httpx.post(f"{app_url}/predict/batch", json={"applicants": applicants}, timeout=30)
    assert response.status_code == 200, response.text
    found: dict[str, dict[str, Any]] = {}
    for applicant, result in zip(applicants, response.json()["results"], strict=True):
        found.setdefault(result["decision"], applicant)
    return found


def open_form(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#score-button:enabled")


def fill(page: Page, applicant: dict[str, Any]) -> None:
    for name, value in applicant.items():
        selector = f"#f-{name}"
        if page.locator(selector).evaluate("e => e.tagName") == "SELECT":
            page.select_option(selector, str(value))
        else:
            page.fill(selector, str(value))


def shown_result(page: Page) -> dict[str, Any]:
    page.wait_for_selector("#result-body:not([hidden])")
    return {
        "decision": page.get_attribute("#result-body", "data-decision"),
        "word": page.inner_text("#decision-word"),
        "probability": float(page.get_attribute("#r-probability", "data-value") or "nan"),
        "probability_text": page.inner_text("#r-probability"),
        "score": page.inner_text("#r-score"),
        "grade": page.inner_text("#r-grade"),
        "reasons": page.locator("#r-reasons li").all_inner_texts(),
        "model_version": page.inner_text("#r-model"),
        "decision_id": page.inner_text("#r-id"),
    }


def loosen(card: dict[str, Any], **changes: dict[str, Any]) -> Callable[[Route], None]:
    """A route handler serving the model card with some inputs' rules relaxed, so that the
    page's own checks let a bad value through and the API has to reject it."""
    relaxed = copy.deepcopy(card)
    for item in relaxed["inputs"]:
        for key, value in changes.get(item["name"], {}).items():
            item[key] = {**item[key], **value} if isinstance(value, dict) else value

    def handle(route: Route) -> None:
        route.fulfill(status=200, content_type="application/json", body=json.dumps(relaxed))

    return handle


def rgb(page: Page, selector: str, prop: str) -> tuple[int, ...]:
    value = page.locator(selector).evaluate(f"e => getComputedStyle(e).{prop}")
    return tuple(int(float(part)) for part in value[value.index("(") + 1 : -1].split(",")[:3])


def test_form_is_built_from_the_model_card(app_url, card, new_page):
    page = new_page()
    open_form(page, f"{app_url}/")
    inputs = card["inputs"]
    assert [i["name"] for i in inputs] == list(FEATURE_NAMES)
    assert page.locator("#fields .field").count() == len(inputs) == 16
    for item in inputs:
        control = page.locator(f"#f-{item['name']}")
        assert item["label"] in page.inner_text(f"label[for='f-{item['name']}']")
        described = (control.get_attribute("aria-describedby") or "").split()
        assert item["description"] in page.inner_text(f"#{described[0]}")
        if item["type"] == "categorical":
            options = control.locator("option")
            assert options.evaluate_all("os => os.map(o => o.value)") == list(item["codes"])
            assert options.all_inner_texts() == list(item["codes"].values())
        else:
            assert control.get_attribute("type") == "number"
            assert control.get_attribute("min") == str(item["minimum"])
            assert control.get_attribute("max") == str(item["maximum"])
        assert control.input_value() == str(item["default"])
    assert card["model_version"] in page.inner_text("#model-info")


@pytest.mark.parametrize("decision", ["approve", "review", "decline"])
def test_decision_shown_is_the_apis_and_is_recorded(app_url, by_decision, new_page, decision):
    if decision not in by_decision:
        pytest.skip(f"the current model makes no {decision!r} decision on the data set")
    applicant = by_decision[decision]
    page = new_page()
    open_form(page, f"{app_url}/")
    fill(page, applicant)
    page.click("#score-button")
    shown = shown_result(page)
    expected = httpx.post(f"{app_url}/predict", json=applicant).json()

    assert shown["decision"] == expected["decision"] == decision
    assert shown["word"] == WORDS[decision]
    red, green, blue = rgb(page, "#decision", "borderTopColor")
    assert {"approve": green > red, "review": red > blue and green > blue, "decline": red > green}[decision]
    assert shown["probability"] == pytest.approx(expected["probability_of_default"], abs=1e-12)
    assert float(shown["probability_text"].rstrip("%")) == pytest.approx(
        100 * expected["probability_of_default"], abs=0.051
    )
    assert shown["score"] == str(expected["score"])
    assert shown["grade"] == str(expected["risk_grade"])
    assert len(shown["reasons"]) == len(expected["reasons"])
    for text, reason in zip(shown["reasons"], expected["reasons"], strict=True):
        assert reason["message"] in text
    assert page.is_visible("#r-no-reasons") == (not expected["reasons"])
    assert shown["model_version"] == expected["model_version"]

    record = httpx.get(f"{app_url}/decisions/{shown['decision_id']}")
    assert record.status_code == 200
    assert record.json()["inputs"] == applicant
    assert record.json()["probability_of_default"] == pytest.approx(shown["probability"], abs=1e-12)


def test_form_works_by_keyboard_alone(app_url, card, new_page):
    page = new_page()
    open_form(page, f"{app_url}/")
    order = []
    for _ in range(60):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id")
        order.append(focused)
        if focused == "f-age":
            page.keyboard.press("Control+A")
            page.keyboard.type("64")
        if focused == "f-housing":
            page.keyboard.press("ArrowDown")
        if focused == "score-button":
            break
    fields = [f"f-{name}" for name in FEATURE_NAMES]
    assert [f for f in order if f.startswith("f-")] == fields, "every field, in schema order"
    housing = next(i for i in card["inputs"] if i["name"] == "housing")
    codes = list(housing["codes"])
    with page.expect_request("**/predict") as sent:
        page.keyboard.press("Enter")
    body = sent.value.post_data_json
    assert body["age"] == 64
    assert body["housing"] == codes[codes.index(housing["default"]) + 1]
    assert shown_result(page)["decision"] in WORDS
    assert page.evaluate("document.activeElement.id") == "result-title"


def test_bad_values_are_shown_next_to_their_fields_before_sending(app_url, new_page):
    page = new_page()
    open_form(page, f"{app_url}/")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
    page.fill("#f-age", "17")
    page.fill("#f-amount", "")
    page.click("#score-button")

    for name, words in (("age", "18"), ("amount", "Required")):
        error = page.locator(f"#f-{name}-field .field-error")
        assert error.is_visible() and words in error.inner_text()
        assert page.get_attribute(f"#f-{name}", "aria-invalid") == "true"
        assert f"f-{name}-error" in (page.get_attribute(f"#f-{name}", "aria-describedby") or "")
    assert page.locator(".field-error:visible").count() == 2
    assert "2 fields" in page.inner_text("#form-error")
    assert page.evaluate("document.activeElement.id") == "f-amount", "the first invalid field in form order"
    assert not sent
    assert page.is_visible("#result-placeholder")
    page.screenshot(path=SCREENSHOTS / "field-errors-viewport.png")

    page.fill("#f-age", "18")
    page.fill("#f-amount", "1500")
    page.click("#score-button")
    shown_result(page)
    assert page.locator(".field-error:visible").count() == 0
    assert sent


def test_api_validation_error_is_shown_next_to_the_field(app_url, card, new_page):
    page = new_page()
    page.route("**/model", loosen(card, age={"minimum": 0}))
    open_form(page, f"{app_url}/")
    page.fill("#f-age", "17")
    with page.expect_response("**/predict") as answer:
        page.click("#score-button")
    assert answer.value.status == 422

    applicant = {i["name"]: i["default"] for i in card["inputs"]} | {"age": 17}
    api = httpx.post(f"{app_url}/predict", json=applicant)
    assert api.status_code == 422
    (expected,) = api.json()["errors"]
    error = page.locator("#f-age-field .field-error")
    error.wait_for(state="visible")
    assert error.inner_text() == expected["message"]
    assert page.get_attribute("#f-age", "aria-invalid") == "true"
    assert page.locator(".field-error:visible").count() == 1
    assert page.is_visible("#result-placeholder"), "no decision shown for a rejected application"


def write_csv(header: list[str], rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def upload_and_score(page: Page, name: str, content: bytes) -> None:
    page.set_input_files("#batch-file", files=[{"name": name, "mimeType": "text/csv", "buffer": content}])
    page.click("#batch-button")
    page.wait_for_selector("#batch-output:not([hidden])")


def download_results(page: Page) -> list[dict[str, str]]:
    with page.expect_download() as info:
        page.click("#download-button")
    assert info.value.suggested_filename.endswith("-scored.csv")
    with open(info.value.path(), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_batch_upload_round_trips_with_bad_rows_listed(app_url, new_page):
    rows = [{"id": f"A-{n:03d}", **row} for n, row in enumerate(data_rows()[:30], start=1)]
    rows[0]["id"] = 'Smith, "Jo"'  # quoting survives the round trip
    rows[4]["age"] = "17"
    rows[8]["purpose"] = "yacht"
    rows[11]["amount"] = ""
    bad = {5: "age", 9: "purpose", 12: "amount"}
    header = ["id", *FEATURE_NAMES, "default"]
    page = new_page()
    open_form(page, f"{app_url}/")
    upload_and_score(page, "applicants.csv", write_csv(header, rows))

    assert page.locator("#batch-rows tr").count() == 30
    assert page.locator("#batch-rows tr.not-scored").count() == len(bad)
    listed = page.locator("#batch-invalid-list li").all_inner_texts()
    assert len(listed) == len(bad)
    for text, (row, field) in zip(listed, bad.items(), strict=True):
        assert text.startswith(f"Row {row} (line {row + 1}):") and field in text
    assert "27 scored" in page.inner_text("#batch-summary")

    results = download_results(page)
    assert len(results) == 30
    assert list(results[0])[: len(header) + 1] == ["row", *header]
    valid = [(n, row) for n, row in enumerate(rows, start=1) if n not in bad]
    api = httpx.post(
        f"{app_url}/predict/batch", json={"applicants": [applicant_of(r) for _, r in valid]}, timeout=30
    ).json()["results"]
    for (n, row), expected in zip(valid, api, strict=True):
        got = results[n - 1]
        assert got["row"] == str(n)
        assert {k: got[k] for k in header} == row, "every input and extra column is kept as sent"
        assert got["decision"] == expected["decision"]
        assert float(got["probability_of_default"]) == pytest.approx(
            expected["probability_of_default"], abs=1e-12
        )
        assert got["score"] == str(expected["score"])
        assert got["risk_grade"] == str(expected["risk_grade"])
        assert got["reasons"] == " | ".join(r["message"] for r in expected["reasons"])
        assert got["model_version"] == expected["model_version"]
        assert got["error"] == ""
    for n, field in bad.items():
        got = results[n - 1]
        assert got["decision"] == got["decision_id"] == ""
        assert got["error"].startswith(f"{field}:")
        assert {k: got[k] for k in header} == rows[n - 1]
    ids = [results[n - 1]["decision_id"] for n, _ in valid]
    assert len(set(ids)) == len(ids)
    for decision_id in ids[:3]:
        assert httpx.get(f"{app_url}/decisions/{decision_id}").status_code == 200


def test_batch_rows_the_api_rejects_are_listed_and_the_rest_scored(app_url, card, new_page):
    purpose = next(i for i in card["inputs"] if i["name"] == "purpose")
    page = new_page()
    page.route("**/model", loosen(card, age={"minimum": 0}, purpose={"codes": {"yacht": "Yacht"}}))
    open_form(page, f"{app_url}/")
    rows = data_rows()[:12]
    rows[2]["age"] = "16"
    rows[6]["purpose"] = "yacht"
    assert "yacht" not in purpose["codes"]
    with page.expect_response("**/predict/batch") as first:
        upload_and_score(
            page, "api-rejects.csv", write_csv([*FEATURE_NAMES], [applicant_row(r) for r in rows])
        )
    assert first.value.status == 422

    listed = page.locator("#batch-invalid-list li").all_inner_texts()
    assert len(listed) == 2
    for text, n in zip(listed, (3, 7), strict=True):
        single = httpx.post(f"{app_url}/predict", json=applicant_of(rows[n - 1]))
        assert single.status_code == 422
        assert text == f"Row {n} (line {n + 1}): {single.json()['errors'][0]['message']}"
    results = download_results(page)
    scored = [r for r in results if r["decision"]]
    assert len(scored) == 10
    for got in scored:
        expected = httpx.post(f"{app_url}/predict", json=applicant_of(got)).json()
        assert float(got["probability_of_default"]) == pytest.approx(
            expected["probability_of_default"], abs=1e-12
        )


def applicant_row(row: dict[str, str]) -> dict[str, str]:
    return {name: row[name] for name in FEATURE_NAMES}


@pytest.mark.parametrize("path", ["", "/"], ids=["stage-without-slash", "stage-with-slash"])
def test_page_works_under_a_stage_path_with_an_api_key(stage_url, new_page, path):
    page = new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(stage_url + path)
    # As deployed, the page and the model card are open and scoring needs the key.
    page.wait_for_selector("#score-button:enabled")
    page.click("#score-button")
    page.wait_for_selector("#key-box[open]")
    assert "API key" in page.locator("#form-error").inner_text()
    assert page.evaluate("document.activeElement.id") == "api-key"
    page.screenshot(path=SCREENSHOTS / f"stage-asks-for-key{path.replace('/', '-slash')}-viewport.png")

    page.fill("#api-key", STAGE_API_KEY)
    page.keyboard.press("Enter")
    page.wait_for_selector("#score-button:enabled")
    assert page.locator("#fields .field").count() == 16
    assert not page.is_visible("#page-error")
    page.fill("#f-age", "29")
    page.fill("#f-months_loan_duration", "36")
    page.click("#score-button")
    shown = shown_result(page)

    headers = {"x-api-key": STAGE_API_KEY}
    card = httpx.get(f"{stage_url}/model", headers=headers).json()
    applicant = {i["name"]: i["default"] for i in card["inputs"]} | {"age": 29, "months_loan_duration": 36}
    expected = httpx.post(f"{stage_url}/predict", json=applicant, headers=headers).json()
    assert shown["decision"] == expected["decision"]
    assert shown["probability"] == pytest.approx(expected["probability_of_default"], abs=1e-12)

    origin = stage_url.rsplit("/", 1)[0]
    outside = [u for u in requested if u.startswith(origin) and not u.startswith(stage_url)]
    assert not outside, "every request stays under the stage path"
    assert page.evaluate("sessionStorage.getItem('credit-api-key')") == STAGE_API_KEY
    assert page.evaluate("localStorage.length") == 0


def test_readable_on_a_phone(app_url, by_decision, new_page):
    page = new_page(viewport=PHONE)
    open_form(page, f"{app_url}/")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "no sideways scrolling"
    for selector in ("#f-age", "#f-purpose", "#score-button"):
        box = page.locator(selector).bounding_box()
        assert box and box["height"] >= 40 and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert float(page.locator("#f-age").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 16
    page.screenshot(path=SCREENSHOTS / "phone-form-viewport.png")
    fill(page, next(iter(by_decision.values())))
    page.click("#score-button")
    shown_result(page)
    title = page.locator("#result-title").bounding_box()
    figures = page.locator(".figures").bounding_box()
    assert title and figures and title["y"] >= 0 and figures["y"] + figures["height"] <= PHONE["height"], (
        "the decision and its figures are scrolled into view"
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=SCREENSHOTS / "phone-result-viewport.png")
