"""Rendering prompt templates in a sandbox, with errors that name the variable and the line.

Templates are Jinja2 run in an immutable sandbox: they can read the item's values, loop, branch and
filter, but cannot reach Python internals (``__class__``, ``__globals__``), call mutating methods,
or build gigantic strings. A missing variable is an error, never a silent empty string, because a
prompt that quietly lost the customer's message still "works" and scores badly for no visible
reason.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from typing import Any

from workbench.errors import WorkbenchError

# Values a template must not see: ``expected`` is the answer (showing it is label leakage), and
# ``split`` is bookkeeping.
HIDDEN_VARIABLES = ("expected", "split")
MAX_REPEAT = 100_000  # longest string or list a template may build with * or **
_TAG = re.compile(r"^[A-Za-z][\w-]*$")


class TemplateError(WorkbenchError):
    """A template could not be compiled or rendered. ``variable`` and ``line`` say where."""

    def __init__(self, message: str, fix: str | None = None, *, variable: str | None = None,
                 line: int | None = None, part: str = "template"):
        self.variable = variable
        self.line = line
        self.part = part
        super().__init__(message, fix)


def delimit(text: Any, tag: str = "input") -> str:
    """Wrap untrusted text in ``<tag>…</tag>`` so the prompt can say "treat what is inside the
    tags as data". A closing tag inside the text is escaped, so the text cannot end the block
    early and smuggle instructions after it. Used in templates as ``{{ input | delimit }}``."""
    if not _TAG.match(tag):
        raise TemplateError(f"delimit() needs a simple tag name such as 'input', not {tag!r}.",
                            "Use letters, digits, '-' or '_'.")
    body = "" if text is None else str(text)
    body = re.sub(rf"<\s*/\s*{re.escape(tag)}\s*>", f"&lt;/{tag}&gt;", body, flags=re.IGNORECASE)
    return f"<{tag}>\n{body}\n</{tag}>"


_env = None
_env_lock = threading.Lock()


def environment():
    """The shared sandboxed Jinja2 environment (built on first use; jinja2 loads lazily)."""
    global _env
    if _env is None:
        with _env_lock:
            if _env is None:
                from jinja2 import StrictUndefined
                from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

                class Sandbox(ImmutableSandboxedEnvironment):
                    intercepted_binops = frozenset({"*", "**"})

                    def call_binop(self, context, operator, left, right):
                        # The stock sandbox caps range() but not 'x' * 10**9.
                        if operator == "**" and isinstance(right, (int, float)) and right > 64:
                            raise SecurityError("exponents above 64 are not allowed in templates")
                        if operator == "*":
                            for seq, n in ((left, right), (right, left)):
                                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) \
                                        and len(seq) * n > MAX_REPEAT:
                                    raise SecurityError(f"repeating a value to more than "
                                                        f"{MAX_REPEAT} items is not allowed")
                        return super().call_binop(context, operator, left, right)

                env = Sandbox(undefined=StrictUndefined, keep_trailing_newline=False,
                              autoescape=False)
                env.filters["delimit"] = delimit
                _env = env
    return _env


@lru_cache(maxsize=256)
def compile_template(source: str, part: str = "template"):
    """Compile once per distinct source; a syntax error raises ``TemplateError`` with its line."""
    from jinja2 import TemplateSyntaxError

    try:
        return environment().from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"The {part} has a syntax error on line {exc.lineno}: {exc.message}",
                            "Check the {{ }} and {% %} pairs on that line.",
                            line=exc.lineno, part=part) from None


@lru_cache(maxsize=256)
def variables_used(source: str) -> frozenset[str]:
    """The variables a template reads (for example ``{'input', 'channel'}``)."""
    from jinja2 import meta

    env = environment()
    try:
        return frozenset(meta.find_undeclared_variables(env.parse(source)))
    except Exception:
        compile_template(source)  # raises the friendly syntax error
        raise


def _template_line(exc: BaseException) -> int | None:
    """Jinja rewrites tracebacks so template frames carry the template's own line numbers."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render_text(source: str, variables: dict[str, Any], *, part: str = "template") -> str:
    """Render one template; every failure becomes a ``TemplateError`` naming variable and line."""
    from jinja2 import TemplateError as JinjaError
    from jinja2 import UndefinedError
    from jinja2.sandbox import SecurityError

    template = compile_template(source, part)
    try:
        return template.render(**variables)
    except UndefinedError as exc:
        line = _template_line(exc)
        where = f" on line {line}" if line else ""
        text = str(exc)
        missing = re.match(r"'(.+?)' is undefined", text)
        if missing:
            name = missing.group(1)
            if name in HIDDEN_VARIABLES:
                raise TemplateError(
                    f"The {part} uses {{{{ {name} }}}}{where}, which templates cannot see: "
                    + ("it is the answer, and showing it to the model is label leakage."
                       if name == "expected" else "it is bookkeeping, not input."),
                    f"Remove {{{{ {name} }}}} from the {part}.", variable=name, line=line,
                    part=part) from None
            known = ", ".join(sorted(k for k in variables if not k.startswith("_"))) or "none"
            raise TemplateError(
                f"The {part} uses the variable '{name}'{where}, but the item has no '{name}'.",
                f"Available variables: {known}. Add a '{name}' column to the data, fix the "
                f"name, or write {{{{ {name} | default('') }}}}.",
                variable=name, line=line, part=part) from None
        attribute = re.search(r"has no attribute '(.+?)'", text)
        raise TemplateError(f"The {part} failed{where}: {text}.",
                            "Check the names on that line against the item's values.",
                            variable=attribute.group(1) if attribute else None, line=line,
                            part=part) from None
    except SecurityError as exc:
        line = _template_line(exc)
        where = f" on line {line}" if line else ""
        attribute = re.search(r"attribute '(.+?)'", str(exc))
        raise TemplateError(f"The {part} was stopped by the sandbox{where}: {exc}",
                            "Templates may read values, loop and filter, but not reach Python "
                            "internals or change values.",
                            variable=attribute.group(1) if attribute else None, line=line,
                            part=part) from None
    except (JinjaError, TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
        line = _template_line(exc)
        where = f" on line {line}" if line else ""
        raise TemplateError(f"The {part} failed{where}: {type(exc).__name__}: {exc}",
                            "Check the expression on that line.", line=line,
                            part=part) from None
