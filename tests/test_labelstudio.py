"""The Label Studio bridge against a REAL Label Studio server, started on 127.0.0.1 from the
checkout's ``.venv-labelstudio`` (``bash scripts/setup.sh`` makes it).

Without that virtualenv the server tests skip, unless ``WORKBENCH_REQUIRE_LABELSTUDIO=1`` (CI)
makes them fail. Annotations are made through the SDK exactly as Label Studio's UI sends them.
"""

from __future__ import annotations

import os
import secrets
import socket
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from workbench import labelstudio as wls
from workbench.data import diff, get_version, load, save_version, versions
from workbench.errors import MissingDependency

LABELS = ["billing", "technical", "shipping"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _no_server(reason: str):
    if os.environ.get("WORKBENCH_REQUIRE_LABELSTUDIO") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def ls_server(tmp_path_factory):
    """One real Label Studio for the session: (url, token)."""
    try:
        wls.find_label_studio()
    except MissingDependency as exc:
        _no_server(f"no Label Studio server to test against: {exc.one_line()}")
    data_dir = tmp_path_factory.mktemp("label-studio")
    token = secrets.token_hex(20)
    process = wls.start_server(_free_port(), data_dir, username="tester@example.com",
                               password=secrets.token_urlsafe(12), token=token,
                               timeout=300)  # first start builds its database: ~30 s alone
    try:
        yield process.url, token
    finally:
        wls.stop_server(process)


@pytest.fixture
def client(ls_server):
    url, token = ls_server
    return wls.LabelStudio(url, token)


def annotate(client, ls_project: int, answers: dict, *, control_type: str = "choices") -> None:
    """Answer tasks as a person in Label Studio's UI would: ``answers`` maps a workbench row id
    to a label, a list of labels (several annotations, the last one newest), or None (the
    person pressed Skip)."""
    tasks = {t.data[wls.ID_FIELD]: t.id for t in client.sdk.tasks.list(project=ls_project)}
    for row_id, answer in answers.items():
        for one in answer if isinstance(answer, list) else [answer]:
            if one is None:
                client.sdk.annotations.create(id=tasks[row_id], result=[], was_cancelled=True)
                continue
            value = {"choices": [one]} if control_type == "choices" else {"text": [one]}
            client.sdk.annotations.create(id=tasks[row_id], result=[{
                "from_name": "expected", "to_name": "input", "type": control_type,
                "value": value}], lead_time=1.5)


# -- no server needed ---------------------------------------------------------------------------

def test_importing_the_bridge_loads_no_sdk():
    import subprocess
    import sys

    code = ("import sys, workbench.labelstudio; "
            "print([m for m in ('label_studio_sdk', 'httpx', 'pandas') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"  # the SDK alone takes ~2 s to import


def test_setup_installs_the_version_the_bridge_names():
    from pathlib import Path

    setup = (Path(__file__).resolve().parents[1] / "scripts" / "setup.sh").read_text()
    assert f"LS_VERSION={wls.VERSION} " in setup


def test_classification_config_has_one_choice_per_label():
    config = wls.labeling_config("classification", ["billing", 'say "hi" & <bye>'])
    root = ET.fromstring(config)
    text = root.find("Text")
    choices = root.find("Choices")
    assert (text.get("name"), text.get("value")) == ("input", "$input")
    assert {k: choices.get(k) for k in ("name", "toName", "choice")} == {
        "name": "expected", "toName": "input", "choice": "single-radio"}
    assert [c.get("value") for c in choices.findall("Choice")] == [
        "billing", 'say "hi" & <bye>']


@pytest.mark.parametrize("task_type", ["extraction", "generation", "question_answering", "QA",
                                       "chat"])
def test_text_tasks_get_a_text_area(task_type):
    root = ET.fromstring(wls.labeling_config(task_type))
    area = root.find("TextArea")
    assert (area.get("name"), area.get("toName")) == ("expected", "input")
    assert root.find("Choices") is None


def test_config_errors_say_what_to_do():
    with pytest.raises(wls.LabelStudioError, match="needs the list of labels"):
        wls.labeling_config("classification", [])
    with pytest.raises(wls.LabelStudioError, match="repeat"):
        wls.labeling_config("classification", ["a", "a"])
    with pytest.raises(wls.LabelStudioError, match="Use one of: classification"):
        wls.labeling_config("translation-ish", ["a"])


def test_a_server_that_is_not_running_says_how_to_start_it():
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(wls.LabelStudioUnavailable) as info:
        wls.LabelStudio(url, "any-key")
    message = info.value.one_line()
    assert f"Label Studio is not running at {url}" in message
    assert "label-studio start --no-browser" in message and "--internal-host 127.0.0.1" in message


def test_a_url_that_is_not_label_studio_says_so(tmp_path):
    import threading
    from http.server import HTTPServer, SimpleHTTPRequestHandler

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), lambda *a: Quiet(*a, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(wls.LabelStudioUnavailable, match="answers .404. but is not Label"):
            wls.LabelStudio(url, "any-key")
    finally:
        server.shutdown()
        server.server_close()


def test_no_api_key_is_refused_before_any_request(monkeypatch):
    monkeypatch.delenv(wls.ENV_API_KEY, raising=False)
    with pytest.raises(wls.LabelStudioAuthError, match="No Label Studio API key"):
        wls.LabelStudio("http://127.0.0.1:9", None)


def test_pull_before_push_says_push_first(project):
    with pytest.raises(wls.LabelStudioError, match="has not been pushed"):
        wls.link(project, "tickets")


# -- against the real server --------------------------------------------------------------------

def test_a_wrong_api_key_is_refused_clearly(ls_server):
    url, _token = ls_server
    with pytest.raises(wls.LabelStudioAuthError) as info:
        wls.LabelStudio(url, "not-the-token")
    assert "refused the API key" in info.value.message
    assert "LABEL_STUDIO_USER_TOKEN" in info.value.fix


def test_a_taken_port_is_refused_before_starting(ls_server, tmp_path):
    url, token = ls_server
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(wls.LabelStudioError, match=f"Port {port} on 127.0.0.1 is already in use"):
        wls.start_server(port, tmp_path, password="pw-123456", token=token)


def test_round_trip_classification(sample_project, client):
    project = sample_project  # its card says task_type = "classification"
    frame = pd.DataFrame({
        "id": [101, 102, 103, 104, 105, 106],
        "input": ["I was charged twice.", "The app crashes on start.", "Parcel never came.",
                  "Refund my order", "Login loops forever", "Where is my order?"],
        "expected": ["billing", "billing", None, None, None, "shipping"],
        "source": ["email"] * 6,
    })
    save_version(project, "tickets", frame, transform="import")

    ls_project = wls.push(project, "tickets", client=client, labels=LABELS)

    link = wls.link(project, "tickets")
    assert link.value.model_dump() == {
        "url": client.url, "ls_project": ls_project, "dataset_version": 1,
        "task_type": "classification", "labels": LABELS, "tasks": 6}
    made = client.sdk.projects.get(ls_project)
    assert made.title == "Help desk triage: tickets v1"
    assert [c.get("value") for c in ET.fromstring(made.label_config).iter("Choice")] == LABELS
    tasks = sorted((t.data for t in client.sdk.tasks.list(project=ls_project)),
                   key=lambda d: d[wls.ID_FIELD])
    assert tasks[:2] == [
        {"input": "I was charged twice.", "wb_id": 101, "current": "billing"},
        {"input": "The app crashes on start.", "wb_id": 102, "current": "billing"}]

    annotate(client, ls_project, {
        102: "technical",                 # fixes a wrong label
        103: "shipping",                  # labels an empty row
        104: ["shipping", "billing"],     # changed mind: the newest annotation wins
        105: None,                        # skipped
        106: "shipping",                  # confirms a label: labelled, not changed
    })
    assert wls.annotations(client, ls_project).sort_values("id").drop(columns="task").to_dict(
        orient="records") == [
        {"id": 101, "label": None, "skipped": False, "annotations": 0},
        {"id": 102, "label": "technical", "skipped": False, "annotations": 1},
        {"id": 103, "label": "shipping", "skipped": False, "annotations": 1},
        {"id": 104, "label": "billing", "skipped": False, "annotations": 2},
        {"id": 105, "label": None, "skipped": True, "annotations": 1},
        {"id": 106, "label": "shipping", "skipped": False, "annotations": 1},
    ]

    stored = wls.pull(project, "tickets", client=client)

    assert stored.version == 2
    assert stored.value.parent == 1
    assert stored.value.transform.model_dump() == {"name": "label", "params": {
        "source": "label-studio", "url": client.url, "ls_project": ls_project, "tasks": 6,
        "labelled": 4, "changed": 3, "skipped": 1, "unlabelled": 1, "pushed_version": 1}}
    pulled = load(project, "tickets")
    assert pulled.fillna("-").to_dict(orient="list") == {
        "id": [101, 102, 103, 104, 105, 106],
        "input": frame["input"].tolist(),
        "expected": ["billing", "technical", "shipping", "billing", "-", "shipping"],
        "source": ["email"] * 6,
    }
    assert diff(project, "tickets", 1, 2).fillna("-").to_dict(orient="records") == [
        {"change": "changed", "id": 102, "column": "expected", "before": "billing",
         "after": "technical"},
        {"change": "changed", "id": 103, "column": "expected", "before": "-",
         "after": "shipping"},
        {"change": "changed", "id": 104, "column": "expected", "before": "-",
         "after": "billing"},
    ]
    assert versions(project, "tickets")["transform"].tolist() == ["import", "label"]

    # Pulling again with nothing new makes no new version.
    assert wls.pull(project, "tickets", client=client).version == 2


def test_round_trip_text_answers_onto_the_latest_version(project, client):
    frame = pd.DataFrame({"id": ["q1", "q2", "q3"],
                          "input": ["Capital of France?", "2 + 2?", "Largest planet?"],
                          "expected": ["Paris", None, None]})
    save_version(project, "qa", frame, transform="import")

    ls_project = wls.push(project, "qa", client=client, task_type="question_answering",
                          only_unlabeled=True, title="QA answers")
    assert wls.link(project, "qa").value.tasks == 2
    config = ET.fromstring(client.sdk.projects.get(ls_project).label_config)
    assert config.find("TextArea").get("name") == "expected"
    assert sorted(t.data[wls.ID_FIELD] for t in client.sdk.tasks.list(project=ls_project)) == [
        "q2", "q3"]

    # The dataset moves on while people label: the labels land on its latest version.
    moved = frame.assign(input=frame["input"].str.upper())
    save_version(project, "qa", moved, transform="clean", parent=1)
    annotate(client, ls_project, {"q2": "4", "q3": "Jupiter"}, control_type="textarea")

    stored = wls.pull(project, "qa", client=client)
    assert (stored.version, stored.value.parent) == (3, 2)
    assert stored.value.transform.params["labelled"] == 2
    assert stored.value.transform.params["pushed_version"] == 1
    assert load(project, "qa")[["input", "expected"]].to_dict(orient="list") == {
        "input": ["CAPITAL OF FRANCE?", "2 + 2?", "LARGEST PLANET?"],
        "expected": ["Paris", "4", "Jupiter"]}


def test_push_refuses_what_cannot_be_labelled(project, client):
    save_version(project, "done", pd.DataFrame({"id": [1], "input": ["x"],
                                                "expected": ["yes"]}), transform="import")
    with pytest.raises(wls.LabelStudioError, match="no rows to label"):
        wls.push(project, "done", client=client, only_unlabeled=True)
    save_version(project, "raw", pd.DataFrame({"id": [1], "input": ["x"],
                                               "expected": [None]}), transform="import")
    with pytest.raises(wls.LabelStudioError, match="needs the list of labels"):
        wls.push(project, "raw", client=client, task_type="classification")
    assert get_version(project, "raw").version == 1


def test_pull_from_another_server_is_refused(project, client):
    save_version(project, "t", pd.DataFrame({"id": [1], "input": ["x"], "expected": ["a"]}),
                 transform="import")
    wls.push(project, "t", client=client, task_type="generation")
    other = object.__new__(wls.LabelStudio)  # a connection to some other server
    other.url, other.sdk = "http://127.0.0.1:1", client.sdk
    with pytest.raises(wls.LabelStudioError, match="was pushed to"):
        wls.pull(project, "t", client=other)
