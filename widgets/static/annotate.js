// Annotator: draws the traits of widgets.annotate.Annotator and reports what the user pressed or
// clicked through the `events` trait: every event Python has not yet acknowledged (`handled`),
// numbered, so updates that marimo merges while the kernel is busy lose none of them. Which key does what, what comes next and undo are all
// decided in Python. Plain ES module, no build step, no network; item text goes in through
// textContent, never innerHTML, since it comes from user data.

import { h, redrawOn } from "./_dom.js";

const TRAITS = ["labels", "shortcuts", "current", "position", "total", "labelled", "skipped",
  "can_undo", "finished", "annotations", "message", "error"];

function shortcutFor(keys, action) {
  return Object.keys(keys).find((key) => keys[key] === action);
}

function progress(model) {
  const total = model.get("total") || 0;
  const labelled = model.get("labelled") || 0;
  const skipped = model.get("skipped") || 0;
  const pct = total ? (100 * labelled) / total : 0;
  return h(
    "div",
    { class: "wb-ann-progress" },
    h("div", { class: "wb-ann-progress-text" },
      h("span", { class: "wb-ann-count", text: `${labelled} / ${total} labelled` }),
      skipped ? h("span", { class: "wb-ann-skipped", text: `· ${skipped} skipped` }) : null),
    h("div", { class: "wb-ann-bar", role: "progressbar", "aria-valuemin": 0,
               "aria-valuemax": total, "aria-valuenow": labelled,
               "aria-label": `${labelled} of ${total} labelled` },
      h("div", { class: "wb-ann-bar-fill", style: `width: ${pct}%` })),
  );
}

function itemView(model) {
  const item = model.get("current") || {};
  const total = model.get("total") || 0;
  const meta = h("div", { class: "wb-ann-meta" },
    `Item ${(model.get("position") || 0) + 1} of ${total}`,
    h("span", { class: "wb-ann-id", text: ` · id ${item.id}` }),
    item.status === "skipped" ? h("span", { class: "wb-ann-badge", text: "skipped before" }) : null);
  const current = item.label
    ? h("div", { class: "wb-ann-current" }, "Current label: ",
        h("strong", { text: item.label }), " — press Enter to keep it")
    : null;
  return h("section", { class: "wb-ann-item", "aria-label": "Item to label" },
    meta, h("div", { class: "wb-ann-input", text: item.input ?? "" }), current);
}

function labelButtons(model) {
  const keys = model.get("shortcuts") || {};
  const item = model.get("current") || {};
  return h("div", { class: "wb-ann-labels", role: "group", "aria-label": "Labels" },
    (model.get("labels") || []).map((label) => {
      const key = shortcutFor(keys, `label:${label}`);
      const classes = ["wb-ann-label"];
      if (item.label === label) classes.push("wb-ann-is-current");
      if (item.annotation === label) classes.push("wb-ann-is-chosen");
      return h("button", { type: "button", class: classes.join(" "), "data-label": label,
                           "aria-keyshortcuts": key || null },
        key ? h("kbd", { text: key }) : null, h("span", { text: label }));
    }));
}

function actions(model, finished) {
  const keys = model.get("shortcuts") || {};
  const skipKey = shortcutFor(keys, "skip");
  const undoKey = shortcutFor(keys, "undo");
  return h("div", { class: "wb-ann-actions" },
    finished ? null : h("button", { type: "button", class: "wb-ann-skip", "data-action": "skip" },
      "Skip", skipKey ? h("kbd", { text: skipKey.toUpperCase() }) : null),
    finished && model.get("skipped")
      ? h("button", { type: "button", class: "wb-ann-review", "data-action": "review_skipped",
                      text: `Review ${model.get("skipped")} skipped` })
      : null,
    h("button", { type: "button", class: "wb-ann-undo", "data-action": "undo",
                  disabled: !model.get("can_undo") },
      "Undo", undoKey ? h("kbd", { text: undoKey.toUpperCase() }) : null),
    h("span", { class: "wb-ann-hint",
                text: "Keys work while the annotator has focus (click it first)." }));
}

function view(model) {
  const finished = model.get("finished");
  const parts = [progress(model)];
  if (finished) {
    const total = model.get("total") || 0;
    const skipped = model.get("skipped") || 0;
    parts.push(h("section", { class: "wb-ann-done", role: "status" },
      h("strong", { text: "All done. " }),
      `${model.get("labelled") || 0} / ${total} labelled`,
      skipped ? `, ${skipped} skipped.` : "."));
  } else {
    parts.push(itemView(model), labelButtons(model));
  }
  parts.push(actions(model, finished));
  const message = model.get("message");
  if (message) parts.push(h("div", { class: "wb-ann-message", role: "status", text: message }));
  const error = model.get("error");
  if (error) parts.push(h("div", { class: "wb-ann-error", role: "alert", text: error }));
  return parts;
}

export default {
  render({ model, el }) {
    const root = h("div", { class: "wb-annotate", tabindex: 0,
                            "aria-label": "Annotator: number keys pick a label",
                            // JupyterLab: keys pressed here are ours, not notebook shortcuts.
                            "data-lm-suppress-shortcuts": "true" });
    el.append(root);

    let last = model.get("handled") || 0;
    const send = (payload) => {
      const handled = model.get("handled") || 0;
      const pending = (model.get("events") || []).filter((e) => e.n > handled);
      last = Math.max(last, handled, ...pending.map((e) => e.n)) + 1;
      model.set("events", [...pending, { ...payload, n: last }]);
      model.save_changes();
    };

    root.addEventListener("click", (event) => {
      const target = event.target instanceof Element ? event.target.closest("button") : null;
      if (!target || !root.contains(target)) return;
      if (target.dataset.label !== undefined) send({ type: "label", label: target.dataset.label });
      else if (target.dataset.action) send({ type: target.dataset.action });
    });

    root.addEventListener("keydown", (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
      const tag = event.target?.tagName;
      if (tag === "INPUT" || tag === "TEXTAREA") return;
      const keys = model.get("shortcuts") || {};
      if (!(event.key in keys)) return;
      // Space and Enter on a focused button would also click it: the key wins, once.
      event.preventDefault();
      event.stopPropagation();
      if (event.repeat) return;
      send({ type: "key", key: event.key });
    });

    const draw = () => {
      // Redrawing replaces the buttons: keep the keyboard on the annotator.
      // (Inside a shadow root, as in marimo, document.activeElement is only the host.)
      const active = root.getRootNode().activeElement ?? document.activeElement;
      const hadFocus = active === root || root.contains(active);
      root.replaceChildren(...view(model));
      if (hadFocus) root.focus({ preventScroll: true });
    };

    return redrawOn(model, TRAITS, draw);
  },
};
