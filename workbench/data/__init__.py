"""Phase 2: data collection and preparation — import, profile, clean, split, versions.

One module per step (``importing``, ``profiling``, ``cleaning``, ``splitting``, ``versioning``),
named apart from the functions the package exports (``profile``, ``clean``, ``split``, ...), so
``import workbench.data.splitting`` always gives the module.

Importing this package loads no pandas, scikit-learn or model code; each function loads what it
needs when it is called.
"""

from workbench.data.cleaning import (
    CleaningError,
    Step,
    apply_steps,
    clean,
    drop_empty,
    drop_exact_duplicates,
    drop_near_duplicates,
    filter_length,
    normalize_unicode,
    normalize_whitespace,
    step_from_dict,
)
from workbench.data.importing import ImportFailed, import_data
from workbench.data.profiling import (
    DataProfile,
    exact_duplicates,
    label_issues,
    near_duplicates,
    profile,
    review_items,
)
from workbench.data.splitting import SplitError, check_leakage, load_split, split, version_leaks
from workbench.data.versioning import (
    DatasetError,
    DatasetVersion,
    datasets,
    diff,
    find_split,
    get_version,
    load,
    save_version,
    versions,
)

# The kernel's naming convention for stored things (datasets, prompts, runs): list_THINGS(),
# THING_versions(name), load_THING(name, version). The shorter names stay for existing code.
list_datasets = datasets
dataset_versions = versions
load_dataset = load

__all__ = [
    "CleaningError", "DataProfile", "DatasetError", "DatasetVersion", "ImportFailed",
    "SplitError", "Step", "apply_steps", "check_leakage", "clean", "datasets", "diff",
    "drop_empty", "drop_exact_duplicates", "drop_near_duplicates", "exact_duplicates",
    "filter_length", "find_split", "get_version", "import_data", "label_issues", "load",
    "load_split", "near_duplicates", "normalize_unicode", "normalize_whitespace", "profile",
    "review_items", "save_version", "split", "step_from_dict", "version_leaks", "versions",
    "list_datasets", "dataset_versions", "load_dataset",
]
