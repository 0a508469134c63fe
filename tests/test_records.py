from typing import ClassVar

import pytest

from workbench.errors import RecordNotFound
from workbench.records import Record


class Recipe(Record):
    kind: ClassVar[str] = "test_recipe"
    schema_version: ClassVar[int] = 2
    title: str
    minutes: int

    @classmethod
    def upgrade(cls, body, from_version):
        if from_version == 1:  # version 1 stored hours
            body = {"title": body["title"], "minutes": body["hours"] * 60}
        return body


def test_versions_are_append_only_and_unchanged_saves_make_none(project):
    records = project.records
    first = records.save("soup", Recipe(title="Soup", minutes=30))
    again = records.save("soup", Recipe(title="Soup", minutes=30))
    second = records.save("soup", Recipe(title="Soup", minutes=25))
    assert (first.version, again.version, second.version) == (1, 1, 2)
    assert [s.value.minutes for s in records.versions(Recipe, "soup")] == [30, 25]
    assert records.get(Recipe, "soup").value == Recipe(title="Soup", minutes=25)
    assert records.get(Recipe, "soup", 1).value.minutes == 30
    assert records.names(Recipe) == ["soup"]


def test_values_are_frozen_and_carry_no_identity(project):
    stored = project.records.save("soup", Recipe(title="Soup", minutes=30))
    with pytest.raises(Exception):
        stored.value.minutes = 5
    assert set(stored.value.model_dump()) == {"title", "minutes"}


def test_tags_and_missing_records(project):
    records = project.records
    records.save("soup", Recipe(title="Soup", minutes=30))
    records.save("soup", Recipe(title="Soup", minutes=20))
    records.tag(Recipe, "soup", 1, "production")
    assert records.get(Recipe, "soup", "production").version == 1
    records.tag(Recipe, "soup", 2, "staging")
    records.tag(Recipe, "soup", 2, "production")  # a tag moves to the newer version
    assert records.tags(Recipe, "soup") == {2: ["production", "staging"]}
    assert records.tags(Recipe, "stew") == {}
    with pytest.raises(RecordNotFound, match="tagged 'candidate'"):
        records.get(Recipe, "soup", "candidate")
    with pytest.raises(RecordNotFound, match="version 7"):
        records.get(Recipe, "soup", 7)
    with pytest.raises(RecordNotFound):
        records.tag(Recipe, "stew", 1, "production")


def test_old_schema_versions_are_upgraded_on_read(project):
    with project.store.write() as db:
        db.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)",
                   ("test_recipe", "stew", 1, 1, "x", 0.0, '{"title": "Stew", "hours": 2}'))
    assert project.records.get(Recipe, "stew").value == Recipe(title="Stew", minutes=120)
