"""Phase 2: data collection and preparation — versions, import, profiling, cleaning, splits."""

from workbench.data.versions import (
    DatasetError,
    DatasetVersion,
    datasets,
    diff,
    get_version,
    load,
    save_version,
    versions,
)

__all__ = ["DatasetError", "DatasetVersion", "datasets", "diff", "get_version", "load",
           "save_version", "versions"]
