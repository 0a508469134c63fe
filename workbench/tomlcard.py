"""Writing the project card without losing what a person wrote in it.

The card is meant to be edited by hand too, so a save from a notebook must keep the file's
comments, order and layout wherever the values did not change: the new values are merged into
the parsed document (tomlkit) instead of dumping a fresh file. Lists of tables are written as
``[[metrics]]`` blocks, the way people write them.
"""

from __future__ import annotations

import re
from typing import Any

_HEADER = re.compile(r"([^\n])\n(\[{1,2}[\w.\"' -]+\]{1,2}[ \t]*\n)")


def _item(value: Any) -> Any:
    import tomlkit

    if isinstance(value, dict):
        table = tomlkit.table()
        for key, inner in value.items():
            table[key] = _item(inner)
        return table
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        blocks = tomlkit.aot()
        for inner in value:
            blocks.append(_item(inner))
        return blocks
    return value


def _merge(container: Any, new: dict[str, Any]) -> None:
    old = container.unwrap() if hasattr(container, "unwrap") else dict(container)
    for key in list(container.keys()):
        if key not in new:
            del container[key]
    for key, value in new.items():
        if key in old and old[key] == value:
            continue  # untouched: keep its comments and layout
        current = container.get(key) if key in old else None
        if isinstance(value, dict) and isinstance(old.get(key), dict) and \
                hasattr(current, "unwrap") and not getattr(current, "is_super_table",
                                                            lambda: False)():
            _merge(current, value)  # a changed table: merge inside it, keep the rest
        else:
            container[key] = _item(value)


def dumps(card: dict[str, Any], previous_text: str | None = None) -> str:
    """TOML text for ``card``, keeping ``previous_text``'s comments and layout where possible."""
    import tomlkit

    document = tomlkit.parse(previous_text) if previous_text else tomlkit.document()
    _merge(document, card)
    # A table written after a replaced block can lose its blank line: put it back.
    return _HEADER.sub(r"\1\n\n\2", tomlkit.dumps(document))
