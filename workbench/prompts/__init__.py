"""Phase 4: prompts as named, versioned templates, and everything needed to run one on an item.

- a ``PromptVersion`` holds the system prompt, a Jinja2 user template, few-shot settings, model,
  parameters, an optional output schema, the technique and the allowed labels;
- ``save_prompt`` / ``load_prompt`` / ``prompt_versions`` / ``tag_prompt`` / ``diff_prompts`` keep
  them immutable and versioned in the project; saving a prompt that behaves like a saved version
  returns that version (``.unchanged``), and ``tag_prompt(..., move=False)`` never moves a tag;
- ``render`` turns a prompt and an item into chat messages in a sandbox; ``select_examples`` picks
  few-shot examples from the train split only; ``parse_output`` reads the reply;
- ``complete_item`` does all of it for one item (with one repair turn), ``react`` runs a small
  tool-use loop.

Importing this package loads pydantic only; jinja2, pandas, litellm and the embedding model load
when first needed.
"""

from workbench.prompts.parsing import Parsed, extract_answer, normalize_label, parse_output
from workbench.prompts.react import (
    DEFAULT_TOOLS,
    ReactStep,
    ReactTrace,
    calculator,
    lookup_order,
    react,
)
from workbench.prompts.rendering import FewShotLeak, render, select_examples
from workbench.prompts.run import ItemResult, complete_item, json_mode_supported
from workbench.prompts.techniques import project_starters, starter_prompts, starter_prompts_for
from workbench.prompts.templates import TemplateError, delimit
from workbench.prompts.versions import (
    FewShot,
    PromptDiff,
    PromptError,
    PromptVersion,
    SavedPrompt,
    TagChange,
    behaviour_digest,
    diff_prompts,
    list_prompts,
    load_prompt,
    move_tag,
    prompt_text,
    prompt_versions,
    save_prompt,
    schema_from_model,
    tag_of,
    tag_prompt,
)

__all__ = [
    "DEFAULT_TOOLS", "FewShot", "FewShotLeak", "ItemResult", "Parsed", "PromptDiff",
    "PromptError", "PromptVersion", "ReactStep", "ReactTrace", "SavedPrompt", "TagChange",
    "TemplateError", "behaviour_digest", "calculator", "complete_item", "delimit",
    "diff_prompts", "extract_answer", "json_mode_supported", "list_prompts", "load_prompt",
    "lookup_order", "move_tag", "normalize_label", "parse_output", "prompt_text",
    "prompt_versions", "react", "render", "save_prompt", "schema_from_model", "select_examples",
    "project_starters", "starter_prompts", "starter_prompts_for", "tag_of", "tag_prompt",
]
