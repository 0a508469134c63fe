"""The workbench's errors: each says what happened and how to fix it.

Notebooks and widgets show them as callouts, the CLI as one line; none of them should ever need a
traceback to be understood.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class. ``fix`` is a sentence telling the user what to do next."""

    def __init__(self, message: str, fix: str | None = None):
        self.message = message
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.message} {self.fix}" if self.fix else self.message

    def _repr_markdown_(self) -> str:  # shown as a callout when a notebook displays the error
        fix = f"\n\n**How to fix it:** {self.fix}" if self.fix else ""
        return f"**{type(self).__name__}:** {self.message}{fix}"


class ProjectError(WorkbenchError):
    """Something is wrong with a project folder."""


class ProjectNotFound(ProjectError):
    pass


class NotAProject(ProjectError):
    pass


class ProjectExists(ProjectError):
    pass


class CorruptProject(ProjectError):
    pass


class ProjectTooNew(ProjectError):
    pass


class ProjectBusy(ProjectError):
    """Another program holds the project database's lock for longer than the workbench waits."""


class InvalidCard(ProjectError):
    pass


class RecordNotFound(WorkbenchError):
    pass


class ModelError(WorkbenchError):
    """A model could not be called or did not answer."""


class UnknownModel(ModelError):
    pass


class ModelUnavailable(ModelError):
    """The model exists but cannot be used now (missing key, missing weights, hosted calls off)."""


class HostedCallsDisabled(ModelUnavailable):
    pass


class ModelCallFailed(ModelError):
    pass


class ModelTimeout(ModelCallFailed):
    pass


class MissingDependency(WorkbenchError):
    def __init__(self, what: str, install: str):
        super().__init__(
            f"{what} requires optional dependencies.", f"Install with: {install}"
        )
