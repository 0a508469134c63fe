"""litellm looks up its price map and model list on the network when it is imported, unless
told not to: ``litellm_offline()`` tells it, and runs before every import of litellm in the
workbench (the gateway's hosted backend, the custom providers), so nothing waits on a network
that a classroom may not have."""

from __future__ import annotations

import os


def litellm_offline() -> None:
    """Use litellm's bundled price map and no remote look-ups (the user's own settings win)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
