"""Phase 8 exercises: an alert that fires on served traffic, and feedback that corrects."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.exercises.model import Exercise, Verdict

if TYPE_CHECKING:
    from workbench.project import Project


def _served(project: Project) -> int:
    return project.store.db.execute(
        "SELECT COUNT(*) FROM spans WHERE name = 'serve.request'").fetchone()[0]


def check_alert(project: Project) -> Verdict:
    served = _served(project)
    if served < 5:
        return Verdict(False, f"The service has answered {served} request(s); alerts judge a "
                              "window of at least 5.")
    rows = project.store.db.execute(
        "SELECT rule, message FROM alerts ORDER BY fired_at DESC").fetchall()
    if not rows:
        return Verdict(False, "Traffic is there, but no alert has fired. Alert rules come from "
                              "the card: what would have to go wrong in the service for one "
                              "of them to fire? Check the alerts after it does.")
    return Verdict(True, f"{len(rows)} alert(s) fired; the latest: {rows[0][1]}")


def check_feedback(project: Project) -> Verdict:
    served = _served(project)
    if not served:
        return Verdict(False, "The service has not answered any request yet.")
    rows = project.store.db.execute(
        "SELECT f.rating, f.correction FROM feedback f WHERE EXISTS (SELECT 1 FROM spans s "
        "WHERE s.trace_id = f.trace_id AND s.name = 'serve.request')").fetchall()
    if not rows:
        return Verdict(False, "No feedback is tied to a request the service answered; send it "
                              "with the request id the answer carries.")
    corrected = [r for r in rows if r[0] < 0 and (r[1] or "").strip()]
    if not corrected:
        return Verdict(False, f"{len(rows)} piece(s) of feedback, but none is a thumbs down "
                              "that says what the right answer was. Phase 9 needs those.")
    return Verdict(True, f"{len(corrected)} thumbs-down answer(s) carry a correction, ready to "
                         "become test cases.")


EXERCISES = (
    Exercise("08.1", 8, "An alert that fires",
             "Serve at least five requests in a window where something goes wrong for one of "
             "the alert rules, then check the alerts so that one fires. Read its message.",
             check_alert, minutes=15),
    Exercise("08.2", 8, "Feedback that corrects",
             "Rate answers of the running service, including at least one thumbs down that says "
             "what the right answer was.", check_feedback, minutes=10),
)
