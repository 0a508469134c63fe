"""Phase 7: deployment — a served API for the chosen prompt and model (and LoRA adapter).

Two steps, both recorded in the project:

1. ``plan_deployment`` picks the configuration (a prompt version, a model, fallbacks, limits),
   checks it against the evaluation gate of phase 6 (targets from the card, the blessed baseline,
   trusted judges) and **refuses** a configuration that fails it unless ``force=True`` — forcing
   is written to the card's decision log with the reasons. It saves a ``deployment`` record and
   writes ``deploy/service.json`` and ``deploy/Dockerfile``.
2. ``create_app`` builds the FastAPI service from the latest deployment: API keys, a token-bucket
   rate limit per key, input validation from the template's variables, the gateway's cache,
   retries and fallbacks to other models; every request is traced (``serve.request`` with the
   model calls inside). ``workbench serve`` runs it with uvicorn; ``start_server`` runs it on a
   background thread (notebooks, tests).

API keys are the project's (``workbench keys``, ``workbench.serve.keys``: stored hashed, with
per-key requests and tokens a minute and a monthly budget; see ``workbench.serve.limits``) and
those in ``WORKBENCH_API_KEYS`` (comma-separated) or the ``api_keys`` argument, which are never
written to the project, its traces or the deployment files.

The package's modules, one concept each, from the base up: ``deployment`` (what a deployment
is: the recorded spec, how it reads, the body-size rule; it imports no sibling), ``files``
(recording one with its files), ``planning`` (choosing one against the gate),
``outcome`` (how one item was answered), ``protection`` (keys, text and body rules), ``service`` (what a
running service serves and shares; answering one item), ``guard`` (the ASGI layer that applies
the protections), ``app`` (the FastAPI app: errors, routes), ``openai_api`` (the same service
in OpenAI's dialect: /v1/chat/completions, /v1/models), ``demo`` (the page at /), ``docs``
(OpenAPI, /docs), ``running`` (uvicorn, in the foreground or on a thread), ``keys`` (the
project's API keys), ``limits`` (the ``Counters`` every limit is kept in, rate buckets, budgets),
``rollout`` (a canary or shadow candidate beside the live deployment, promote and rollback,
per-arm figures), ``safety`` (the content filter), ``breaker`` (a circuit breaker per model),
``shared_state`` (Redis: limits and the cache shared by several processes), ``compose``
(replicas behind nginx), ``semantic_cache`` (measured before it may be turned on).
"""

from workbench.serve.app import create_app
from workbench.serve.deployment import (
    DEPLOYMENT,
    ENV_API_KEYS,
    SERVICE_FILE,
    Deployment,
    DeploymentRefused,
    DeploymentSpec,
    NotDeployed,
    latest_deployment,
)
from workbench.serve.files import dockerfile, write_deploy_files
from workbench.serve.limits import RateLimiter
from workbench.serve.planning import Limits, default_limits, plan_deployment
from workbench.serve.protection import api_keys_from_env
from workbench.serve.running import RunningServer, serve, start_server
from workbench.serve.semantic_cache import (
    SemanticCacheMeasurement,
    SemanticCacheNotMeasured,
    measure_semantic_cache,
)

__all__ = [
    "DEPLOYMENT", "ENV_API_KEYS", "SERVICE_FILE", "Deployment", "DeploymentRefused",
    "DeploymentSpec", "Limits", "NotDeployed", "RateLimiter", "RunningServer",
    "api_keys_from_env", "create_app", "default_limits", "dockerfile", "latest_deployment",
    "plan_deployment", "serve", "start_server", "write_deploy_files",
    "SemanticCacheMeasurement", "SemanticCacheNotMeasured", "measure_semantic_cache",
]
