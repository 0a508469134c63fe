// Trace viewer: draws the traits of widgets.traces.TraceViewer and reports what the user picks
// (filters, a page, a trace, a span, "show more"). Plain ES module, no build step, no network.
// Every piece of trace text goes in through textContent, never innerHTML: traces hold what
// users and models wrote.

import { bump, h, redrawOn, withCode } from "./_dom.js";

const TRAITS = [
  "project_path", "choices", "kind", "status", "model", "prompt", "arm", "user", "window",
  "page", "has_more", "rows", "query_ms", "searched_to", "selected", "tree", "tree_info",
  "selected_span", "span_detail", "expanded", "error",
];
const FILTERS = [
  ["kind", "Kind", "every kind"],
  ["status", "Status", "any status"],
  ["model", "Model", "any model"],
  ["prompt", "Prompt", "any prompt"],
  ["arm", "Arm", "any arm"],
];
const WINDOW_LABELS = {
  "15m": "last 15 minutes", "1h": "last hour", "24h": "last 24 hours", "7d": "last 7 days",
  "30d": "last 30 days", all: "all time",
};
const KIND_LABELS = { "serve.request": "service requests", "llm.call": "model calls",
                      "llm.moderation": "moderation calls" };
const SECTIONS = [["input", "Inputs"], ["output", "Outputs"], ["detail", "Details"]];

function ms(value) {
  if (value === null || value === undefined) return "";
  if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
  return `${value >= 10 ? value.toFixed(0) : value.toFixed(2)} ms`;
}

function statusBadge(status) {
  const ok = status !== "error";
  return h("span", { class: `wb-tv-status wb-tv-s-${ok ? "ok" : "error"}`, text: ok ? "ok" : "error" });
}

function select(name, label, anyText, values, current, names = {}) {
  const options = [h("option", { value: "", text: anyText })];
  for (const value of values || []) {
    options.push(h("option", { value, text: names[value] || value, selected: value === current }));
  }
  if (current && !(values || []).includes(current)) {  // set from Python, not among the choices
    options.push(h("option", { value: current, text: current, selected: true }));
  }
  return h("label", { class: "wb-tv-filter" }, h("span", { text: label }),
    h("select", { "data-filter": name, "aria-label": label }, options));
}

function filterBar(model) {
  const choices = model.get("choices") || {};
  const parts = FILTERS.map(([name, label, anyText]) =>
    select(name, label, anyText, choices[name], model.get(name),
           name === "kind" ? KIND_LABELS : {}));
  parts.push(h("label", { class: "wb-tv-filter" }, h("span", { text: "User" }),
    h("input", { type: "search", "data-filter": "user", "aria-label": "End user",
                 placeholder: "user id or hash", value: model.get("user") || "" })));
  const windows = choices.window || Object.keys(WINDOW_LABELS);
  const current = model.get("window") || "24h";
  parts.push(h("label", { class: "wb-tv-filter" }, h("span", { text: "When" }),
    h("select", { "data-filter": "window", "aria-label": "Time window" },
      windows.map((w) => h("option", { value: w, text: WINDOW_LABELS[w] || w,
                                       selected: w === current })))));
  return h("div", { class: "wb-tv-filters", role: "group", "aria-label": "Filters" }, parts);
}

function traceList(model) {
  const rows = model.get("rows") || [];
  const selected = model.get("selected") || "";
  if (!rows.length) {
    return h("p", { class: "wb-tv-empty", text: model.get("error") ? ""
      : model.get("searched_to") ? "No traces match these filters in the part searched."
        : "No traces match these filters in this time window." });
  }
  const head = h("tr", {}, ["Time (UTC)", "Trace", "Status", "Model", "Prompt", "Arm", "User",
                            "Duration", "Spans"].map((t) => h("th", { scope: "col", text: t })));
  const body = rows.map((r) => h(
    "tr",
    { class: `wb-tv-row${r.trace_id === selected ? " wb-tv-selected" : ""}${
        r.status === "error" ? " wb-tv-failed" : ""}`,
      "data-trace": r.trace_id, tabindex: 0, "aria-selected": r.trace_id === selected },
    h("td", { class: "wb-tv-time", text: r.time }),
    h("td", { class: "wb-tv-label", title: r.error || r.trace_id },
      h("span", { text: r.label }),
      r.http_status ? h("span", { class: "wb-tv-code", text: ` ${r.http_status}` }) : null,
      r.run_id ? h("span", { class: "wb-tv-tag", text: `run ${r.run_id}` }) : null,
      r.judge ? h("span", { class: "wb-tv-tag", text: `judge ${r.judge}` }) : null),
    h("td", {}, statusBadge(r.status)),
    h("td", { text: r.model || "" }),
    h("td", { text: r.prompt || "" }),
    h("td", { text: r.arm || "" }),
    h("td", { class: "wb-tv-user", title: r.user || "", text: r.user ? r.user.slice(0, 8) : "" }),
    h("td", { class: "wb-tv-num", text: ms(r.duration_ms) }),
    h("td", { class: "wb-tv-num" }, String(r.spans),
      r.errors ? h("span", { class: "wb-tv-inner-errors", text: ` (${r.errors} failed)` }) : null),
  ));
  return h("table", { class: "wb-tv-table" }, h("thead", {}, head), h("tbody", {}, body));
}

function pager(model) {
  const page = model.get("page") || 0;
  return h("div", { class: "wb-tv-pager" },
    h("button", { type: "button", class: "wb-tv-newer", "data-page": page - 1,
                  disabled: page <= 0, text: "← Newer" }),
    h("span", { class: "wb-tv-page", text: `Page ${page + 1}` }),
    h("button", { type: "button", class: "wb-tv-older", "data-page": page + 1,
                  disabled: !model.get("has_more"), text: "Older →" }),
    h("span", { class: "wb-tv-query", text: `${(model.get("rows") || []).length} traces · ` +
                `read in ${model.get("query_ms") || 0} ms` }),
    model.get("searched_to")
      ? h("span", { class: "wb-tv-searched", role: "status",
                    text: `Searched back to ${model.get("searched_to")} UTC: press Older to ` +
                          "search further back." })
      : null);
}

function waterfall(model) {
  const nodes = model.get("tree") || [];
  const info = model.get("tree_info") || {};
  if (!nodes.length) {
    return h("p", { class: "wb-tv-hint", text: "Click a trace to see its spans." });
  }
  const current = model.get("selected_span") || "";
  const rows = nodes.map((n) => h(
    "div",
    { class: `wb-tv-span${n.span_id === current ? " wb-tv-selected" : ""}${
        n.status === "error" ? " wb-tv-failed" : ""}`,
      "data-span": n.span_id, "data-name": n.name, tabindex: 0, role: "button",
      "aria-pressed": n.span_id === current,
      "aria-label": `${n.label}, ${n.status}, ${ms(n.duration_ms)}` },
    h("div", { class: "wb-tv-span-name", style: `padding-left: ${0.3 + n.depth * 1.1}rem` },
      h("span", { class: "wb-tv-dot", "data-status": n.status }),
      h("span", { class: "wb-tv-span-label", text: n.label }),
      n.summary ? h("span", { class: "wb-tv-summary", text: n.summary }) : null),
    h("div", { class: "wb-tv-track" },
      h("div", { class: "wb-tv-bar", "data-status": n.status,
                 style: `left: ${n.left_pct}%; width: max(2px, ${n.width_pct}%)` })),
    h("span", { class: "wb-tv-bar-text", text: `+${ms(n.offset_ms)} · ${ms(n.duration_ms)}` }),
  ));
  return h("section", { class: "wb-tv-tree", "aria-label": "Trace tree" },
    h("h4", { class: "wb-tv-tree-title" }, "Trace ", h("code", { text: info.trace_id || "" }),
      ` · ${info.time || ""} UTC · ${info.spans} spans · ${ms(info.duration_ms)}`,
      info.errors ? h("span", { class: "wb-tv-inner-errors", text: ` · ${info.errors} failed` })
        : null),
    info.truncated ? h("p", { class: "wb-tv-hint", text: "Only the first spans are shown." })
      : null,
    h("div", { class: "wb-tv-spans" }, rows));
}

function detail(model) {
  const d = model.get("span_detail") || {};
  if (!d.span_id) return null;
  const sections = SECTIONS.map(([section, title]) => {
    const fields = (d.fields || []).filter((f) => f.section === section);
    if (!fields.length) return null;
    return h("div", { class: `wb-tv-section wb-tv-section-${section}` },
      h("h5", { text: title }),
      h("dl", {}, fields.flatMap((f) => [
        h("dt", { text: f.key }),
        h("dd", {},
          h("pre", { class: "wb-tv-value", "data-field": f.key },
            f.text, f.hidden ? "…" : null),
          f.hidden
            ? h("button", { type: "button", class: "wb-tv-more", "data-expand": f.id,
                            text: `Show ${f.hidden} more characters` })
            : (model.get("expanded") || []).includes(f.id)
              ? h("button", { type: "button", class: "wb-tv-less", "data-collapse": f.id,
                              text: "Show less" })
              : null),
      ])));
  });
  return h("section", { class: "wb-tv-detail", "aria-label": "Span details" },
    h("div", { class: "wb-tv-detail-head" },
      h("strong", { text: d.label }), " ", statusBadge(d.status),
      h("span", { class: "wb-tv-muted", text: ` ${d.name} · started +${ms(d.offset_ms)} · ` +
                  `took ${ms(d.duration_ms)}` })),
    d.error ? h("div", { class: "wb-tv-span-error", role: "note", text: d.error }) : null,
    sections);
}

function view(model, onRefresh) {
  const error = model.get("error") || "";
  const path = model.get("project_path") || "";
  const refresh = h("button", { type: "button", class: "wb-tv-refresh", text: "Refresh" });
  refresh.addEventListener("click", onRefresh);
  return [
    h("header", { class: "wb-tv-header" },
      h("div", {}, h("h3", { class: "wb-tv-title", text: "Traces" }),
        path ? h("div", { class: "wb-tv-path", title: path, text: path }) : null),
      refresh),
    error ? h("div", { class: "wb-tv-error", role: "alert" }, withCode(error)) : null,
    filterBar(model),
    traceList(model),
    pager(model),
    h("div", { class: "wb-tv-panes" }, waterfall(model), detail(model)),
  ];
}

export default {
  render({ model, el }) {
    const root = h("div", { class: "wb-traces" });
    el.append(root);

    const send = (name, value) => {
      model.set(name, value);
      model.save_changes();
    };
    const onRefresh = () => bump(model, "refresh_count");

    root.addEventListener("change", (event) => {
      const target = event.target;
      if (target instanceof Element && target.dataset.filter) {
        send(target.dataset.filter, target.value);
      }
    });
    root.addEventListener("click", (event) => {
      const target = event.target instanceof Element ? event.target : null;
      if (!target || !root.contains(target)) return;
      const button = target.closest("button");
      if (button?.dataset.page !== undefined) {
        send("page", Number(button.dataset.page));
        return;
      }
      if (button?.dataset.expand) {
        send("expanded", [...(model.get("expanded") || []), button.dataset.expand]);
        return;
      }
      if (button?.dataset.collapse) {
        send("expanded", (model.get("expanded") || []).filter((id) => id !== button.dataset.collapse));
        return;
      }
      const span = target.closest("[data-span]");
      if (span) {
        send("selected_span", span.dataset.span);
        return;
      }
      const row = target.closest("[data-trace]");
      if (row) send("selected", row.dataset.trace);
    });
    root.addEventListener("keydown", (event) => {
      if (event.key !== "Enter" && event.key !== " ") return;
      const target = event.target instanceof Element ? event.target : null;
      if (!target || target.matches("input, select, button")) return;
      if (target.dataset.span) send("selected_span", target.dataset.span);
      else if (target.dataset.trace) send("selected", target.dataset.trace);
      else return;
      event.preventDefault();
    });

    const redraw = () => {
      // Redrawing replaces the controls: keep focus (and a half-typed user id) where it was.
      // (Inside a shadow root, as in marimo, document.activeElement is only the host.)
      const active = root.getRootNode().activeElement ?? document.activeElement;
      const keep = active && root.contains(active)
        ? ["filter", "trace", "span", "expand", "page"].map((k) => [k, active.dataset?.[k]])
            .find(([, v]) => v !== undefined)
        : null;
      const typing = active?.dataset?.filter === "user" ? active.value : null;
      root.replaceChildren(...view(model, onRefresh).filter(Boolean));
      if (keep) {
        const [key, value] = keep;
        const attr = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
        const again = root.querySelector(`[data-${attr}="${CSS.escape(value)}"]`);
        again?.focus();
        if (again && typing !== null) again.value = typing;
      }
    };

    return redrawOn(model, TRAITS, redraw);
  },
};
