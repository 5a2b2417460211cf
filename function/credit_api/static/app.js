// Loan application scoring page. The form is built from the model card (GET model), so the
// applicant schema is defined once, on the server. All URLs are relative to the document base,
// which index.html pins to the app root (works at / and under an API Gateway stage like /Prod/).
"use strict";

(function () {
  const KEY_STORAGE = "credit-api-key";
  const LOCAL_HOSTS = ["localhost", "127.0.0.1", "[::1]"];
  const DECISIONS = {
    approve: { word: "Approve", icon: "✓", note: "Risk within the policy's cut-off." },
    review: { word: "Refer for review", icon: "?", note: "Close to the cut-off: a credit officer decides." },
    decline: { word: "Decline", icon: "✕", note: "Risk above the policy's cut-off." },
  };
  const RESULT_COLUMNS = [
    "decision", "probability_of_default", "score", "risk_grade", "reasons", "model_version", "decision_id", "error",
  ];

  const $ = (id) => document.getElementById(id);
  let inputs = []; // the schema's inputs, from the model card
  let batchLimit = 1000; // applicants per POST predict/batch; the model card's max_batch
  let lastBatch = null;

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  // ---- API ---------------------------------------------------------------------------------

  function apiKey() {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  }

  /** Call the API; never throws. Returns {status, body}; status 0 means the network failed. */
  async function call(path, body) {
    const headers = { Accept: "application/json" };
    const init = { method: body === undefined ? "GET" : "POST", headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (apiKey()) headers["x-api-key"] = apiKey();
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      return { status: 0, body: null };
    }
    let parsed = null;
    try {
      parsed = await response.json();
    } catch (error) {
      parsed = null;
    }
    return { status: response.status, body: parsed };
  }

  /**
   * The API's field-level validation errors (422) as [{path: [...], message}]. The API sends
   * {"errors": [{"field": "age" | "applicants[3].age", "message", "sent", "allowed", ...}]},
   * and its messages already name the field, the rule and what was sent.
   */
  function apiErrors(body) {
    if (!body || !Array.isArray(body.errors)) return [];
    return body.errors.map((error) => ({
      path: String(error.field ?? "").replace(/\[(\d+)\]/g, ".$1").split(".").filter(Boolean),
      message: String(error.message ?? "Invalid value."),
    }));
  }

  /** A sentence for a failed call that is not a field-level validation error. */
  function failureMessage(status, body) {
    if (status === 0) return "Could not reach the scoring service. Check the connection and try again.";
    if (status === 401 || status === 403) {
      return "The service refused the request: enter a valid API key (top right) and try again.";
    }
    const detail = body && (body.message || (typeof body.detail === "string" ? body.detail : null) || body.error);
    const text = typeof detail === "string" ? detail : `The service answered with status ${status}.`;
    if (status === 413) return `Too large for one request: ${text}`;
    if (status === 503) return `The service could not record the decision, so none was made: ${text}`;
    return text;
  }

  function askForKey() {
    $("key-box").open = true;
    $("api-key").focus();
  }

  // ---- Validation from the schema ----------------------------------------------------------

  function boundsText(input) {
    const unit = input.unit && input.unit !== "band" ? ` ${input.unit}` : "";
    return `from ${input.minimum} to ${input.maximum}${unit}`;
  }

  /** One raw (string) value checked against its input: {value} or {error}. */
  function checkValue(input, raw) {
    if (Number.isNaN(raw)) return { error: `Must be a whole number ${boundsText(input)}.` };
    const text = raw === undefined || raw === null ? "" : String(raw).trim();
    if (text === "") return { error: "Required." };
    if (input.type === "categorical") {
      if (Object.hasOwn(input.codes, text)) return { value: text };
      const lower = text.toLowerCase();
      const byLabel = Object.keys(input.codes).find((code) => input.codes[code].toLowerCase() === lower);
      if (byLabel) return { value: byLabel };
      return { error: `Must be one of ${Object.keys(input.codes).join(", ")}; got "${text}".` };
    }
    const rule = `Must be a whole number ${boundsText(input)}`;
    if (!/^[+-]?\d+(\.0*)?$/.test(text)) return { error: `${rule}; got "${text}".` };
    const value = Number.parseInt(text, 10);
    const low = input.minimum !== null && input.minimum !== undefined && value < input.minimum;
    const high = input.maximum !== null && input.maximum !== undefined && value > input.maximum;
    return low || high ? { error: `${rule}; got ${value}.` } : { value };
  }

  /** A record of raw values (by input name) as {applicant, errors: [{field, message}]}. */
  function checkRecord(raw) {
    const applicant = {};
    const errors = [];
    for (const input of inputs) {
      const checked = checkValue(input, raw[input.name]);
      if (checked.error) errors.push({ field: input.name, message: checked.error });
      else applicant[input.name] = checked.value;
    }
    return { applicant, errors };
  }

  // ---- The form ----------------------------------------------------------------------------

  function fieldId(name) {
    return `f-${name}`;
  }

  function buildField(input) {
    const id = fieldId(input.name);
    const unit = input.unit && input.unit !== "band" ? el("span", { className: "unit", textContent: ` (${input.unit})` }) : null;
    const label = el("label", { htmlFor: id }, input.label, unit);
    let control;
    let help = input.description;
    if (input.type === "categorical") {
      control = el("select", { id, name: input.name, required: true });
      for (const [code, text] of Object.entries(input.codes)) {
        control.append(el("option", { value: code, textContent: text, selected: code === input.default }));
      }
    } else {
      control = el("input", {
        id, name: input.name, type: "number", inputMode: "numeric", step: 1, required: true,
        min: input.minimum, max: input.maximum, value: input.default,
      });
      help += ` A whole number ${boundsText(input)}.`;
    }
    control.setAttribute("aria-describedby", `${id}-help`);
    const helpNode = el("p", { className: "help", id: `${id}-help`, textContent: help });
    const error = el("p", { className: "field-error", id: `${id}-error`, hidden: true });
    control.addEventListener("input", () => setFieldError(input.name, null));
    control.addEventListener("change", () => {
      const checked = checkValue(input, readControl(control));
      setFieldError(input.name, checked.error || null);
    });
    return el("div", { className: "field", id: `${id}-field` }, label, control, error, helpNode);
  }

  function readControl(control) {
    // A number field hides what was typed when it is not a number; NaN says so to checkValue.
    if (control.validity && control.validity.badInput) return Number.NaN;
    return control.value;
  }

  function setFieldError(name, message) {
    const id = fieldId(name);
    const field = $(`${id}-field`);
    const control = $(id);
    const error = $(`${id}-error`);
    if (!field) return false;
    field.classList.toggle("invalid", Boolean(message));
    error.hidden = !message;
    error.textContent = message || "";
    if (message) {
      control.setAttribute("aria-invalid", "true");
      control.setAttribute("aria-describedby", `${id}-error ${id}-help`);
    } else {
      control.removeAttribute("aria-invalid");
      control.setAttribute("aria-describedby", `${id}-help`);
    }
    return true;
  }

  function setFormError(message) {
    $("form-error").hidden = !message;
    $("form-error").textContent = message || "";
  }

  function clearErrors() {
    for (const input of inputs) setFieldError(input.name, null);
    setFormError(null);
  }

  function focusFirstInvalid() {
    const first = document.querySelector(".field.invalid select, .field.invalid input");
    if (first) first.focus();
  }

  function resetForm() {
    for (const input of inputs) $(fieldId(input.name)).value = String(input.default);
    clearErrors();
  }

  async function submitForm(event) {
    event.preventDefault();
    clearErrors();
    const raw = {};
    for (const input of inputs) raw[input.name] = readControl($(fieldId(input.name)));
    const { applicant, errors } = checkRecord(raw);
    if (errors.length) {
      for (const error of errors) setFieldError(error.field, error.message);
      setFormError(`Please correct ${errors.length === 1 ? "the field" : `the ${errors.length} fields`} marked above.`);
      focusFirstInvalid();
      return;
    }
    const button = $("score-button");
    button.disabled = true;
    button.textContent = "Scoring…";
    const { status, body } = await call("predict", applicant);
    button.disabled = false;
    button.textContent = "Score application";
    if (status === 200 && body) {
      showResult(body);
      return;
    }
    const errorsFromApi = apiErrors(body);
    if (status === 422 && errorsFromApi.length) {
      const general = [];
      for (const error of errorsFromApi) {
        if (!setFieldError(error.path[0], error.message)) general.push(error.message);
      }
      setFormError(general.length ? general.join(" ") : "The service rejected the fields marked above.");
      focusFirstInvalid();
      return;
    }
    setFormError(failureMessage(status, body));
    if (status === 401 || status === 403) askForKey();
  }

  // ---- The result --------------------------------------------------------------------------

  function formatProbability(p) {
    return `${(p * 100).toFixed(1)}%`;
  }

  function reasonText(reason) {
    return reason.message || reason.label || reason.input;
  }

  function showResult(result) {
    const known = DECISIONS[result.decision] || { word: String(result.decision), icon: "•", note: "" };
    const decision = $("decision");
    decision.className = `decision ${result.decision}`;
    $("decision-icon").textContent = known.icon;
    $("decision-word").textContent = known.word;
    $("decision-note").textContent = known.note;
    $("result-body").dataset.decision = result.decision;
    const probability = $("r-probability");
    probability.textContent = formatProbability(result.probability_of_default);
    probability.dataset.value = String(result.probability_of_default);
    $("r-score").textContent = String(result.score);
    $("r-grade").textContent = String(result.risk_grade);
    const reasons = $("r-reasons");
    reasons.replaceChildren(
      ...(result.reasons || []).map((reason) =>
        el("li", {}, el("span", { className: "reason-label", textContent: reason.label || reason.input }), reasonText(reason)),
      ),
    );
    reasons.hidden = !reasons.children.length;
    $("r-no-reasons").hidden = Boolean(reasons.children.length);
    $("r-model").textContent = result.model_version;
    $("r-id").textContent = result.decision_id;
    $("result-placeholder").hidden = true;
    $("result-body").hidden = false;
    // On a narrow screen the decision sits below the form: bring all of it into view.
    if (window.matchMedia("(max-width: 60rem)").matches) $("result").scrollIntoView({ block: "start" });
    $("result-title").focus({ preventScroll: true });
  }

  // ---- Batch -------------------------------------------------------------------------------

  /** RFC 4180 CSV (quotes, doubled quotes, CRLF, BOM; ';' when the header uses it): rows with their line. */
  function parseCsv(text) {
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    const headerLine = text.split(/\r?\n/, 1)[0];
    const delimiter = headerLine.split(";").length > headerLine.split(",").length ? ";" : ",";
    const rows = [];
    let row = [];
    let field = "";
    let quoted = false;
    let line = 1;
    let rowLine = 1;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') {
          field += '"';
          i++;
        } else if (c === '"') {
          quoted = false;
        } else {
          if (c === "\n") line++;
          field += c;
        }
      } else if (c === '"' && field === "") {
        quoted = true;
      } else if (c === delimiter) {
        row.push(field);
        field = "";
      } else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") i++;
        row.push(field);
        rows.push({ line: rowLine, cells: row });
        row = [];
        field = "";
        line++;
        rowLine = line;
      } else {
        field += c;
      }
    }
    if (quoted) throw new Error(`a quoted value starting on line ${rowLine} is never closed`);
    if (field !== "" || row.length) {
      row.push(field);
      rows.push({ line: rowLine, cells: row });
    }
    return rows.filter((r) => !(r.cells.length === 1 && r.cells[0].trim() === ""));
  }

  function toCsv(rows) {
    const quote = (value) => {
      const text = value === null || value === undefined ? "" : String(value);
      return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
    };
    return rows.map((row) => row.map(quote).join(",")).join("\r\n") + "\r\n";
  }

  function download(fileName, text) {
    const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
    const link = el("a", { href: url, download: fileName });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  function setBatchError(message) {
    $("batch-error").hidden = !message;
    $("batch-error").textContent = message || "";
  }

  /** Records from the file: {header, records: [{row, line, raw, applicant, errors}]} or throws a sentence. */
  function readBatch(text) {
    let rows;
    try {
      rows = parseCsv(text);
    } catch (error) {
      throw new Error(`The file is not valid CSV: ${error.message}.`);
    }
    if (!rows.length) throw new Error("The file is empty.");
    const header = rows[0].cells.map((name) => name.trim());
    const seen = new Set();
    for (const name of header) {
      if (seen.has(name)) throw new Error(`The header names the column "${name}" twice.`);
      seen.add(name);
    }
    const missing = inputs.map((input) => input.name).filter((name) => !seen.has(name));
    if (missing.length) {
      throw new Error(
        `The header lacks ${missing.length === 1 ? "the column" : "the columns"} ${missing.join(", ")}. ` +
          "The template has every column.",
      );
    }
    if (rows.length === 1) throw new Error("The file has a header but no applicants.");
    const records = rows.slice(1).map((r, index) => {
      const raw = {};
      header.forEach((name, column) => {
        raw[name] = r.cells[column];
      });
      const record = { row: index + 1, line: r.line, raw, ...checkRecord(raw) };
      if (r.cells.length !== header.length) {
        record.errors.unshift({
          field: null,
          message: `has ${r.cells.length} values but the header has ${header.length} columns`,
        });
      }
      return record;
    });
    return { header, records };
  }

  /** Score the valid records, at most batchLimit per request; 422s are attributed to rows. */
  async function scoreRecords(records) {
    const valid = records.filter((r) => !r.errors.length);
    for (let start = 0; start < valid.length; start += batchLimit) {
      let chunk = valid.slice(start, start + batchLimit);
      for (let attempt = 0; attempt < 2 && chunk.length; attempt++) {
        const { status, body } = await call("predict/batch", { applicants: chunk.map((r) => r.applicant) });
        if (status === 200 && body && Array.isArray(body.results)) {
          chunk.forEach((record, i) => {
            record.result = body.results[i];
          });
          break;
        }
        const errors = apiErrors(body).filter((e) => e.path[0] === "applicants" && /^\d+$/.test(e.path[1] || ""));
        if (status === 422 && errors.length && attempt === 0) {
          for (const error of errors) {
            const record = chunk[Number(error.path[1])];
            if (!record) continue;
            record.errors.push({ field: error.path[2] || null, message: error.message });
          }
          chunk = chunk.filter((r) => !r.errors.length);
          continue;
        }
        const message = status === 422 && apiErrors(body).length
          ? apiErrors(body).map((e) => e.message).join("; ")
          : failureMessage(status, body);
        for (const record of chunk) record.errors.push({ field: null, message });
        if (status === 401 || status === 403) askForKey();
        break;
      }
    }
  }

  function errorText(record) {
    // The API's messages start with the field's name; the page's own checks do not.
    const text = (e) =>
      e.field && !e.message.startsWith(e.field) ? `${e.field}: ${e.message[0].toLowerCase()}${e.message.slice(1)}` : e.message;
    return record.errors.map(text).join("; ");
  }

  function renderBatch(batch) {
    const scored = batch.records.filter((r) => r.result);
    const failed = batch.records.filter((r) => !r.result);
    const counts = {};
    for (const record of scored) counts[record.result.decision] = (counts[record.result.decision] || 0) + 1;
    const parts = Object.keys(DECISIONS)
      .filter((d) => counts[d])
      .map((d) => `${counts[d]} ${d}`);
    let summary = `${batch.records.length} applicants in ${batch.fileName}: ${scored.length} scored`;
    if (parts.length) summary += ` (${parts.join(", ")})`;
    summary += failed.length ? `; ${failed.length} not scored, listed below.` : ".";
    $("batch-summary").textContent = summary;

    $("batch-invalid-list").replaceChildren(
      ...failed.map((r) => el("li", { textContent: `Row ${r.row} (line ${r.line}): ${errorText(r)}` })),
    );
    $("batch-invalid").hidden = !failed.length;

    $("batch-rows").replaceChildren(
      ...batch.records.map((record) => {
        const rowCell = el("th", { scope: "row", textContent: String(record.row) });
        if (!record.result) {
          return el(
            "tr",
            { className: "not-scored" },
            rowCell,
            el("td", {}, el("span", { className: "pill error", textContent: "Not scored" })),
            el("td", { colSpan: 5, textContent: errorText(record) }),
          );
        }
        const r = record.result;
        const word = (DECISIONS[r.decision] || { word: r.decision }).word;
        return el(
          "tr",
          {},
          rowCell,
          el("td", {}, el("span", { className: `pill ${r.decision}`, textContent: word })),
          el("td", { className: "num", textContent: formatProbability(r.probability_of_default) }),
          el("td", { className: "num", textContent: String(r.score) }),
          el("td", { textContent: String(r.risk_grade) }),
          el("td", { textContent: (r.reasons || []).map(reasonText).join("; ") || "—" }),
          el("td", { className: "id" }, el("code", { textContent: r.decision_id })),
        );
      }),
    );
    $("batch-output").hidden = false;
  }

  function batchCsv(batch) {
    const rows = [["row", ...batch.header, ...RESULT_COLUMNS]];
    for (const record of batch.records) {
      const r = record.result;
      const outcome = r
        ? [
            r.decision, r.probability_of_default, r.score, r.risk_grade,
            (r.reasons || []).map(reasonText).join(" | "), r.model_version, r.decision_id, "",
          ]
        : ["", "", "", "", "", "", "", errorText(record)];
      rows.push([record.row, ...batch.header.map((name) => record.raw[name] ?? ""), ...outcome]);
    }
    return toCsv(rows);
  }

  async function scoreFile() {
    setBatchError(null);
    const file = $("batch-file").files[0];
    if (!file) {
      setBatchError("Choose a CSV file first.");
      $("batch-file").focus();
      return;
    }
    const button = $("batch-button");
    button.disabled = true;
    button.textContent = "Scoring…";
    try {
      const batch = { fileName: file.name, ...readBatch(await file.text()) };
      await scoreRecords(batch.records);
      lastBatch = batch;
      renderBatch(batch);
    } catch (error) {
      setBatchError(error.message);
      $("batch-output").hidden = true;
    } finally {
      button.disabled = false;
      button.textContent = "Score file";
    }
  }

  function downloadResults() {
    if (!lastBatch) return;
    const base = lastBatch.fileName.replace(/\.csv$/i, "");
    download(`${base}-scored.csv`, batchCsv(lastBatch));
  }

  function downloadTemplate() {
    download("applicants-template.csv", toCsv([inputs.map((i) => i.name), inputs.map((i) => i.default)]));
  }

  // ---- Start -------------------------------------------------------------------------------

  function setupKey() {
    const field = $("api-key");
    const state = () => {
      $("key-state").textContent = apiKey() ? "set" : "not set";
    };
    field.value = apiKey();
    field.addEventListener("input", () => {
      if (field.value) sessionStorage.setItem(KEY_STORAGE, field.value);
      else sessionStorage.removeItem(KEY_STORAGE);
      state();
    });
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      if (!inputs.length) loadModel();
    });
    $("forget-key").addEventListener("click", () => {
      sessionStorage.removeItem(KEY_STORAGE);
      field.value = "";
      state();
    });
    state();
    if (!LOCAL_HOSTS.includes(location.hostname) && !apiKey()) $("key-box").open = true;
  }

  function cardInputs(card) {
    const list = card.inputs || (card.schema && card.schema.inputs) || card.features;
    return Array.isArray(list) && list.every((i) => i && typeof i === "object" && i.name) ? list : null;
  }

  async function loadModel() {
    const banner = $("page-error");
    const { status, body } = await call("model");
    const list = status === 200 && body ? cardInputs(body) : null;
    if (!list) {
      const refused = status === 401 || status === 403;
      if (refused) banner.textContent = "This service needs an API key: enter it at the top right and press Use key.";
      else if (status === 200) banner.textContent = "The model card lists no inputs, so the form cannot be built.";
      else banner.textContent = `The form could not be loaded. ${failureMessage(status, body)}`;
      banner.hidden = false;
      $("model-info").textContent = "Model not loaded";
      if (refused) askForKey();
      return;
    }
    banner.hidden = true;
    inputs = list;
    if (Number.isInteger(body.max_batch) && body.max_batch > 0) batchLimit = body.max_batch;
    const scale = body.score_scale || {};
    const grades = Object.keys(scale.grades || {});
    const gradeNote = grades.length > 1 ? ` Grades run from ${grades[0]} (safest) to ${grades.at(-1)}.` : "";
    $("scale-note").textContent = scale.description ? `Score: ${scale.description}.${gradeNote}` : "";
    $("fields").replaceChildren(...inputs.map(buildField));
    $("fields").removeAttribute("aria-busy");
    const about = [`Model ${body.model_version}`];
    if (body.algorithm) about.push(body.algorithm);
    $("model-info").textContent = about.join(" · ");
    for (const id of ["score-button", "reset-button", "batch-button", "template-button"]) $(id).disabled = false;
  }

  function start() {
    setupKey();
    $("applicant-form").addEventListener("submit", submitForm);
    $("reset-button").addEventListener("click", resetForm);
    $("batch-button").addEventListener("click", scoreFile);
    $("template-button").addEventListener("click", downloadTemplate);
    $("download-button").addEventListener("click", downloadResults);
    loadModel();
  }

  // index.html inserts this script dynamically, so it may run before or after the document is parsed.
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
