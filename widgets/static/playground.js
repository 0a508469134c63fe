// Prompt playground: draws the traits of widgets.playground.Playground and sends edits and
// button presses. Plain ES module, no build step, no network. No logic lives here: Python checks
// the template, runs the model, compares and saves. Text from prompts, data and models goes in
// through textContent (never innerHTML).

import { bump, h } from "./_dom.js";

const DRAFT = ["system", "template", "model", "temperature", "max_tokens", "description"];
const VIEW = ["prompt_name", "version", "dataset", "split", "model_choices", "items", "outputs",
  "previous_outputs", "previous_label", "running", "progress", "progress_total", "status",
  "message", "error", "template_error", "project_path"];

function field(label, control, hint) {
  return h("label", { class: "wb-pg-field" }, h("span", { class: "wb-pg-label", text: label }),
    control, hint ? h("span", { class: "wb-pg-hint", text: hint }) : null);
}

function outputCell(out, which) {
  if (!out) return h("td", { class: "wb-pg-out wb-pg-empty", "data-which": which }, "—");
  const state = out.error ? "error" : out.match === true ? "pass" : out.match === false ? "fail" : "none";
  const cell = h("td", { class: `wb-pg-out wb-pg-state-${state}`, "data-which": which, "data-state": state });
  if (out.error) cell.append(h("div", { class: "wb-pg-err", text: out.error }));
  else {
    cell.append(h("div", { class: "wb-pg-text", text: out.output }));
    if (out.parsed && out.parsed !== out.output) {
      cell.append(h("div", { class: "wb-pg-parsed" }, "parsed: ", h("code", { text: out.parsed })));
    }
    if (!out.parse_ok && out.parse_error) {
      cell.append(h("div", { class: "wb-pg-parse-error", text: `not parsed: ${out.parse_error}` }));
    }
  }
  if (out.latency_s !== null && out.latency_s !== undefined) {
    cell.append(h("div", { class: "wb-pg-meta", text: `${out.latency_s.toFixed(2)} s` }));
  }
  return cell;
}

function results(model) {
  const items = model.get("items") || [];
  const outputs = model.get("outputs") || [];
  const previous = model.get("previous_outputs") || [];
  const byId = (list) => Object.fromEntries(list.map((o) => [o.item_id, o]));
  const now = byId(outputs);
  const before = byId(previous);
  const prevLabel = model.get("previous_label");
  const head = h("tr", {}, h("th", { text: "Item" }), h("th", { text: "Expected" }),
    prevLabel ? h("th", { text: `Saved ${prevLabel}` }) : null, h("th", { text: "Draft" }));
  const rows = items.map((item) => h("tr", { "data-item": item.item_id },
    h("td", { class: "wb-pg-input" }, h("div", { class: "wb-pg-id", text: item.item_id }),
      h("div", { text: item.input })),
    h("td", { class: "wb-pg-expected", text: item.expected || "—" }),
    prevLabel ? outputCell(before[item.item_id], "previous") : null,
    outputCell(now[item.item_id], "draft")));
  return h("table", { class: "wb-pg-results" }, h("thead", {}, head), h("tbody", {}, rows));
}

export default {
  render({ model, el }) {
    const send = (name, value) => {
      model.set(name, value);
      model.save_changes();
    };

    const system = h("textarea", { class: "wb-pg-system", rows: 3, spellcheck: "false",
      "aria-label": "System prompt" });
    const template = h("textarea", { class: "wb-pg-template", rows: 6, spellcheck: "false",
      "aria-label": "Template" });
    const modelSelect = h("select", { class: "wb-pg-model", "aria-label": "Model" });
    const temperature = h("input", { class: "wb-pg-temperature", type: "number", min: 0, max: 2,
      step: 0.1, "aria-label": "Temperature" });
    const maxTokens = h("input", { class: "wb-pg-max-tokens", type: "number", min: 1, step: 1,
      "aria-label": "Max tokens" });
    const description = h("input", { class: "wb-pg-description", type: "text",
      placeholder: "what changed (saved with the version)", "aria-label": "Description" });
    const runButton = h("button", { type: "button", class: "wb-pg-run", text: "Run" });
    const saveButton = h("button", { type: "button", class: "wb-pg-save", text: "Save version" });

    system.addEventListener("input", () => send("system", system.value));
    template.addEventListener("input", () => send("template", template.value));
    modelSelect.addEventListener("change", () => send("model", modelSelect.value));
    temperature.addEventListener("change", () => send("temperature", Number(temperature.value) || 0));
    maxTokens.addEventListener("change", () => send("max_tokens", Math.max(1, Math.round(Number(maxTokens.value) || 1))));
    description.addEventListener("input", () => send("description", description.value));
    runButton.addEventListener("click", () => bump(model, "run_requests"));
    saveButton.addEventListener("click", () => bump(model, "save_requests"));

    const title = h("h3", { class: "wb-pg-title" });
    const status = h("div", { class: "wb-pg-status", role: "status" });
    const alert = h("div", { class: "wb-pg-error", role: "alert", hidden: true });
    const bar = h("div", { class: "wb-pg-bar", role: "progressbar", "aria-valuemin": 0 },
      h("div", { class: "wb-pg-bar-fill" }));
    const table = h("div", { class: "wb-pg-table" });

    const root = h("div", { class: "wb-playground" },
      h("header", { class: "wb-pg-header" }, title, status),
      h("div", { class: "wb-pg-editor" },
        field("System prompt", system),
        field("Template", template, "Jinja2: {{ input }} and the item's other columns"),
        h("div", { class: "wb-pg-row" },
          field("Model", modelSelect), field("Temperature", temperature),
          field("Max tokens", maxTokens)),
        field("Description", description),
        h("div", { class: "wb-pg-actions" }, runButton, saveButton, bar)),
      alert, table);
    el.append(root);

    // Draft fields: set from Python only when they differ, so typing is never interrupted.
    const syncDraft = () => {
      const put = (node, value) => {
        const text = value === null || value === undefined ? "" : String(value);
        if (node.value !== text) node.value = text;
      };
      put(system, model.get("system"));
      put(template, model.get("template"));
      put(temperature, model.get("temperature"));
      put(maxTokens, model.get("max_tokens"));
      put(description, model.get("description"));
      const choices = model.get("model_choices") || [];
      const current = model.get("model") || "";
      const ids = choices.map((c) => c.id);
      if (modelSelect.dataset.ids !== ids.join("\n")) {
        modelSelect.replaceChildren(...choices.map((c) =>
          h("option", { value: c.id, title: c.reason, text: `${c.id} (${c.kind})` })));
        modelSelect.dataset.ids = ids.join("\n");
      }
      if (current && !ids.includes(current)) {
        modelSelect.append(h("option", { value: current, text: current }));
        modelSelect.dataset.ids = "";
      }
      modelSelect.value = current;
    };

    const draw = () => {
      const version = model.get("version");
      title.textContent = `${model.get("prompt_name")} ${version ? `v${version}` : "(new)"} · ` +
        `${model.get("dataset")} ${model.get("split")}`;
      status.textContent = model.get("message") || "";
      status.dataset.status = model.get("status");
      const error = model.get("error") || "";
      const te = model.get("template_error") || {};
      alert.hidden = !error;
      alert.replaceChildren();
      if (error) {
        const where = te.part ? [te.part, te.line ? `line ${te.line}` : null,
          te.variable ? `variable '${te.variable}'` : null].filter(Boolean).join(", ") : "";
        alert.append(h("strong", { text: where ? `${where}: ` : "Problem: " }), error);
      }
      template.classList.toggle("wb-pg-invalid", te.part === "template");
      system.classList.toggle("wb-pg-invalid", te.part === "system prompt");
      const running = model.get("running");
      runButton.disabled = running;
      saveButton.disabled = running;
      runButton.textContent = running ? "Running…" : "Run";
      const total = model.get("progress_total") || 0;
      const done = model.get("progress") || 0;
      bar.hidden = !running && !done;
      bar.setAttribute("aria-valuemax", total);
      bar.setAttribute("aria-valuenow", done);
      bar.firstChild.style.width = total ? `${(100 * done) / total}%` : "0%";
      table.replaceChildren(results(model));
    };

    syncDraft();
    draw();
    for (const name of DRAFT) model.on(`change:${name}`, syncDraft);
    model.on("change:model_choices", syncDraft);
    for (const name of VIEW) model.on(`change:${name}`, draw);
    return () => {
      for (const name of DRAFT) model.off(`change:${name}`, syncDraft);
      model.off("change:model_choices", syncDraft);
      for (const name of VIEW) model.off(`change:${name}`, draw);
    };
  },
};
