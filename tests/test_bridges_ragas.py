"""The optional Ragas check: the workbench's id-based context precision and recall agree with
Ragas' own implementation on the bundled help-centre set (skipped when ragas is missing: it is
not a dependency)."""

from __future__ import annotations

import pytest

from workbench.errors import MissingDependency


def _words(texts):
    """A small deterministic embedding (bag of words hashed into 256 dimensions): the check is
    about the metrics, so the retrieval need not be the bundled model's."""
    import zlib

    import numpy as np

    out = np.zeros((len(texts), 256))
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, zlib.crc32(word.strip(".,?!:;").encode()) % 256] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1, norms)


def test_the_rag_metrics_agree_with_ragas_on_the_help_centre_set():
    pytest.importorskip("ragas")
    from workbench.bridges.ragas import compare_with_ragas

    result = compare_with_ragas(embed_fn=_words)
    assert len(result) >= 10
    assert result.attrs["agree"], result.attrs["sentence"]
    assert result["recall_ragas"].between(0, 1).all()


def test_without_ragas_the_check_says_how_to_install_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ragas", None)
    monkeypatch.setitem(sys.modules, "ragas.metrics", None)
    from workbench.bridges.ragas import compare_with_ragas

    with pytest.raises(MissingDependency) as caught:
        compare_with_ragas()
    assert caught.value.fix == "Install with: pip install ragas"
