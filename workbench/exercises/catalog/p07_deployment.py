"""Phase 7 exercises: the service refuses abuse, and a key's limit holds."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from workbench.exercises.model import Exercise, Verdict

if TYPE_CHECKING:
    from workbench.project import Project

ABUSE_CHECKS = ("blocked_term", "moderation")
STATUS = "json_extract(attributes, '$.\"http.response.status_code\"')"


def _deployed(project: Project) -> bool:
    return bool(project.records.count("deployment"))


def check_refuses_abuse(project: Project) -> Verdict:
    if not _deployed(project):
        return Verdict(False, "Nothing is deployed yet: plan a deployment first.")
    db = project.store.db
    blocked = [json.loads(a) for (a,) in db.execute(
        "SELECT attributes FROM spans WHERE name = 'serve.filter' AND "
        "json_extract(attributes, '$.\"workbench.filter.action\"') = 'block'")]
    if not blocked:
        return Verdict(False, "The service has not refused any request for what it says yet. "
                              "Send it something abusive and look at the answer's status.")
    for attributes in blocked:
        for check in attributes.get("workbench.filter.checks") or []:
            if check.get("check") in ABUSE_CHECKS and check.get("action") == "block":
                return Verdict(True, f"A request was refused by the {check['check']} check "
                                     f"({attributes.get('workbench.filter.stage')}): the "
                                     "service says no to abuse, not only to injections.")
    return Verdict(False, "The service refused a prompt injection, which it does out of the "
                          "box; abuse in plain words still gets an answer. What in the card or "
                          "the deployment tells the filter what your users must not send?")


def check_key_limit(project: Project) -> Verdict:
    if not _deployed(project):
        return Verdict(False, "Nothing is deployed yet: plan a deployment first.")
    db = project.store.db
    limited = db.execute("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL AND "
                         "(rate_limit_per_minute IS NOT NULL OR tokens_per_minute IS NOT NULL)"
                         ).fetchone()[0]
    if not limited:
        return Verdict(False, "No active project key has a per-minute limit yet.")
    traced = db.execute(f"SELECT COUNT(*) FROM spans WHERE name = 'serve.request' AND "
                        f"{STATUS} = 429").fetchone()[0]
    counted = db.execute("SELECT COALESCE(SUM(untraced), 0) FROM refusal_counts WHERE "
                         "status = 429").fetchone()[0]
    if not traced + counted:
        return Verdict(False, "A key has a limit, but the service has never had to enforce one: "
                              "show that it does.")
    return Verdict(True, f"{traced + counted} request(s) refused with 429 by a key's limit.")


EXERCISES = (
    Exercise("07.1", 7, "Make the service refuse an abusive request",
             "Out of the box the content filter stops prompt injections. Make the deployed "
             "service also refuse a request that is abusive in plain words, and show it "
             "(send one to the running service).", check_refuses_abuse, minutes=15),
    Exercise("07.2", 7, "A key whose limit holds",
             "Create a project API key with a per-minute limit and show the running service "
             "enforcing it.", check_key_limit, minutes=10),
)
