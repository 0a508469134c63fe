"""Test data shared by the layout tests: two prompt versions whose diff has markup-like text."""

import workbench
from workbench.prompts import PromptVersion, diff_prompts, save_prompt


def prompt_diff(path):
    project = workbench.init_project(path, activate=False)
    save_prompt(project, "triage", PromptVersion(
        system="You sort support tickets.",
        template="Label the message <b>{{ input }}</b> as one of the labels & nothing else.",
        labels=["billing", "technical"]))
    save_prompt(project, "triage", PromptVersion(
        system="You sort support tickets for <ACME> & co.",
        template="Which team should answer <i>{{ input }}</i>? Reply with one label only, in "
                 "lower case, with no punctuation and no explanation; " * 3,
        labels=["billing", "technical", "account"]))
    return diff_prompts(project, "triage", 1, 2)
