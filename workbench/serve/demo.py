"""A page at ``/`` to try the service and rate its answers: for demos and beta users.

One self-contained HTML document (inline CSS and JS, nothing from a CDN: it works offline),
built from the deployment's template variables. Loading it needs no key, like ``/docs``; the
page asks for one once, keeps it in ``sessionStorage`` (gone when the tab closes, never in a
URL, a cookie or the page) and sends it with each call: ``POST /v1/predict`` to ask,
``POST /v1/feedback`` to rate the answer (thumbs up, or thumbs down with the right answer).
Errors show the service's own ``error`` and ``fix``.

The page says what to send, like the public OpenAPI document, never which prompt or model
answers. A Content-Security-Policy allows only its own inline script and style (by hash) and
calls to its own origin, and forbids form submissions, so even with scripts off nothing typed
into it can end up in a URL.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape
from typing import TYPE_CHECKING, Any

from workbench.serve.deployment import FEEDBACK_CHARS

if TYPE_CHECKING:
    from workbench.serve.service import Service

PATH = "/"

_STYLE = """
:root { color-scheme: light dark; --accent: #2457c5; --bad: #b3261e; --good: #1b6e3a;
  --line: #8886; font-family: system-ui, sans-serif; line-height: 1.45; }
body { margin: 0 auto; max-width: 46rem; padding: 1.5rem 1rem 3rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
p.lead { margin: 0 0 1.25rem; opacity: .8; }
section { border: 1px solid var(--line); border-radius: .5rem; padding: 1rem;
  margin: 0 0 1rem; }
h2 { font-size: 1.05rem; margin: 0 0 .75rem; }
label { display: block; font-weight: 600; margin: .5rem 0 .25rem; }
input, textarea { box-sizing: border-box; width: 100%; font: inherit; padding: .45rem;
  border: 1px solid var(--line); border-radius: .35rem; background: transparent;
  color: inherit; }
textarea { min-height: 5rem; resize: vertical; }
button { font: inherit; padding: .45rem .9rem; border-radius: .35rem; cursor: pointer;
  border: 1px solid var(--accent); background: var(--accent); color: #fff; margin-top: .6rem; }
button.plain { background: transparent; color: inherit; border-color: var(--line); }
button[aria-pressed="true"] { outline: 3px solid var(--accent); outline-offset: 1px; }
button:disabled { opacity: .6; cursor: wait; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.row { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; }
.hint { font-size: .9rem; opacity: .8; margin: .25rem 0 0; }
.answer { font-size: 1.15rem; white-space: pre-wrap; margin: .25rem 0 .5rem; }
.meta { font-size: .85rem; opacity: .75; }
.error { border: 1px solid var(--bad); border-left-width: .4rem; border-radius: .35rem;
  padding: .6rem .8rem; margin: .75rem 0 0; }
.error strong { color: var(--bad); }
.done { color: var(--good); font-weight: 600; }
[hidden] { display: none !important; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; }
"""

_SCRIPT = """
(() => {
  "use strict";
  const STORE = "workbench-service-key";
  const $ = (id) => document.getElementById(id);
  const keyForm = $("key-form"), keySet = $("key-set"), askForm = $("ask-form");
  const result = $("result"), rating = $("rating"), thanks = $("thanks");
  let requestId = null;

  const api = (path) => new URL(path, document.baseURI).toString();
  const key = () => sessionStorage.getItem(STORE);

  function showKeyState() {
    const has = !!key();
    keyForm.hidden = has;
    keySet.hidden = !has;
    askForm.querySelector("button[type=submit]").disabled = !has;
    $("ask-hint").hidden = has;
  }

  function showError(where, body, status) {
    const box = $(where);
    box.replaceChildren();
    const title = document.createElement("strong");
    title.textContent = (body && body.error) ? String(body.error) :
      "The service answered " + status + ".";
    box.append(title);
    if (body && body.fix) {
      const fix = document.createElement("p");
      fix.className = "fix";
      fix.textContent = String(body.fix);
      box.append(fix);
    }
    if (body && body.request_id) {
      const id = document.createElement("p");
      id.className = "meta";
      id.textContent = "Request id: " + body.request_id;
      box.append(id);
    }
    box.hidden = false;
    box.focus();
  }

  async function call(path, payload) {
    let reply;
    try {
      reply = await fetch(api(path), {
        method: "POST", cache: "no-store", credentials: "omit",
        headers: {"Content-Type": "application/json", "Authorization": "Bearer " + key()},
        body: JSON.stringify(payload),
      });
    } catch (err) {
      return {ok: false, status: 0, body: {error: "The service could not be reached.",
        fix: "Check that it is running, then try again."}};
    }
    let body = null;
    try { body = await reply.json(); } catch (err) { body = null; }
    if (reply.status === 401) {  // a wrong key: ask for it again
      sessionStorage.removeItem(STORE);
      showKeyState();
    }
    return {ok: reply.ok, status: reply.status, body: body};
  }

  keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("key").value.trim();
    if (!value) { $("key").focus(); return; }
    sessionStorage.setItem(STORE, value);
    $("key").value = "";
    showKeyState();
    askForm.querySelector("textarea, input").focus();
  });

  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(STORE);
    showKeyState();
    $("key").focus();
  });

  askForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!key()) { showKeyState(); $("key").focus(); return; }
    const payload = {};
    for (const field of askForm.querySelectorAll("[data-variable]")) {
      payload[field.dataset.variable] = field.value;
    }
    const button = askForm.querySelector("button[type=submit]");
    button.disabled = true;
    $("ask-error").hidden = true;
    $("status").textContent = "Asking…";
    const reply = await call("v1/predict", payload);
    button.disabled = !key();
    if (!reply.ok) {
      $("status").textContent = "";
      result.hidden = true;
      showError("ask-error", reply.body, reply.status);
      return;
    }
    const body = reply.body;
    requestId = body.request_id;
    const parsed = body.parse_ok && body.parsed !== null && body.parsed !== undefined;
    $("answer").textContent = parsed ? (typeof body.parsed === "string" ? body.parsed :
      JSON.stringify(body.parsed, null, 2)) : (body.output || "");
    $("answer-meta").textContent = "Request id " + body.request_id + " · " +
      Math.round(body.latency_ms) + " ms" + (body.cached ? " · from the cache" : "");
    for (const b of rating.querySelectorAll("button[aria-pressed]")) {
      b.setAttribute("aria-pressed", "false");
    }
    $("correction-box").hidden = true;
    $("correction").value = "";
    $("comment").value = "";
    thanks.hidden = true;
    $("feedback-error").hidden = true;
    result.hidden = false;
    $("status").textContent = "Answered.";
    $("answer-title").focus();
  });

  async function sendFeedback(verdict) {
    const payload = {request_id: requestId, rating: verdict};
    const correction = $("correction").value.trim(), comment = $("comment").value.trim();
    if (verdict === "down" && correction) payload.correction = correction;
    if (comment) payload.comment = comment;
    $("feedback-error").hidden = true;
    thanks.hidden = true;
    const reply = await call("v1/feedback", payload);
    if (!reply.ok) { showError("feedback-error", reply.body, reply.status); return; }
    thanks.textContent = verdict === "up" ? "Thanks: recorded as a good answer." :
      "Thanks: recorded" + (payload.correction ? ", with your correction." : ".");
    thanks.hidden = false;
  }

  $("thumbs-up").addEventListener("click", () => {
    $("thumbs-up").setAttribute("aria-pressed", "true");
    $("thumbs-down").setAttribute("aria-pressed", "false");
    $("correction-box").hidden = true;
    sendFeedback("up");
  });
  $("thumbs-down").addEventListener("click", () => {
    $("thumbs-down").setAttribute("aria-pressed", "true");
    $("thumbs-up").setAttribute("aria-pressed", "false");
    thanks.hidden = true;
    $("correction-box").hidden = false;
    $("correction").focus();
  });
  $("correction-box").addEventListener("submit", (event) => {
    event.preventDefault();
    sendFeedback("down");
  });

  showKeyState();
})();
"""


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CSP = ("default-src 'none'; " f"script-src {_digest(_SCRIPT)}; style-src {_digest(_STYLE)}; "
       "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")


def page(variables: list[str], max_chars: int) -> str:
    """The page for a template with ``variables``, each at most ``max_chars`` characters."""
    fields = []
    for i, name in enumerate(variables):
        label = escape(name.replace("_", " ").capitalize())
        fields.append(
            f'<label for="var-{i}">{label}</label>'
            f'<textarea id="var-{i}" name="{escape(name)}" data-variable="{escape(name)}" '
            f'required maxlength="{max_chars}" aria-describedby="limit-{i}"></textarea>'
            f'<p class="hint" id="limit-{i}">Up to {max_chars:,} characters '
            f'(<code>{escape(name)}</code>).</p>')
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Try the service</title>
<link rel="icon" href="data:,">
<style>{_STYLE}</style>
</head>
<body>
<main>
<h1>Try the service</h1>
<p class="lead">Ask, read the answer, and say whether it was right: your verdict and
correction go to the project's feedback, where the next version learns from them.</p>

<section aria-labelledby="key-title">
<h2 id="key-title">Your API key</h2>
<form id="key-form" autocomplete="off">
<label for="key">API key</label>
<input id="key" name="key" type="password" autocomplete="off" spellcheck="false" required
 aria-describedby="key-hint">
<p class="hint" id="key-hint">Kept in this tab only (sessionStorage) and sent with each call;
never put in the address bar.</p>
<button type="submit">Use this key</button>
</form>
<div id="key-set" class="row" hidden>
<span>A key is set for this tab.</span>
<button type="button" class="plain" id="forget-key">Forget the key</button>
</div>
</section>

<section aria-labelledby="ask-title">
<h2 id="ask-title">Ask</h2>
<form id="ask-form">
{"".join(fields)}
<button type="submit" disabled>Ask</button>
<p class="hint" id="ask-hint">Enter your API key first.</p>
</form>
<p id="status" class="sr-only" role="status" aria-live="polite"></p>
<div id="ask-error" class="error" role="alert" tabindex="-1" hidden></div>
</section>

<section id="result" aria-labelledby="answer-title" hidden>
<h2 id="answer-title" tabindex="-1">Answer</h2>
<p id="answer" class="answer"></p>
<p id="answer-meta" class="meta"></p>
<div id="rating" role="group" aria-labelledby="rating-label">
<p id="rating-label">Was this answer right?</p>
<div class="row">
<button type="button" class="plain" id="thumbs-up" aria-pressed="false">
<span aria-hidden="true">&#128077;</span> Yes, right</button>
<button type="button" class="plain" id="thumbs-down" aria-pressed="false">
<span aria-hidden="true">&#128078;</span> No, wrong</button>
</div>
</div>
<form id="correction-box" hidden>
<label for="correction">The right answer</label>
<textarea id="correction" maxlength="{FEEDBACK_CHARS}" aria-describedby="correction-hint"></textarea>
<p class="hint" id="correction-hint">Optional, and the most useful part.</p>
<label for="comment">Comment</label>
<textarea id="comment" maxlength="{FEEDBACK_CHARS}"></textarea>
<button type="submit">Send feedback</button>
</form>
<p id="thanks" class="done" role="status" hidden></p>
<div id="feedback-error" class="error" role="alert" tabindex="-1" hidden></div>
</section>
</main>
<script>{_SCRIPT}</script>
</body>
</html>
"""


def add_demo_page(app: Any, service: Service) -> None:
    """``GET /``: the page, public like the documentation (its calls carry the key)."""
    from fastapi.responses import HTMLResponse

    html = page(service.spec.variables, service.spec.max_input_chars)
    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}

    def demo() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)

    app.get(PATH, include_in_schema=False, response_class=HTMLResponse)(demo)
    service.public.add(PATH)
