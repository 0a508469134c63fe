// Project overview: draws the traits of widgets.overview.ProjectOverview and reports clicks.
// Plain ES module, no build step, no network. Every piece of project text goes in through
// textContent, never innerHTML, since names and summaries come from user files.

import { bump, h, withCode } from "./_dom.js";

const STATE_LABELS = { done: "Done", started: "Started", todo: "To do" };
const TRAITS = ["project_name", "project_path", "phases", "next_phase", "selected", "error"];

function stateOf(phase) {
  return STATE_LABELS[phase.state] ? phase.state : "todo";
}

function card(phase, { isNext, isSelected }) {
  const state = stateOf(phase);
  const classes = ["wb-card", `wb-state-${state}`];
  if (isNext) classes.push("wb-is-next");
  if (isSelected) classes.push("wb-is-selected");
  if (!phase.available) classes.push("wb-unavailable");
  const labelParts = [
    `Phase ${phase.number}: ${phase.title}`,
    STATE_LABELS[state],
    phase.summary,
    isNext ? "next step" : null,
    phase.available ? null : "notebook coming later",
  ];
  return h(
    "button",
    {
      type: "button",
      class: classes.join(" "),
      "data-phase": phase.number,
      "data-state": state,
      "aria-pressed": isSelected ? "true" : "false",
      "aria-label": labelParts.filter(Boolean).join(". "),
    },
    h(
      "span",
      { class: "wb-card-top" },
      h("span", { class: "wb-num", text: String(phase.number) }),
      h("span", { class: `wb-badge wb-badge-${state}`, text: STATE_LABELS[state] }),
      isNext ? h("span", { class: "wb-badge wb-badge-next", text: "Next" }) : null,
    ),
    h("span", { class: "wb-card-title", text: phase.title }),
    h("span", { class: "wb-card-summary", text: phase.summary || "nothing yet" }),
    h(
      "span",
      { class: "wb-card-notebook" },
      h("code", { text: phase.notebook }),
      phase.available ? null : h("span", { class: "wb-later", text: "coming later" }),
    ),
  );
}

function details(phase, nextPhase) {
  if (!phase) {
    return h(
      "section",
      { class: "wb-details wb-details-empty" },
      h("p", { text: "Click a phase to see what it is for and which notebook to open." }),
    );
  }
  const state = stateOf(phase);
  const open = phase.available
    ? h("p", { class: "wb-open" }, "Open ", h("code", { text: `notebooks/${phase.notebook}` }),
        " (or its Jupyter twin in ", h("code", { text: "notebooks/jupyter/" }), ").")
    : h("p", { class: "wb-open" }, "The notebook ", h("code", { text: phase.notebook }),
        " is coming later.");
  return h(
    "section",
    { class: "wb-details", "aria-label": `Phase ${phase.number} details` },
    h(
      "div",
      { class: "wb-details-head" },
      h("span", { class: "wb-num", text: String(phase.number) }),
      h("h4", { class: "wb-details-title", text: phase.title }),
      h("span", { class: `wb-badge wb-badge-${state}`, text: STATE_LABELS[state] }),
      phase.number === nextPhase ? h("span", { class: "wb-badge wb-badge-next", text: "Next" }) : null,
    ),
    h("p", { class: "wb-purpose", text: phase.purpose }),
    h("p", { class: "wb-has" }, h("strong", { text: "In this project: " }), phase.summary || "nothing yet"),
    open,
  );
}

function view(model, onRefresh) {
  const phases = model.get("phases") || [];
  const nextPhase = model.get("next_phase") || 0;
  const selected = model.get("selected") || 0;
  const error = model.get("error") || "";
  const name = model.get("project_name") || (error ? "No project open" : "Project");
  const path = model.get("project_path") || "";

  const done = phases.filter((p) => p.state === "done").length;
  const refresh = h("button", { type: "button", class: "wb-refresh", text: "Refresh" });
  refresh.addEventListener("click", onRefresh);

  const header = h(
    "header",
    { class: "wb-header" },
    h(
      "div",
      { class: "wb-heading" },
      h("h3", { class: "wb-title", text: name }),
      path ? h("div", { class: "wb-path", title: path, text: path }) : null,
    ),
    refresh,
  );

  const parts = [header];
  if (error) {
    parts.push(h("div", { class: "wb-error", role: "alert" },
      h("strong", { text: "The project could not be read. " }), withCode(error)));
  }
  if (phases.length) {
    const next = phases.find((p) => p.number === nextPhase);
    parts.push(
      h(
        "div",
        { class: "wb-progress" },
        h("div", { class: "wb-progress-text" },
          `${done} of ${phases.length} phases done. `,
          next
            ? h("span", { class: "wb-next-text" }, "Next: ",
                h("strong", { text: `${next.number}. ${next.title}` }))
            : h("strong", { text: "Every phase is done." })),
        h("div", { class: "wb-bar", role: "progressbar", "aria-valuemin": 0,
                   "aria-valuemax": phases.length, "aria-valuenow": done },
          h("div", { class: "wb-bar-fill", style: `width: ${(100 * done) / phases.length}%` })),
      ),
    );
    parts.push(
      h("div", { class: "wb-grid", role: "group", "aria-label": "Lifecycle phases" },
        phases.map((p) => card(p, { isNext: p.number === nextPhase, isSelected: p.number === selected }))),
    );
    parts.push(details(phases.find((p) => p.number === selected), nextPhase));
  }
  return parts;
}

export default {
  render({ model, el }) {
    const root = h("div", { class: "wb-overview" });
    el.append(root);

    const onRefresh = (event) => {
      // Python answers only if something changed, so show that the click was taken.
      const button = event.currentTarget;
      button.textContent = "Refreshing…";
      button.setAttribute("aria-busy", "true");
      setTimeout(() => {
        button.textContent = "Refresh";
        button.removeAttribute("aria-busy");
      }, 700);
      bump(model, "refresh_count");
    };

    root.addEventListener("click", (event) => {
      const target = event.target instanceof Element ? event.target.closest("[data-phase]") : null;
      if (!target || !root.contains(target)) return;
      model.set("selected", Number(target.dataset.phase));
      model.save_changes();
    });

    const draw = () => {
      // Rebuilding replaces the buttons: keep keyboard focus where the user left it.
      // (Inside a shadow root, as in marimo, document.activeElement is only the host.)
      const active = root.getRootNode().activeElement ?? document.activeElement;
      const focusedPhase = active?.dataset?.phase;
      const refreshFocused = active?.classList?.contains("wb-refresh");
      root.replaceChildren(...view(model, onRefresh));
      if (focusedPhase) root.querySelector(`[data-phase="${focusedPhase}"]`)?.focus();
      else if (refreshFocused) root.querySelector(".wb-refresh")?.focus();
    };

    draw();
    for (const name of TRAITS) model.on(`change:${name}`, draw);
    return () => {
      for (const name of TRAITS) model.off(`change:${name}`, draw);
    };
  },
};
