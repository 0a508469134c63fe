"""A two-way bridge to a real Label Studio server: push a dataset version as labelling tasks, pull
the annotations back as a new dataset version.

Label Studio is a Django app of about 1 GB, so it lives in its own virtualenv, ``.venv-labelstudio``
in the checkout (``bash scripts/setup.sh`` makes it). Start it by hand, on this machine only::

    LABEL_STUDIO_USERNAME=me@example.com LABEL_STUDIO_PASSWORD=choose-one \\
    LABEL_STUDIO_USER_TOKEN=$(python -c "import secrets; print(secrets.token_hex(20))") \\
    LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true LATEST_VERSION_CHECK=false COLLECT_ANALYTICS=false \\
    SENTRY_DSN= FRONTEND_SENTRY_DSN= \\
    .venv-labelstudio/bin/label-studio start --no-browser --port 8080 --internal-host 127.0.0.1

then log in at http://127.0.0.1:8080 with that user, and use that token as the API key
(``LabelStudio("http://127.0.0.1:8080", token)``). From Python, ``start_server(...)`` does the same
and waits until the server answers (the first start takes ~30 s: it builds its database).
``--internal-host`` is the address it binds; without it Label Studio listens on every interface.
Never run ``label-studio --version``: it starts a server on 0.0.0.0:8080.

The round trip is exact because each task carries the workbench row id (``wb_id``) in its data;
the Label Studio project made for a dataset is remembered in the workbench project as a
``labelstudio_link`` record named after the dataset.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from xml.sax.saxutils import quoteattr

from workbench.errors import MissingDependency, RecordNotFound, WorkbenchError
from workbench.records import Record, Stored

if TYPE_CHECKING:
    import pandas as pd

    from workbench.data.versioning import DatasetVersion
    from workbench.project import Project

DEFAULT_URL = "http://127.0.0.1:8080"
ENV_URL = "LABEL_STUDIO_URL"
ENV_API_KEY = "LABEL_STUDIO_API_KEY"  # the SDK's own variable
ENV_VENV = "WORKBENCH_LABELSTUDIO_VENV"
VENV_NAME = ".venv-labelstudio"
VERSION = "1.23.2"  # the server version scripts/setup.sh installs
ID_FIELD = "wb_id"  # task data key holding the workbench row id
CONTROL = "expected"  # the labelling config's control tag: its answer becomes `expected`
TASK_TYPES = ("classification", "extraction", "generation", "question_answering", "chat")
_ALIASES = {"qa": "question_answering", "question answering": "question_answering",
            "classify": "classification", "ner": "extraction", "summarization": "generation"}
_IMPORT_BATCH = 500


class LabelStudioError(WorkbenchError):
    """Label Studio refused or failed a request."""


class LabelStudioUnavailable(LabelStudioError):
    """Nothing (or something else) answers at the Label Studio URL."""


class LabelStudioAuthError(LabelStudioError):
    """The server is up but refused the API key."""


class LabelStudioLink(Record):
    """Which Label Studio project holds the tasks of which dataset version (no secrets here)."""

    kind: ClassVar[str] = "labelstudio_link"
    url: str
    ls_project: int
    dataset_version: int
    task_type: str
    labels: list[str] | None = None
    tasks: int


def start_command(port: int = 8080) -> str:
    """The shell line that starts the server by hand (set the LABEL_STUDIO_* variables first)."""
    return (f"{VENV_NAME}/bin/label-studio start --no-browser --port {port} "
            "--internal-host 127.0.0.1")


def _start_hint(url: str) -> str:
    port = url.rstrip("/").rsplit(":", 1)[-1]
    port = port if port.isdigit() else "8080"
    return (f"Start it with `{start_command(int(port))}` (with LABEL_STUDIO_USERNAME, "
            "LABEL_STUDIO_PASSWORD, LABEL_STUDIO_USER_TOKEN and "
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true set; see workbench/labelstudio.py), or "
            "from Python with workbench.labelstudio.start_server(...); `bash scripts/setup.sh` "
            f"installs it into {VENV_NAME}.")


# -- the connection ------------------------------------------------------------------------------

class LabelStudio:
    """A checked connection to a Label Studio server.

    ``url`` defaults to ``LABEL_STUDIO_URL`` (else http://127.0.0.1:8080) and ``api_key`` to
    ``LABEL_STUDIO_API_KEY``. The constructor asks the server who the key belongs to, so a server
    that is not running or a wrong key fails here, with a message saying what to do.
    ``sdk`` is the underlying ``label_studio_sdk.LabelStudio`` client for anything else."""

    def __init__(self, url: str | None = None, api_key: str | None = None, *,
                 timeout: float = 30):
        self.url = (url or os.environ.get(ENV_URL) or DEFAULT_URL).rstrip("/")
        api_key = api_key or os.environ.get(ENV_API_KEY)
        if not api_key:
            raise LabelStudioAuthError(
                "No Label Studio API key was given.",
                f"Pass api_key=..., or set {ENV_API_KEY}: use the LABEL_STUDIO_USER_TOKEN the "
                "server was started with, or copy the token from Account & Settings in its UI.")
        try:
            from label_studio_sdk import LabelStudio as Client
        except ImportError:  # pragma: no cover - it is a core dependency
            raise MissingDependency("The Label Studio bridge",
                                    "pip install 'label-studio-sdk>=2'") from None
        with self.calls("connect"):
            self.sdk = Client(base_url=self.url, api_key=api_key, timeout=timeout,
                              max_retries=0)
            user = self.sdk.users.whoami()
        self.user = getattr(user, "email", None) or getattr(user, "username", None) or ""

    def __repr__(self) -> str:
        return f"LabelStudio({self.url!r}, user={self.user!r})"

    @contextmanager
    def calls(self, doing: str) -> Iterator[None]:
        """Turns the SDK's and httpx's errors into workbench errors that say how to fix them."""
        import httpx
        from label_studio_sdk.core.api_error import ApiError

        try:
            yield
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise LabelStudioUnavailable(
                f"Label Studio is not running at {self.url} ({exc}).",
                _start_hint(self.url)) from None
        except httpx.TimeoutException:
            raise LabelStudioUnavailable(
                f"Label Studio at {self.url} did not answer in time while trying to {doing}.",
                "It may still be starting (the first start takes ~30 s): wait and try again.",
            ) from None
        except httpx.HTTPError as exc:
            raise LabelStudioUnavailable(f"Could not reach Label Studio at {self.url}: {exc}.",
                                         "Check the URL (http://127.0.0.1:PORT).") from None
        except ApiError as exc:
            raise self._api_error(exc, doing) from None

    def _api_error(self, exc: Any, doing: str) -> LabelStudioError:
        status = exc.status_code
        if status in (401, 403):
            return LabelStudioAuthError(
                f"Label Studio at {self.url} refused the API key ({status} while trying to "
                f"{doing}).",
                "Use the LABEL_STUDIO_USER_TOKEN the server was started with (with "
                "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true), or copy the token from Account & "
                "Settings in its UI.")
        body = exc.body
        if doing == "connect" and status is not None:
            return LabelStudioUnavailable(
                f"The server at {self.url} answers ({status}) but is not Label Studio: it has no "
                "/api/current-user/whoami.", "Check the port. " + _start_hint(self.url))
        if status is None:  # the SDK raises bare ApiErrors for its own checks
            return LabelStudioError(f"Label Studio client error while trying to {doing}: {body}.",
                                    "Check the URL and API key.")
        detail = body
        if isinstance(body, dict):
            detail = body.get("validation_errors") or body.get("detail") or body
        elif isinstance(body, str) and body.lstrip().startswith("<"):
            detail = "an HTML page, not the API"
        return LabelStudioError(f"Label Studio answered {status} while trying to {doing}: "
                                f"{detail}.", "Check the request; the server log says more.")


def _sdk(client: LabelStudio) -> Any:
    if not isinstance(client, LabelStudio):
        raise TypeError("client must be a workbench.labelstudio.LabelStudio "
                        "(LabelStudio(url, api_key))")
    return client.sdk


# -- the labelling config ------------------------------------------------------------------------

def normalize_task_type(task_type: str) -> str:
    key = task_type.strip().lower().replace("-", "_")
    key = _ALIASES.get(key.replace("_", " "), _ALIASES.get(key, key))
    if key not in TASK_TYPES:
        raise LabelStudioError(f"Unknown task type {task_type!r}.",
                               f"Use one of: {', '.join(TASK_TYPES)}.")
    return key


def labeling_config(task_type: str, labels: list[str] | None = None) -> str:
    """A Label Studio labelling config that fits the task.

    Classification: one ``<Choices>`` with a choice per label (pick exactly one). Extraction,
    generation, question answering and chat: a ``<TextArea>`` for the expected answer. Either way
    the input shows as ``$input`` and the control is named ``expected``."""
    kind = normalize_task_type(task_type)
    text = '  <Text name="input" value="$input"/>'
    if kind == "classification":
        labels = [str(label) for label in (labels or [])]
        if not labels:
            raise LabelStudioError("A classification config needs the list of labels.",
                                   "Pass labels=[...], or label a few rows first so the dataset "
                                   "version knows its labels.")
        if len(set(labels)) != len(labels):
            raise LabelStudioError(f"The labels {labels} repeat a value.",
                                   "Give each label once.")
        choices = "\n".join(f"    <Choice value={quoteattr(label)}/>" for label in labels)
        return ("<View>\n"
                '  <Header value="Choose the one label that fits the input"/>\n'
                f"{text}\n"
                f'  <Choices name="{CONTROL}" toName="input" choice="single-radio" '
                'showInLine="true" required="true">\n'
                f"{choices}\n"
                "  </Choices>\n"
                "</View>")
    header = {"extraction": "Write what should be extracted from the input",
              "generation": "Write the output the model should give",
              "question_answering": "Write the correct answer",
              "chat": "Write the reply the assistant should give"}[kind]
    return ("<View>\n"
            f"{text}\n"
            f"  <Header value={quoteattr(header)}/>\n"
            f'  <TextArea name="{CONTROL}" toName="input" rows="4" editable="true" '
            f'maxSubmissions="1" required="true" placeholder={quoteattr(header)}/>\n'
            "</View>")


def _task_type_for(project: Project, stored: Stored[DatasetVersion]) -> str:
    card_type = (project.card().get("use_case") or {}).get("task_type")
    if card_type:
        return normalize_task_type(str(card_type))
    return "classification" if stored.value.labels else "generation"


# -- push ----------------------------------------------------------------------------------------

def _blank(value: Any) -> bool:
    """None, NaN, pd.NA or only spaces: a row with no label yet."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or array: a value, not a missing one
        return False


def _title(project: Project, name: str, version: int, title: str | None) -> str:
    title = title or f"{project.name}: {name} v{version}"
    title = title[:50]  # Label Studio accepts 3 to 50 characters
    return title if len(title) >= 3 else f"{title} - labelling"


def push(project: Project, name: str, version: int | str | None = None, *, client: LabelStudio,
         title: str | None = None, labels: list[str] | None = None, only_unlabeled: bool = False,
         task_type: str | None = None) -> int:
    """Create a Label Studio project for a dataset version and import its rows as tasks.

    The task type comes from the project card (``use_case.task_type``) unless given; the labels
    from ``labels`` or the version's own. ``only_unlabeled`` sends only rows whose ``expected``
    is empty. Returns the Label Studio project id, also remembered for ``pull``."""
    from workbench.data.versioning import get_version, load

    stored = get_version(project, name, version)
    df = load(project, name, stored.version)
    kind = normalize_task_type(task_type) if task_type else _task_type_for(project, stored)
    if kind == "classification":
        labels = list(labels or stored.value.labels or [])
    config = labeling_config(kind, labels)
    if only_unlabeled:
        df = df[df["expected"].map(_blank)]
    if df.empty:
        raise LabelStudioError(f"{name} v{stored.version} has no rows to label"
                               f"{' (every row already has a label)' if only_unlabeled else ''}.",
                               "Push another version, or leave only_unlabeled off.")
    tasks = [{"input": "" if _blank(row["input"]) else str(row["input"]), ID_FIELD: row["id"],
              "current": "" if _blank(row["expected"]) else str(row["expected"])}
             for row in df[["id", "input", "expected"]].to_dict(orient="records")]
    sdk = _sdk(client)
    with client.calls("create a project"):
        ls_project = sdk.projects.create(
            title=_title(project, name, stored.version, title), label_config=config,
            description=f"Workbench dataset {name} v{stored.version} ({len(tasks)} rows) from "
                        f"{project.path}. Pull the labels back with "
                        f"workbench.labelstudio.pull(project, {name!r}, client=...).")
    imported = 0
    with client.calls("import tasks"):
        for start in range(0, len(tasks), _IMPORT_BATCH):
            batch = tasks[start:start + _IMPORT_BATCH]
            answer = sdk.projects.import_tasks(ls_project.id, request=batch)
            imported += answer.task_count if answer.task_count is not None else len(batch)
    project.records.save(name, LabelStudioLink(
        url=client.url, ls_project=ls_project.id, dataset_version=stored.version,
        task_type=kind, labels=labels if kind == "classification" else None, tasks=imported))
    return ls_project.id


def link(project: Project, name: str) -> Stored[LabelStudioLink]:
    """The Label Studio project last pushed for dataset ``name``."""
    try:
        return project.records.get(LabelStudioLink, name)
    except RecordNotFound:
        raise LabelStudioError(f"Dataset '{name}' has not been pushed to Label Studio yet.",
                               f"Push it first: workbench.labelstudio.push(project, {name!r}, "
                               "client=...).") from None


# -- pull ----------------------------------------------------------------------------------------

def _answer(annotation: dict[str, Any]) -> str | None:
    """The label or text an annotation gives the ``expected`` control, if any."""
    for region in annotation.get("result") or []:
        if region.get("from_name") != CONTROL:
            continue
        value = region.get("value") or {}
        if value.get("choices"):
            return str(value["choices"][0])
        text = value.get("text")
        if isinstance(text, list):
            text = "\n".join(str(t) for t in text)
        if text is not None and str(text).strip():
            return str(text)
    return None


def _latest(annotations: list[dict[str, Any]]) -> dict[str, Any] | None:
    done = [a for a in annotations if not a.get("was_cancelled")]
    if not done:
        return None
    return max(done, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""),
                                    a.get("id") or 0))


def annotations(client: LabelStudio, ls_project: int) -> pd.DataFrame:
    """Every task of a Label Studio project with its latest non-cancelled answer.

    Columns: ``id`` (the workbench row id), ``task`` (Label Studio's), ``label`` (None when not
    answered), ``skipped`` (only cancelled annotations), ``annotations`` (how many)."""
    import pandas as pd

    sdk = _sdk(client)
    rows = []
    with client.calls("read the tasks"):
        for task in sdk.tasks.list(project=ls_project, fields="all", page_size=100):
            data = task.data or {}
            found = [a if isinstance(a, dict) else a.dict() for a in (task.annotations or [])]
            latest = _latest(found)
            rows.append({"id": data.get(ID_FIELD), "task": task.id,
                         "label": _answer(latest) if latest else None,
                         "skipped": bool(found) and latest is None,
                         "annotations": len(found)})
    columns = ["id", "task", "label", "skipped", "annotations"]
    # object columns: ids keep their JSON type and a missing label stays None (not NaN)
    return pd.DataFrame({c: pd.Series([r[c] for r in rows], dtype=object) for c in columns})


def pull(project: Project, name: str, *, client: LabelStudio,
         ls_project: int | None = None) -> Stored[DatasetVersion]:
    """Read the annotations back and save a new version of ``name`` with the human labels in
    ``expected`` (the latest non-cancelled annotation of each task wins).

    The labels go onto the dataset's latest version, matched by row id, so changes made since the
    push (cleaning, redaction) are kept; rows nobody labelled keep their value. The transform is
    ``label`` with params saying where the labels came from and how many rows changed."""
    import pandas as pd

    from workbench.data.versioning import get_version, load, save_version

    remembered = link(project, name).value if ls_project is None else None
    if remembered is not None and remembered.url != client.url:
        raise LabelStudioError(f"'{name}' was pushed to {remembered.url}, but this client is "
                               f"connected to {client.url}.",
                               f"Connect to {remembered.url}, or pass ls_project=... for a "
                               "project on this server.")
    ls_id = ls_project if ls_project is not None else remembered.ls_project
    found = annotations(client, ls_id)
    base = get_version(project, name)
    df = load(project, name, base.version)
    answered = found[found["label"].notna()]
    by_key = {_key(i): label for i, label in zip(answered["id"], answered["label"], strict=True)}
    keys = df["id"].map(_key)
    hit = keys.isin(by_key.keys())
    before = [None if _blank(v) else str(v) for v in df["expected"]]
    after = [by_key.get(k, old) for k, old in zip(keys, df["expected"], strict=True)]
    df["expected"] = pd.Series(after, index=df.index, dtype=object)
    changed = sum(1 for k, b, a in zip(keys, before, after, strict=True) if k in by_key and b != a)
    missing = sorted(set(by_key) - set(keys))
    params = {"source": "label-studio", "url": client.url, "ls_project": int(ls_id),
              "tasks": len(found), "labelled": int(hit.sum()), "changed": changed,
              "skipped": int(found["skipped"].sum()),
              "unlabelled": int(len(found) - len(answered) - found["skipped"].sum())}
    if remembered is not None:
        params["pushed_version"] = remembered.dataset_version
    if missing:
        params["missing_rows"] = len(missing)  # labelled rows no longer in the dataset
    return save_version(project, name, df, transform="label", params=params, parent=base.version)


def _key(value: Any) -> str:
    # JSON keeps ints and strings apart but Parquet may widen ints: match on the printed id.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


# -- running a server ----------------------------------------------------------------------------

def find_label_studio(venv: str | os.PathLike | None = None) -> Path:
    """The ``label-studio`` executable: ``venv``, ``WORKBENCH_LABELSTUDIO_VENV``, the checkout's
    ``.venv-labelstudio``, then PATH."""
    candidates = []
    for folder in (venv, os.environ.get(ENV_VENV),
                   Path(__file__).resolve().parents[1] / VENV_NAME):
        if folder:
            candidates.append(Path(folder) / "bin" / "label-studio")
    on_path = shutil.which("label-studio")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise MissingDependency(
        "Running a Label Studio server",
        f"bash scripts/setup.sh (it makes {VENV_NAME}), or: python3 -m venv {VENV_NAME} && "
        f"{VENV_NAME}/bin/pip install label-studio=={VERSION}")


def server_env(data_dir: str | os.PathLike, username: str, password: str, token: str,
               base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a private, offline Label Studio with a known user and API token."""
    env = dict(os.environ if base is None else base)
    # The workbench's interpreter settings must not leak into Label Studio's.
    for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE"):
        env.pop(var, None)
    env.update({
        "LABEL_STUDIO_USERNAME": username,
        "LABEL_STUDIO_PASSWORD": password,
        "LABEL_STUDIO_USER_TOKEN": token,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_BASE_DATA_DIR": str(Path(data_dir).resolve()),
        # It also keeps a user id under XDG_CONFIG_HOME: keep that in the data folder too.
        "XDG_CONFIG_HOME": str(Path(data_dir).resolve() / ".config"),
        "XDG_CACHE_HOME": str(Path(data_dir).resolve() / ".cache"),
        # Label Studio reads HOST, PORT, USERNAME... too when the LABEL_STUDIO_ one is unset.
        "LABEL_STUDIO_HOST": "",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        # Offline: no version check, no analytics, no error reports to Sentry.
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _answers(url: str, token: str) -> bool:
    request = urllib.request.Request(f"{url}/api/current-user/whoami",
                                     headers={"Authorization": f"Token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_server(port: int = 8080, data_dir: str | os.PathLike = "label-studio-data",
                 username: str = "workbench@example.com", password: str = "",
                 token: str = "", *, venv: str | os.PathLike | None = None,
                 timeout: float = 180, log: str | os.PathLike | None = None
                 ) -> subprocess.Popen:
    """Start Label Studio on 127.0.0.1:``port`` and wait until it answers with ``token``.

    ``data_dir`` holds its database and uploads (kept between starts); ``username``/``password``
    are the login for its web UI; ``token`` (up to 40 characters) is the API key. Returns the
    process, with ``url`` and ``log_path`` attributes; stop it with ``stop_server``. The server
    runs in its own process group and writes to ``log`` (default ``data_dir/label-studio.log``).
    """
    if not password or not token:
        raise LabelStudioError("start_server needs a password and an API token.",
                               "Pass password=... and token=secrets.token_hex(20).")
    if len(token) > 40:
        raise LabelStudioError("Label Studio tokens are at most 40 characters.",
                               "Use secrets.token_hex(20).")
    executable = find_label_studio(venv)
    url = f"http://127.0.0.1:{port}"
    # Label Studio moves to the next free port on its own: a taken port would go unnoticed.
    if _port_taken(port):
        raise LabelStudioError(f"Port {port} on 127.0.0.1 is already in use.",
                               "Pick another port (or stop what runs there).")
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = Path(log) if log else data_dir / "label-studio.log"
    cmd = [str(executable), "start", "--no-browser", "--port", str(port),
           "--internal-host", "127.0.0.1", "--data-dir", str(data_dir.resolve())]
    with open(log_path, "ab") as out:
        process = subprocess.Popen(cmd, env=server_env(data_dir, username, password, token),
                                   cwd=data_dir, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    process.url = url  # type: ignore[attr-defined]
    process.log_path = log_path  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LabelStudioError(f"Label Studio exited with code {process.returncode} while "
                                   f"starting:\n{_tail(log_path)}",
                                   f"Read {log_path}; reinstall with `bash scripts/setup.sh`.")
        if _answers(url, token):
            return process
        time.sleep(0.5)
    stop_server(process)
    raise LabelStudioError(f"Label Studio did not answer at {url} within {timeout:.0f} s:\n"
                           f"{_tail(log_path)}", "Try a longer timeout; the log says more.")


def stop_server(process: subprocess.Popen, timeout: float = 20) -> None:
    """Stop a server from ``start_server`` and whatever it started."""
    import signal

    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(process, signal.SIGKILL)  # stragglers in its group, if any
    process.wait(timeout=timeout)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # start_new_session made its pid the group id
    except ProcessLookupError:
        pass


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"
