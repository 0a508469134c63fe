// Training monitor: draws widgets.training.TrainingMonitor's state (loss curves, progress) and
// reports Stop clicks. Plain ES module, no build step, no network; the chart is inline SVG.

import { bump, h, svgEl } from "./_dom.js";

const DONE = ["finished", "early_stopped", "stopped", "interrupted", "failed"];
const LABELS = {
  ready: "ready", loading: "loading the model", training: "training", stopping: "stopping",
  finished: "finished", early_stopped: "stopped early (validation loss stopped improving)",
  stopped: "stopped", interrupted: "interrupted (resume it)", failed: "failed",
};

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  return `${(seconds / 60).toFixed(1)} min`;
}

function chart(state) {
  const W = 560, H = 220, L = 44, R = 12, T = 12, B = 28;
  const train = state.train_losses || [], val = state.validation_losses || [];
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "wb-train-chart", role: "img",
    "aria-label": "training and validation loss by step" });
  const all = [...train, ...val];
  const total = Math.max(1, state.total_steps || 1);
  if (!all.length) {
    const t = svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "wb-train-empty" });
    t.textContent = "The loss curves appear after the first step.";
    svg.append(t);
    return svg;
  }
  const ys = all.map((p) => p[1]);
  const top = Math.max(...ys) * 1.05, bottom = Math.min(0, Math.min(...ys));
  const x = (step) => L + (W - L - R) * (step / total);
  const y = (v) => T + (H - T - B) * (1 - (v - bottom) / (top - bottom || 1));
  for (let i = 0; i <= 4; i++) {
    const v = bottom + ((top - bottom) * i) / 4;
    svg.append(svgEl("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "wb-train-grid" }));
    const label = svgEl("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "wb-train-tick" });
    label.textContent = v.toFixed(2);
    svg.append(label);
  }
  const xl = svgEl("text", { x: W - R, y: H - 6, "text-anchor": "end", class: "wb-train-tick" });
  xl.textContent = `step (of ${total})`;
  svg.append(xl);
  const line = (points, cls) => {
    if (!points.length) return;
    svg.append(svgEl("polyline", { points: points.map((p) => `${x(p[0])},${y(p[1])}`).join(" "),
      class: cls, fill: "none" }));
    for (const p of points) svg.append(svgEl("circle", { cx: x(p[0]), cy: y(p[1]), r: 2.5, class: cls }));
  };
  line(train, "wb-train-train");
  line(val, "wb-train-val");
  if (state.best_step) {
    svg.append(svgEl("line", { x1: x(state.best_step), x2: x(state.best_step), y1: T, y2: H - B,
      class: "wb-train-best" }));
  }
  return svg;
}

export default {
  render({ model, el }) {
    const root = h("div", { class: "wb-train" });
    el.append(root);
    const draw = () => {
      const st = model.get("state") || {};
      const status = st.status || "ready";
      const done = DONE.includes(status);
      const stop = h("button", { class: "wb-train-stop", type: "button",
        disabled: done || status === "stopping" || status === "ready" }, "Stop");
      stop.addEventListener("click", () => {
        bump(model, "stop_requests");
        stop.disabled = true;
      });
      const pct = st.total_steps ? Math.round((100 * (st.step || 0)) / st.total_steps) : 0;
      const lastTrain = (st.train_losses || []).slice(-1)[0];
      const lastVal = (st.validation_losses || []).slice(-1)[0];
      const facts = [
        ["step", `${st.step || 0} / ${st.total_steps || 0}`],
        ["epoch", `${st.epoch || 0} / ${st.epochs || 1}`],
        ["train loss", lastTrain ? lastTrain[1].toFixed(3) : "–"],
        ["validation loss", lastVal ? lastVal[1].toFixed(3) : "–"],
        ["best", st.best_step ? `${(st.best_validation_loss ?? 0).toFixed(3)} at step ${st.best_step}` : "–"],
        ["examples/s", st.examples_per_s ? st.examples_per_s.toFixed(1) : "–"],
        ["elapsed", duration(st.elapsed_s)],
        ["time left", done ? "–" : duration(st.eta_s)],
      ];
      root.replaceChildren(
        h("div", { class: "wb-train-head" },
          h("span", { class: `wb-train-status wb-train-${status}`, "data-status": status,
            text: `${st.name || "adapter"}: ${LABELS[status] || status}` }),
          stop),
        h("div", { class: "wb-train-bar" }, h("div", { class: "wb-train-fill",
          style: `width: ${pct}%` })),
        h("dl", { class: "wb-train-facts" },
          facts.map(([k, v]) => h("div", {}, h("dt", { text: k }), h("dd", { "data-fact": k, text: v })))),
        chart(st),
        h("div", { class: "wb-train-legend" },
          h("span", { class: "wb-train-key wb-train-key-train", text: "train loss" }),
          h("span", { class: "wb-train-key wb-train-key-val", text: "validation loss" }),
          h("span", { class: "wb-train-key wb-train-key-best", text: "best checkpoint" })),
        st.message ? h("div", { class: `wb-train-message${status === "failed" ? " wb-train-error" : ""}`,
          role: status === "failed" ? "alert" : "status", text: st.message }) : null,
      );
    };
    draw();
    model.on("change:state", draw);
    return () => model.off("change:state", draw);
  },
};
