"""Phase 5: LoRA fine-tuning of the bundled model on a laptop CPU.

- ``build_training_data``: instruction–answer pairs from a dataset version's train split (the
  validation split for early stopping; never the test split), rendered in the model's chat
  template exactly as the gateway renders the prompt version; ``check_parity`` proves it token
  by token;
- ``FineTune``: options checked up front, an estimate from real steps, training with PEFT with
  validation loss, early stopping, Stop, checkpoints and resume; the adapter lands in
  ``adapters/NAME`` and is served at once as ``local/smollm2-135m:NAME``;
- ``before_after``: the same evaluation on the test split without and with the adapter, with
  intervals, the paired test and the items that flipped; ``record_decision`` logs the verdict;
- ``prompting_verdict``: should you fine-tune at all? the best prompt's run against the targets;
- exports for a GPU machine (OpenAI chat JSONL, an Axolotl config), ``import_adapter`` and
  ``merge_adapter``.

Importing this package loads no model library; torch, transformers and PEFT load when used.
"""

from workbench.finetune.adapters import (
    adapter_record,
    import_adapter,
    list_adapters,
    merge_adapter,
)
from workbench.finetune.data import (
    Example,
    ParityReport,
    TrainingData,
    build_training_data,
    check_parity,
)
from workbench.finetune.evaluation import (
    BeforeAfter,
    PromptingVerdict,
    before_after,
    prompting_verdict,
    record_decision,
)
from workbench.finetune.export import (
    export_axolotl,
    export_openai,
    validate_openai_jsonl,
)
from workbench.finetune.options import (
    AdapterMismatch,
    FinetuneError,
    TemplateDrift,
    TrainOptions,
    make_options,
)
from workbench.finetune.trainer import (
    AdapterRecord,
    Estimate,
    FineTune,
    TrainingResult,
    TrainingState,
)

__all__ = [
    "AdapterMismatch", "AdapterRecord", "BeforeAfter", "Estimate", "Example", "FineTune",
    "FinetuneError", "ParityReport", "PromptingVerdict", "TemplateDrift", "TrainOptions",
    "TrainingData", "TrainingResult", "TrainingState", "adapter_record", "before_after",
    "build_training_data", "check_parity", "export_axolotl", "export_openai", "import_adapter",
    "list_adapters", "make_options", "merge_adapter", "prompting_verdict", "record_decision",
    "validate_openai_jsonl",
]
