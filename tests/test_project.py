import hashlib
import sqlite3
import subprocess
import sys
import textwrap

import pytest

import workbench
from workbench import store as store_module
from workbench.errors import (
    CorruptProject,
    ProjectBusy,
    InvalidCard,
    NotAProject,
    ProjectExists,
    ProjectNotFound,
    ProjectTooNew,
)
from workbench.phases import phase_status
from workbench.project import forget_open_projects


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_init_makes_the_documented_layout(tmp_path):
    project = workbench.init_project(tmp_path / "p", name="Demo")
    names = sorted(p.name for p in project.path.iterdir())
    assert [n for n in names if not n.startswith("workbench.db-")] == [
        "adapters", "data", "deploy", "reports", "workbench.db", "workbench.toml"]
    assert project.name == "Demo"
    mode = sqlite3.connect(project.path / "workbench.db").execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)
    assert project.store.applied_migrations() == store_module.migration_names()


def test_blank_database_migrates_to_the_expected_schema(project):
    db = project.store.db
    schema = {
        table: [col[1] for col in db.execute(f"PRAGMA table_info({table})")]
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                   "ORDER BY name")
    }
    assert schema == {
        "_migrations": ["name", "applied_at"],
        "alert_notifications": ["key", "firing", "last_sent", "message"],
        "alerts": ["alert_id", "rule", "fired_at", "value", "threshold", "window_s", "message",
                   "kind", "details"],
        "api_keys": ["name", "key_hash", "hint", "created_at", "version",
                     "rate_limit_per_minute", "tokens_per_minute", "monthly_budget_usd",
                     "last_used_at", "revoked_at"],
        "exercise_checks": ["exercise", "attempt", "checked_at", "passed", "hint",
                            "workbench_version"],
        "feedback": ["feedback_id", "trace_id", "request_id", "created_at", "rating", "comment",
                     "correction", "source"],
        "llm_cache": ["key", "model", "response", "created_at"],
        "meta": ["key", "value"],
        "monitor_buckets": ["source", "bucket_s", "start", "dim", "value", "requests",
                            "answered", "errors", "refused", "rate_limited", "cached",
                            "fallback", "parsed", "parse_n", "cost_usd", "cost_n",
                            "input_tokens", "output_tokens", "latency_sum", "latency", "users"],
        "monitor_drift": ["drift_id", "computed_at", "since", "until", "inputs", "dataset",
                          "dataset_version", "method", "statistic", "threshold", "p_value",
                          "drifted", "details"],
        "monitor_judgements": ["trace_id", "judge_name", "judged_at", "request_time", "score",
                               "passed", "parsed_ok", "normalised", "reason", "trust", "model",
                               "prompt_version", "arm"],
        "otlp_exports": ["export_id", "endpoint", "started_at", "finished_at", "since",
                         "from_rowid", "to_rowid", "spans", "rejected", "status"],
        "records": ["kind", "name", "version", "schema_version", "content_hash", "created_at",
                    "body"],
        "refusal_counts": ["minute", "client", "route", "status", "untraced"],
        "run_items": ["run_id", "item_id", "position", "messages", "output", "parsed",
                      "parse_ok", "prompt_tokens", "completion_tokens", "latency_s", "cost_usd",
                      "cached", "error", "scores", "created_at"],
        "runs": ["run_id", "created_at", "name", "prompt", "prompt_version", "model", "dataset",
                 "dataset_version", "split", "status", "config", "totals"],
        "semantic_cache": ["deployment", "entry", "created"],
        "spend": ["month", "client", "usd", "tokens", "requests"],
        "spans": ["span_id", "trace_id", "parent_id", "name", "start_time", "end_time", "status",
                  "error", "attributes"],
        "tags": ["kind", "name", "tag", "version"],
    }


def test_open_never_creates(tmp_path):
    with pytest.raises(ProjectNotFound, match="workbench init"):
        workbench.open_project(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotAProject):
        workbench.open_project(tmp_path / "plain")
    assert list((tmp_path / "plain").iterdir()) == []


def test_open_uses_workbench_project(monkeypatch, project):
    forget_open_projects()
    monkeypatch.setenv("WORKBENCH_PROJECT", str(project.path))
    assert workbench.open_project().path == project.path
    monkeypatch.delenv("WORKBENCH_PROJECT")
    with pytest.raises(ProjectNotFound, match="WORKBENCH_PROJECT"):
        workbench.open_project()


def test_init_refuses_non_empty_folders_and_existing_projects(tmp_path, project):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text("keep me")
    with pytest.raises(ProjectExists, match="not empty"):
        workbench.init_project(folder)
    assert [p.name for p in folder.iterdir()] == ["todo.txt"]
    with pytest.raises(ProjectExists, match="already a workbench project"):
        workbench.init_project(project.path)


def test_failed_init_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(path):
        raise OSError("disk full")

    monkeypatch.setattr(store_module.Store, "create", classmethod(lambda cls, p: broken(p)))
    with pytest.raises(OSError):
        workbench.init_project(tmp_path / "p")
    assert list(tmp_path.iterdir()) == []


def test_init_into_an_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    project = workbench.init_project(tmp_path / "empty")
    assert (project.path / "workbench.toml").is_file()


def test_foreign_database_is_refused_and_untouched(tmp_path):
    folder = tmp_path / "p"
    workbench.init_project(folder)
    forget_open_projects()
    db_path = folder / "workbench.db"
    for suffix in ("", "-wal", "-shm"):
        (folder / f"workbench.db{suffix}").unlink(missing_ok=True)
    other = sqlite3.connect(db_path)
    other.execute("CREATE TABLE invoices (id INTEGER, total REAL)")
    other.execute("INSERT INTO invoices VALUES (1, 9.5)")
    other.commit()
    other.close()
    before = digest(db_path)
    with pytest.raises(NotAProject, match="not a workbench project database"):
        workbench.open_project(folder)
    assert digest(db_path) == before


def test_corrupt_database_is_refused_and_untouched(tmp_path):
    folder = tmp_path / "p"
    workbench.init_project(folder)
    forget_open_projects()
    for suffix in ("-wal", "-shm"):
        (folder / f"workbench.db{suffix}").unlink(missing_ok=True)
    db_path = folder / "workbench.db"
    db_path.write_bytes(b"this is not sqlite at all" * 100)
    before = digest(db_path)
    with pytest.raises(CorruptProject, match="cannot be read"):
        workbench.open_project(folder)
    assert digest(db_path) == before


def test_a_database_locked_by_another_program_is_busy_not_corrupt(tmp_path, monkeypatch):
    folder = tmp_path / "p"
    workbench.init_project(folder).close()
    forget_open_projects()
    other = sqlite3.connect(folder / "workbench.db", isolation_level=None)
    other.execute("PRAGMA journal_mode = DELETE")  # so an exclusive lock keeps readers out
    other.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 100)  # the lock is real; the wait short
    try:
        with pytest.raises(ProjectBusy, match="locked by another program") as caught:
            workbench.open_project(folder)
        assert "backup" not in caught.value.fix and "Wait for the other program" in caught.value.fix
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert workbench.open_project(folder).store.schema_version > 0  # nothing was lost


def test_old_project_opens_after_migration(tmp_path, monkeypatch):
    folder = tmp_path / "old"
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:1])
    old = workbench.init_project(folder)
    old.records.save("first", workbench.records.ProjectNote(text="written by an old version"))
    assert old.store.schema_version == 1
    forget_open_projects()
    monkeypatch.undo()

    project = workbench.open_project(folder)
    assert project.store.applied_migrations() == store_module.migration_names()
    assert (folder / "workbench.db.bak-1").is_file()
    note = project.records.get(workbench.records.ProjectNote, "first").value
    assert note.text == "written by an old version"
    assert project.status()["model_calls"] == 0  # the new tables exist and work


def test_project_from_a_newer_workbench_is_refused(project):
    with project.store.write() as db:
        db.execute("INSERT INTO _migrations VALUES ('m999_from_the_future', 0)")
    forget_open_projects()
    with pytest.raises(ProjectTooNew, match="newer workbench"):
        workbench.open_project(project.path)


def test_card_hand_edits_are_validated(project):
    project.card_path.write_text("[workbench\nformat = 1\n")
    with pytest.raises(InvalidCard, match="not valid TOML"):
        project.card()
    project.card_path.write_text("[project]\nname = 'x'\n")
    with pytest.raises(InvalidCard, match=r"\[workbench\]"):
        project.card()


def test_update_card_is_atomic_and_validated(project):
    project.update_card(lambda card: card["project"].update(description="triage"))
    assert project.card()["project"]["description"] == "triage"
    before = project.card_path.read_text()

    def breaks(card):
        del card["workbench"]

    with pytest.raises(InvalidCard):
        project.update_card(breaks)
    assert project.card_path.read_text() == before
    assert [p.name for p in project.path.glob(".workbench.toml*")] == []


def test_sample_project_has_the_sample_card(sample_project):
    card = sample_project.card()
    assert card["use_case"]["task_type"] == "classification"
    assert {m["name"] for m in card["metrics"]} == {"accuracy", "p95_latency",
                                                     "cost_per_request"}
    assert phase_status(sample_project)[0]["state"] == "done"
    assert "phases" not in sample_project.status()  # the folder's facts; phases are read above it


HAMMER = textwrap.dedent("""
    import sys
    import workbench
    from workbench import llm
    from workbench.records import ProjectNote

    project = workbench.open_project(sys.argv[1])
    who, n = sys.argv[2], int(sys.argv[3])
    for i in range(n):
        llm.complete(f"{who} message {i}", model="fake/echo", cache=(i % 2 == 0))
        project.records.save(f"{who}-{i % 5}", ProjectNote(text=f"{who} {i}"))
        if i % 10 == 0:
            project.update_card(lambda c: c.setdefault("counter", {}).update(
                {who: c.get("counter", {}).get(who, 0) + 1}))
    print("done")
""")


def test_two_processes_hammering_one_project_lose_nothing(project, tmp_path):
    script = tmp_path / "hammer.py"
    script.write_text(HAMMER)
    n = 150
    procs = [subprocess.Popen([sys.executable, str(script), str(project.path), who, str(n)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for who in ("alice", "bob")]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert "database is locked" not in err
    db = project.store.db
    assert db.execute("SELECT COUNT(*) FROM spans WHERE name='llm.call'").fetchone()[0] == 2 * n
    assert db.execute("SELECT COUNT(*) FROM spans WHERE status != 'ok'").fetchone()[0] == 0
    assert project.records.count("note") == 2 * n
    assert db.execute("SELECT COUNT(*) FROM llm_cache").fetchone()[0] == 2 * (n // 2)
    assert project.card()["counter"] == {"alice": n // 10, "bob": n // 10}


def test_card_saves_keep_comments_and_metric_blocks(sample_project):
    path = sample_project.card_path
    path.write_text(path.read_text().replace(
        "monthly_budget_usd = 200", "monthly_budget_usd = 200  # agreed with finance in March"))
    sample_project.update_card(lambda c: c["metrics"][0].update(target=0.95))
    sample_project.update_card(lambda c: c.setdefault("model", {}).update(chosen="fake/echo"))
    text = path.read_text()
    assert "# The sample project's card" in text and "# agreed with finance in March" in text
    assert text.count("[[metrics]]") == 3 and "\n\n[constraints]" in text
    assert sample_project.card()["metrics"][0]["target"] == 0.95
    assert sample_project.card()["model"] == {"chosen": "fake/echo"}


def test_an_interrupted_write_releases_the_lock(project):
    with pytest.raises(KeyboardInterrupt):
        with project.store.write() as db:
            db.execute("INSERT INTO meta VALUES ('half', 'written')")
            raise KeyboardInterrupt
    assert not project.store.db.in_transaction
    other = sqlite3.connect(project.path / "workbench.db", timeout=1)
    other.execute("BEGIN IMMEDIATE")  # would time out if the lock were still held
    other.rollback()
    assert project.store.db.execute("SELECT value FROM meta WHERE key='half'").fetchone() is None
