// Project card form: draws widgets.card_form.CardForm and sends the user's draft on Save.
// Plain ES module, no build step, no network. The draft lives here until Save; Python validates
// and writes, then sends back the saved (normalised) card, the errors and the status.
// User text always goes in through textContent or .value, never innerHTML.

import { bump, h } from "./_dom.js";

const FIELDS = ["use_case", "metrics", "constraints"];
const REDRAW_ON = [...FIELDS, "errors", "missing", "status", "message", "decisions",
  "chosen_model", "project_path", "saved_count", "save_answers", "privacy_effects"];
const USE_CASE = [
  ["description", "Use case", "What the system does, for whom, and why it matters.", true],
  ["users", "Users", "Who reads or acts on the output.", false],
  ["inputs", "Inputs", "What one input looks like (language, length, personal data?).", true],
  ["outputs", "Outputs", "What one output looks like (a label, JSON, an answer...).", true],
];
const CONSTRAINTS = [
  ["monthly_budget_usd", "Monthly budget (USD)", "200"],
  ["expected_requests_per_day", "Expected requests per day", "3000"],
  ["latency_budget_s", "Latency budget (s)", "2"],
];
let nextId = 0;

function copy(value) {
  return JSON.parse(JSON.stringify(value ?? null));
}

function asText(value) {
  return value === null || value === undefined ? "" : String(value);
}

// Which fields a problem sentence is about: messages name them as metrics[2] or [use_case] x.
function problemTargets(errors) {
  const rows = new Set();
  const fields = new Set();
  for (const text of errors) {
    for (const m of text.matchAll(/metrics\[(\d+)\]/g)) rows.add(Number(m[1]));
    for (const m of text.matchAll(/\[(use_case|constraints)\] (\w+)/g)) fields.add(`${m[1]}.${m[2]}`);
    for (const m of text.matchAll(/\b(use_case|constraints)\.(\w+)/g)) fields.add(`${m[1]}.${m[2]}`);
  }
  return { rows, fields };
}

export default {
  render({ model, el }) {
    const uid = `wb-cf-${nextId++}`;
    const root = h("div", { class: "wb-card-form" });
    el.append(root);
    let draft = {};
    let dirty = false;

    const resetDraft = () => {
      draft = {
        use_case: copy(model.get("use_case") || {}),
        metrics: copy(model.get("metrics") || []),
        constraints: copy(model.get("constraints") || {}),
      };
      if (!Array.isArray(draft.constraints.privacy)) draft.constraints.privacy = [];
      if (!Array.isArray(draft.constraints.blocked_terms)) draft.constraints.blocked_terms = [];
      dirty = false;
    };

    const touch = () => {
      if (!dirty) {
        dirty = true;
        const badge = root.querySelector(".wb-cf-status");
        if (badge) {
          badge.dataset.dirty = "true";
          badge.textContent = "Unsaved changes";
        }
      }
    };

    const save = () => {
      const metrics = draft.metrics.map((row) => ({ ...row }));
      const constraints = { ...draft.constraints, privacy: [...draft.constraints.privacy],
        blocked_terms: [...draft.constraints.blocked_terms] };
      model.set("use_case", { ...draft.use_case });
      model.set("metrics", metrics);
      model.set("constraints", constraints);
      bump(model, "save_requests");
      const button = root.querySelector(".wb-cf-save");
      if (button) {
        button.setAttribute("aria-busy", "true");
        button.textContent = "Saving…";
      }
    };

    const reload = () => {
      bump(model, "reload_requests");
    };

    const textField = (section, key, label, hint, multiline, invalid) => {
      const id = `${uid}-${section}-${key}`;
      const attrs = {
        id, name: `${section}.${key}`, value: asText(draft[section][key]),
        "aria-invalid": invalid ? "true" : null, placeholder: hint,
        oninput: (e) => { draft[section][key] = e.target.value; touch(); },
      };
      return h("div", { class: `wb-cf-field${invalid ? " wb-cf-invalid" : ""}` },
        h("label", { for: id, text: label }),
        multiline ? h("textarea", { ...attrs, rows: 2 }) : h("input", { ...attrs, type: "text" }));
    };

    const metricRow = (row, i, catalog, invalid) => {
      const spec = catalog.find((m) => m.name === row.name);
      const set = (key) => (e) => {
        draft.metrics[i][key] = e.target.value;
        touch();
      };
      const onName = (e) => {
        draft.metrics[i].name = e.target.value.trim();
        const known = catalog.find((m) => m.name === draft.metrics[i].name);
        // Fill what the name implies, but never overwrite what the user wrote.
        if (known) {
          const rowEl = e.target.closest("tr");
          if (!draft.metrics[i].unit) {
            draft.metrics[i].unit = known.units[0];
            rowEl.querySelector("[name=unit]").value = known.units[0];
          }
          if (!draft.metrics[i].direction) {
            draft.metrics[i].direction = known.direction;
            rowEl.querySelector("[name=direction]").value = known.direction;
          }
          rowEl.querySelector(".wb-cf-hint").textContent = hintFor(known);
        }
        touch();
      };
      const direction = h("select", { name: "direction", "aria-label": `Direction of metric ${i + 1}`,
        onchange: set("direction") },
        h("option", { value: "", text: "—" }),
        h("option", { value: ">=", text: "≥", title: "at least (higher is better)" }),
        h("option", { value: "<=", text: "≤", title: "at most (lower is better)" }));
      direction.value = asText(row.direction);
      return h("tr", { class: invalid ? "wb-cf-invalid" : null, "data-row": i },
        h("td", {},
          h("input", { type: "text", name: "name", list: `${uid}-metric-names`, value: asText(row.name),
            "aria-label": `Name of metric ${i + 1}`, placeholder: "accuracy", onchange: onName,
            oninput: set("name") }),
          h("div", { class: "wb-cf-hint", text: spec ? hintFor(spec) : "" })),
        h("td", {}, direction),
        h("td", {}, h("input", { type: "text", inputmode: "decimal", name: "target",
          value: asText(row.target), "aria-label": `Target of metric ${i + 1}`, placeholder: "0.9",
          oninput: set("target") })),
        h("td", {}, h("input", { type: "text", name: "unit", list: `${uid}-units`, value: asText(row.unit),
          "aria-label": `Unit of metric ${i + 1}`, placeholder: spec ? spec.units[0] : "unit", oninput: set("unit") })),
        h("td", {}, h("button", { type: "button", class: "wb-cf-remove", title: "Remove this metric",
          "aria-label": `Remove metric ${i + 1}`, text: "×",
          onclick: () => { draft.metrics.splice(i, 1); touch(); draw(false); } })));
    };

    const hintFor = (spec) => `${spec.description}; measured in phases ${spec.phases.join(", ")}`;

    const draw = (fromModel = true) => {
      if (fromModel) resetDraft();
      const wasDirty = dirty;
      const errors = model.get("errors") || [];
      const missing = model.get("missing") || [];
      const status = model.get("status") || "loaded";
      const catalog = model.get("metric_catalog") || [];
      const targets = problemTargets(errors);
      const units = [...new Set(catalog.flatMap((m) => m.units))];

      const statusText = wasDirty ? "Unsaved changes"
        : { saved: "Saved", invalid: "Not saved: see the problems", error: "Error", loaded: "Loaded" }[status]
          || status;
      const header = h("header", { class: "wb-cf-header" },
        h("div", {},
          h("h3", { class: "wb-cf-title", text: "Project card" }),
          h("div", { class: "wb-cf-path", text: model.get("project_path") || "" })),
        h("span", { class: "wb-cf-status", "data-status": status, "data-dirty": wasDirty ? "true" : "false",
          role: "status", text: statusText }));

      const problems = errors.length
        ? h("div", { class: "wb-cf-errors", role: "alert" },
          h("strong", { text: errors.length === 1 ? "1 problem to fix before saving:"
            : `${errors.length} problems to fix before saving:` }),
          h("ul", {}, errors.map((text) => h("li", { text }))))
        : null;

      const taskId = `${uid}-task`;
      const task = h("select", { id: taskId, name: "use_case.task_type",
        "aria-invalid": targets.fields.has("use_case.task_type") ? "true" : null,
        onchange: (e) => { draft.use_case.task_type = e.target.value; touch(); } },
        h("option", { value: "", text: "— choose —" }),
        (model.get("task_types") || []).map((t) => h("option", { value: t, text: t.replace("_", " ") })));
      task.value = asText(draft.use_case.task_type);

      const useCase = h("fieldset", { class: "wb-cf-section" },
        h("legend", { text: "Use case" }),
        USE_CASE.slice(0, 2).map(([key, label, hint, multi]) =>
          textField("use_case", key, label, hint, multi, targets.fields.has(`use_case.${key}`))),
        h("div", { class: `wb-cf-field${targets.fields.has("use_case.task_type") ? " wb-cf-invalid" : ""}` },
          h("label", { for: taskId, text: "Task type" }), task),
        USE_CASE.slice(2).map(([key, label, hint, multi]) =>
          textField("use_case", key, label, hint, multi, targets.fields.has(`use_case.${key}`))));

      const metrics = h("fieldset", { class: "wb-cf-section" },
        h("legend", { text: "Success metrics" }),
        h("p", { class: "wb-cf-note", text: "Each target needs a direction and a unit. Later phases "
          + "report against these, deployment refuses configs that miss them, monitoring alerts on them." }),
        h("table", { class: "wb-cf-metrics" },
          h("thead", {}, h("tr", {}, ["Metric", "Direction", "Target", "Unit", ""].map((t) => h("th", { text: t })))),
          h("tbody", {}, draft.metrics.map((row, i) => metricRow(row, i, catalog, targets.rows.has(i))))),
        h("button", { type: "button", class: "wb-cf-add", text: "+ Add metric",
          onclick: () => {
            draft.metrics.push({ name: "", target: "", direction: "", unit: "" });
            touch();
            draw(false);
            root.querySelector(`tr[data-row="${draft.metrics.length - 1}"] [name=name]`)?.focus();
          } }),
        h("datalist", { id: `${uid}-metric-names` }, catalog.map((m) => h("option", { value: m.name }))),
        h("datalist", { id: `${uid}-units` }, units.map((u) => h("option", { value: u }))));

      const privacyId = `${uid}-privacy`;
      const privacy = h("textarea", { id: privacyId, name: "constraints.privacy", rows: 2,
        value: draft.constraints.privacy.join("\n"), placeholder: "One rule per line",
        oninput: (e) => { draft.constraints.privacy = e.target.value.split("\n"); touch(); } });
      const suggestions = (model.get("privacy_suggestions") || [])
        .filter((rule) => !draft.constraints.privacy.includes(rule))
        .map((rule) => h("button", { type: "button", class: "wb-cf-chip", text: `+ ${rule}`,
          onclick: () => {
            draft.constraints.privacy = [...draft.constraints.privacy.filter((r) => r.trim()), rule];
            touch();
            draw(false);
          } }));
      const blockedId = `${uid}-blocked`;
      const blocked = h("textarea", { id: blockedId, name: "constraints.blocked_terms", rows: 2,
        value: draft.constraints.blocked_terms.join("\n"), placeholder: "One word or phrase per line",
        oninput: (e) => { draft.constraints.blocked_terms = e.target.value.split("\n"); touch(); } });
      const constraints = h("fieldset", { class: "wb-cf-section" },
        h("legend", { text: "Constraints" }),
        h("div", { class: "wb-cf-row" }, CONSTRAINTS.map(([key, label, hint]) =>
          textField("constraints", key, label, hint, false, targets.fields.has(`constraints.${key}`)))),
        h("div", { class: `wb-cf-field${targets.fields.has("constraints.privacy") ? " wb-cf-invalid" : ""}` },
          h("label", { for: privacyId, text: "Privacy rules" }), privacy,
          suggestions.length ? h("div", { class: "wb-cf-chips" }, suggestions) : null,
          (model.get("privacy_effects") || []).length
            ? h("ul", { class: "wb-cf-effects", "aria-label": "What the workbench does about these rules" },
              model.get("privacy_effects").map((text) => h("li", { text })))
            : null),
        h("div", { class: `wb-cf-field${targets.fields.has("constraints.blocked_terms") ? " wb-cf-invalid" : ""}` },
          h("label", { for: blockedId, text: "Blocked terms" }), blocked,
          h("p", { class: "wb-cf-note", text: "The served API refuses requests with these terms "
            + "and never sends them in answers (whole words, any case or spacing)." })));

      const todo = missing.length > 0 && errors.length === 0
        ? h("details", { class: "wb-cf-missing" },
          h("summary", { text: `Still to fill (${missing.length})` }),
          h("ul", {}, missing.map((text) => h("li", { text }))))
        : null;

      const decisions = model.get("decisions") || [];
      const chosen = model.get("chosen_model") || "";
      const log = h("details", { class: "wb-cf-log" },
        h("summary", { text: `Model: ${chosen || "not chosen yet"} · decision log (${decisions.length})` }),
        decisions.length
          ? h("ol", {}, decisions.map((d) => h("li", {},
            h("span", { class: "wb-cf-date", text: `${d.date} · phase ${d.phase}: ` }),
            d.decision, d.reason ? h("span", { class: "wb-cf-reason", text: ` — ${d.reason}` }) : null)))
          : h("p", { class: "wb-cf-note", text: "No decisions logged yet." }));

      const actions = h("div", { class: "wb-cf-actions" },
        h("button", { type: "button", class: "wb-cf-save", text: "Save", onclick: save }),
        h("button", { type: "button", class: "wb-cf-reload", text: "Reload from file",
          title: "Discard unsaved changes and show workbench.toml as it is now", onclick: reload }),
        h("span", { class: "wb-cf-message", text: model.get("message") || "" }));

      // replaceChildren would write a skipped (null) part as the text "null".
      // Problems sit right above Save, where the user is looking when they appear.
      root.replaceChildren(...[header, useCase, metrics, constraints, problems, actions, todo, log]
        .filter(Boolean));
    };

    const onModel = () => draw(true);
    draw(true);
    for (const name of REDRAW_ON) model.on(`change:${name}`, onModel);
    return () => {
      for (const name of REDRAW_ON) model.off(`change:${name}`, onModel);
    };
  },
};
