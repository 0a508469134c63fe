// What every widget's front end shares: making elements, showing `code` in kernel messages,
// sending a button press to Python, redrawing once per batch of changes. Plain ES module, no
// build step, no network.
//
// A widget imports what it uses with one line, `import { h, bump } from "./_dom.js";`. anywidget
// loads each widget's module on its own (from a string, so a relative import has nothing to
// resolve against), so the Python side writes this file in place of that line when the widget
// class is defined (widgets/_base.py, front_end). Keep it to top-level `export function`s.

// An element: `attrs` are attributes, except `class`, `text` (its textContent, so user text is
// never parsed as HTML), `value` (the live value of an input, select or textarea, set after the
// children so a select's options exist by then) and `onclick`-style listeners; a `false`, `null`
// or `undefined` attribute or child is left out, `true` gives an empty attribute.
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  let value;
  for (const [key, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (key === "class") node.className = v;
    else if (key === "text") node.textContent = v;
    else if (key === "value") value = v;
    else if (key.startsWith("on") && typeof v === "function") node.addEventListener(key.slice(2), v);
    else node.setAttribute(key, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  if (value !== undefined) node.value = value;
  return node;
}

// An SVG element (charts are inline SVG): every attribute is set as given.
export function svgEl(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, v] of Object.entries(attrs)) node.setAttribute(key, String(v));
  return node;
}

// Kernel messages quote commands in `backticks`: show those as code.
export function withCode(text) {
  return String(text).split("`").map((part, i) => (i % 2 ? h("code", { text: part }) : part));
}

// Python hears a button press as a counter trait going up by one: marimo and Jupyter both deliver
// a changed trait, and a count survives being merged with other updates.
export function bump(model, name) {
  model.set(name, (model.get(name) || 0) + 1);
  model.save_changes();
}

// Draw now, then again once for every batch of changes to `traits` (Python often changes several
// at once: one draw for all of them, in a microtask). Returns the cleanup anywidget's render hands
// back, which stops listening.
export function redrawOn(model, traits, draw) {
  let pending = false;
  const schedule = () => {
    if (pending) return;
    pending = true;
    queueMicrotask(() => {
      pending = false;
      draw();
    });
  };
  draw();
  for (const name of traits) model.on(`change:${name}`, schedule);
  return () => {
    for (const name of traits) model.off(`change:${name}`, schedule);
  };
}
