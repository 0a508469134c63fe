"""A small, honest ReAct loop: the model writes Thought / Action, the harness runs the tool and
feeds back the Observation, until a Final Answer or the step limit.

Small models (the bundled 135M one included) often do not follow the format: they invent the
observation, skip the action, or ramble. The trace says exactly that instead of guessing, which is
the lesson: tool use needs a model that can follow a protocol, which is where hosted models shine.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.records import Completion

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project

Tool = Callable[[str], str]

# A tiny order table for the built-in tool, in the help-desk sample's world.
ORDERS: dict[str, dict[str, str]] = {
    "A1001": {"status": "shipped", "carrier": "DHL", "eta": "2026-12-02", "total": "48.50 EUR"},
    "A1002": {"status": "processing", "carrier": "-", "eta": "2026-12-05", "total": "129.00 EUR"},
    "A1003": {"status": "delivered", "carrier": "UPS", "eta": "2026-11-20", "total": "15.99 EUR"},
    "A1004": {"status": "cancelled", "carrier": "-", "eta": "-", "total": "0.00 EUR"},
}


def lookup_order(order_id: str) -> str:
    """lookup_order(order_id): status, carrier, delivery date and total of an order, e.g. A1001."""
    key = order_id.strip().strip("\"'").upper()
    order = ORDERS.get(key)
    if order is None:
        return f"No order {key!r}. Known order ids look like A1001."
    return f"order {key}: " + ", ".join(f"{k}={v}" for k, v in order.items())


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
        ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos}


def calculator(expression: str) -> str:
    """calculator(expression): arithmetic with + - * / // % ** and parentheses, e.g. 12*(3+4)."""
    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 100:
                raise ValueError("exponent too large")
            return _OPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.operand))
        raise ValueError("only numbers and + - * / // % ** ( ) are allowed")

    text = expression.strip().strip("`\"'").replace("×", "*").replace("^", "**")
    try:
        result = value(ast.parse(text, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError) as exc:
        return f"Error: cannot compute {text!r}: {exc}"
    if isinstance(result, float) and result.is_integer():
        result = int(result)
    return str(result)


DEFAULT_TOOLS: dict[str, Tool] = {"lookup_order": lookup_order, "calculator": calculator}

REACT_INSTRUCTIONS = """\
Answer the question. You can use these tools:
{tools}

Use exactly this format, one step per reply:
Thought: what you need to find out next
Action: tool_name[argument]

The system then replies with "Observation: <the tool's result>". Repeat Thought/Action as needed.
When you know the answer, reply:
Thought: I know the answer
Final Answer: <the answer>"""

_ACTION = re.compile(r"^[\s*]*Action\s*\d*\s*:\s*`?([A-Za-z_]\w*)\s*[\[(](.*?)[\])]`?\s*$",
                     re.IGNORECASE | re.MULTILINE)
_ACTION_INPUT = re.compile(r"^[\s*]*Action\s*\d*\s*:\s*`?([A-Za-z_]\w*)`?\s*\n[\s*]*Action\s+"
                           r"Input\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_FINAL = re.compile(r"^[\s*]*Final\s+Answer\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_THOUGHT = re.compile(r"^[\s*]*Thought\s*\d*\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_OBSERVATION = re.compile(r"^[\s*]*Observation\s*\d*\s*:", re.IGNORECASE | re.MULTILINE)


@dataclass
class ReactStep:
    reply: str  # what the model wrote this step (cut before any observation it invented)
    thought: str | None = None
    action: str | None = None
    action_input: str | None = None
    observation: str | None = None
    final_answer: str | None = None
    invented_observation: bool = False  # the model wrote its own "Observation:" line


@dataclass
class ReactTrace:
    """The whole exchange. ``followed_format`` is False as soon as one reply had neither a valid
    action nor a final answer; ``stopped`` says why the loop ended: ``answered``,
    ``format_not_followed``, ``max_steps`` or ``error``."""

    question: str
    model: str | None
    steps: list[ReactStep] = field(default_factory=list)
    answer: str | None = None
    followed_format: bool = True
    stopped: str = "answered"
    error: str | None = None
    messages: list[dict] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)

    @property
    def tools_used(self) -> list[str]:
        return [s.action for s in self.steps if s.action]

    def summary(self) -> str:
        if self.stopped == "answered":
            used = ", ".join(self.tools_used) or "no tools"
            return f"Answered {self.answer!r} in {len(self.steps)} step(s) using {used}."
        if self.stopped == "format_not_followed":
            return ("The model did not follow the ReAct format (no 'Action: tool[argument]' and no "
                    f"'Final Answer:' line in step {len(self.steps)}), so no tool ran and there "
                    "is no answer.")
        if self.stopped == "max_steps":
            return f"No final answer after {len(self.steps)} step(s)."
        return f"The model call failed: {self.error}"

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([{"step": i + 1, "thought": s.thought, "action": s.action,
                              "input": s.action_input, "observation": s.observation,
                              "final_answer": s.final_answer, "reply": s.reply}
                             for i, s in enumerate(self.steps)])

    def transcript(self) -> str:
        lines = [f"Question: {self.question}"]
        for i, s in enumerate(self.steps, 1):
            lines.append(f"--- step {i}")
            lines.append(s.reply.strip() or "(empty reply)")
            if s.observation is not None:
                lines.append(f"Observation: {s.observation}")
        lines.append(f"=== {self.summary()}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.transcript()


def tool_descriptions(tools: dict[str, Tool]) -> str:
    out = []
    for name, fn in tools.items():
        doc = (fn.__doc__ or "").strip().splitlines()
        out.append(f"- {doc[0] if doc else name + '(argument)'}")
    return "\n".join(out)


def parse_step(text: str) -> ReactStep:
    """Read one model reply: its thought, action and input, or final answer. Anything the model
    wrote from its own "Observation:" on is dropped: observations come from tools only."""
    cut = _OBSERVATION.search(text)
    reply = text[:cut.start()] if cut else text
    step = ReactStep(reply=reply.rstrip(), invented_observation=cut is not None)
    thought = _THOUGHT.search(reply)
    step.thought = thought.group(1) if thought else None
    action = _ACTION.search(reply) or _ACTION_INPUT.search(reply)
    final = _FINAL.search(reply)
    if action and (not final or action.start() < final.start()):
        step.action, step.action_input = action.group(1), action.group(2).strip().strip("\"'")
    elif final:
        step.final_answer = final.group(1).strip()
    return step


def react(project: Project | None, question: str, tools: dict[str, Tool] | None = None, *,
          model: str | None = None, max_steps: int = 4, system: str = "",
          **options: Any) -> ReactTrace:
    """Run the ReAct loop on ``question`` with ``tools`` (name → function of one string; default
    ``lookup_order`` and ``calculator``). Never raises for model behaviour: the trace tells what
    happened. ``options`` go to ``workbench.llm.complete``."""
    from workbench import llm

    tools = DEFAULT_TOOLS if tools is None else tools
    instructions = REACT_INSTRUCTIONS.format(tools=tool_descriptions(tools))
    messages = [{"role": "system", "content": f"{system.strip()}\n\n{instructions}".strip()},
                {"role": "user", "content": f"Question: {question}"}]
    trace = ReactTrace(question=question, model=model)
    options.setdefault("stop", ["\nObservation:"])
    options.setdefault("max_tokens", 256)
    for _ in range(max_steps):
        try:
            reply = llm.complete(messages, model=model, project=project, **options)
        except WorkbenchError as exc:
            trace.stopped, trace.error = "error", exc.one_line()
            break
        trace.completions.append(reply)
        trace.model = reply.model
        step = parse_step(reply.text)
        trace.steps.append(step)
        messages.append({"role": "assistant", "content": step.reply})
        if step.action:
            fn = tools.get(step.action)
            if fn is None:
                step.observation = (f"There is no tool {step.action!r}. Available: "
                                    f"{', '.join(tools)}.")
            else:
                try:
                    step.observation = str(fn(step.action_input or ""))
                except Exception as exc:  # a tool's failure is an observation, not a crash
                    step.observation = f"Error: {type(exc).__name__}: {exc}"
            messages.append({"role": "user", "content": f"Observation: {step.observation}"})
            continue
        if step.final_answer is not None:
            trace.answer, trace.stopped = step.final_answer, "answered"
            break
        trace.followed_format, trace.stopped = False, "format_not_followed"
        break
    else:
        trace.stopped = "max_steps"
    trace.messages = messages
    return trace
