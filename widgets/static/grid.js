// Comparison grid: draws the traits of widgets.grid.ComparisonGrid (items × runs) and reports the
// "only flipped" tick. Plain ES module, no build step, no network. Python decides pass/fail,
// flips and the filter; text from data and models goes in through textContent.

import { h } from "./_dom.js";

const TRAITS = ["columns", "rows", "total_rows", "flipped", "only_flipped", "error"];

const pct = (x) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(1)}%`);

function header(column) {
  const parts = [h("div", { class: "wb-grid-col-label", text: column.label })];
  if (column.model && !column.label.includes(column.model)) {
    parts.push(h("div", { class: "wb-grid-col-model", text: column.model }));
  }
  parts.push(h("div", { class: "wb-grid-col-score", "data-score": column.score ?? "" },
    `passed ${column.passed}/${column.n} (${pct(column.score)})`));
  if (column.metric && column.metric_value !== null && column.metric_value !== undefined) {
    parts.push(h("div", { class: "wb-grid-col-metric", text: `${column.metric} ${pct(column.metric_value)}` }));
  }
  return h("th", { class: "wb-grid-col", "data-key": column.key }, parts);
}

function cell(c) {
  const state = c.passed === true ? "pass" : c.passed === false ? "fail" : "none";
  const node = h("td", { class: `wb-grid-cell wb-grid-${state}`, "data-passed": state });
  if (c.error) node.append(h("div", { class: "wb-grid-err", text: c.error }));
  if (c.output !== null && c.output !== undefined) {
    node.append(h("div", { class: "wb-grid-out", text: String(c.output) }));
  }
  if (c.raw && c.raw !== c.output) node.setAttribute("title", String(c.raw));
  return node;
}

function row(item) {
  const flips = (item.flips || []).map((f) =>
    h("span", { class: `wb-grid-flip wb-grid-flip-${f.direction}`,
      text: `${f.direction === "fixed" ? "fixed" : "broke"} in ${f.to}` }));
  return h("tr", { class: item.flipped ? "wb-grid-row wb-grid-flipped" : "wb-grid-row",
    "data-item": item.item_id, "data-flipped": item.flipped ? "true" : "false" },
  h("td", { class: "wb-grid-input" }, h("div", { class: "wb-grid-id" }, item.item_id, ...flips),
    h("div", { text: item.input ?? "" })),
  h("td", { class: "wb-grid-expected" }, h("div", { text: item.expected ?? "—" })),
  (item.cells || []).map(cell));
}

export default {
  render({ model, el }) {
    const root = h("div", { class: "wb-grid" });
    el.append(root);
    const draw = () => {
      const columns = model.get("columns") || [];
      const rows = model.get("rows") || [];
      const flipped = model.get("flipped") || [];
      const error = model.get("error") || "";
      const toggle = h("input", { type: "checkbox", class: "wb-grid-only-flipped",
        checked: model.get("only_flipped") });
      toggle.addEventListener("change", () => {
        model.set("only_flipped", toggle.checked);
        model.save_changes();
      });
      const parts = [h("div", { class: "wb-grid-toolbar" },
        h("label", {}, toggle, ` only flipped (${flipped.length})`),
        h("span", { class: "wb-grid-count",
          text: `${rows.length} of ${model.get("total_rows") || 0} items shown` }))];
      if (error) parts.push(h("div", { class: "wb-grid-error", role: "alert", text: error }));
      if (columns.length) {
        parts.push(h("div", { class: "wb-grid-scroll" }, h("table", { class: "wb-grid-table" },
          h("thead", {}, h("tr", {}, h("th", { text: "Item" }), h("th", { text: "Expected" }),
            columns.map(header))),
          h("tbody", {}, rows.map(row)))));
      }
      root.replaceChildren(...parts);
    };
    draw();
    for (const name of TRAITS) model.on(`change:${name}`, draw);
    return () => {
      for (const name of TRAITS) model.off(`change:${name}`, draw);
    };
  },
};
