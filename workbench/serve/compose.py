"""The files that run a deployment as several replicas: ``deploy/compose.yaml`` (the service
image N times, nginx in front, Redis for the limits and cache they share) and
``deploy/nginx.conf`` (the load balancer, with the service's own body bound and timeout).

Written with the other deployment files (``files.write_deploy_files``); both are plain text
to read and edit. The replicas share one project volume, so traces and feedback from all of them
land in one ``workbench.db`` (SQLite in WAL mode works across containers on one host; several
hosts need the PostgreSQL path of the design)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.serve.deployment import max_body_bytes

if TYPE_CHECKING:
    from workbench.serve.deployment import DeploymentSpec

REPLICAS = 3
COMPOSE_FILE = "compose.yaml"
NGINX_FILE = "nginx.conf"
SERVICE_PORT = 8000
PUBLISHED_PORT = 8000


def compose_yaml(spec: DeploymentSpec, *, replicas: int = REPLICAS) -> str:
    """``deploy/compose.yaml``: ``replicas`` copies of the service image behind nginx, with
    Redis holding the rate limits, budgets and response cache they share."""
    return f"""\
# The workbench service as {replicas} replicas behind a load balancer (written by workbench.serve;
# edit freely). The replicas share rate limits, budgets and the response cache through Redis,
# and one project volume (traces and feedback from all of them reach monitoring).
# From the project folder, with the workbench wheel in deploy/wheels/ (see deploy/Dockerfile):
#   WORKBENCH_API_KEYS=key1,key2 docker compose -f deploy/compose.yaml up --build
# More or fewer replicas: change `replicas` below, or `docker compose up --scale service=N`.
# The service answers on http://127.0.0.1:{PUBLISHED_PORT} (nginx); only nginx is published.
services:
  service:
    build:
      context: ..
      dockerfile: deploy/Dockerfile
    image: workbench-service:{spec.prompt}-v{spec.prompt_version}
    environment:
      WORKBENCH_API_KEYS: ${{WORKBENCH_API_KEYS:?set WORKBENCH_API_KEYS=key1,key2}}
      WORKBENCH_REDIS_URL: redis://redis:6379/0
      # the client address comes from nginx's X-Forwarded-For (only nginx reaches the service)
      FORWARDED_ALLOW_IPS: "*"
    command: ["workbench", "serve", "--project", "/srv/project", "--host", "0.0.0.0",
              "--port", "{SERVICE_PORT}"]
    expose: ["{SERVICE_PORT}"]
    volumes:
      - project:/srv/project
    deploy:
      replicas: {replicas}
    depends_on:
      redis:
        condition: service_healthy
    restart: unless-stopped

  balancer:
    image: nginx:1.27-alpine
    ports: ["{PUBLISHED_PORT}:80"]
    volumes:
      - ./{NGINX_FILE}:/etc/nginx/conf.d/default.conf:ro
    depends_on:
      service:
        condition: service_healthy
    restart: unless-stopped

  redis:
    image: redis:7-alpine
    # append-only file: monthly budgets survive a restart; no eviction: a full Redis refuses
    # writes (the service answers 503) rather than silently forgetting budgets
    command: ["redis-server", "--appendonly", "yes", "--maxmemory-policy", "noeviction"]
    volumes:
      - redis-data:/data
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
      interval: 5s
      timeout: 3s
      retries: 10
    restart: unless-stopped

volumes:
  project:
  redis-data:
"""


def nginx_conf(spec: DeploymentSpec) -> str:
    """``deploy/nginx.conf``: round robin over the replicas, with the service's byte bound and a
    read timeout above its own (the service answers 504 itself; nginx should not cut first)."""
    body = max_body_bytes(spec)
    read_timeout = int(spec.timeout_s * (1 + spec.retries) + 30)
    return f"""\
# nginx in front of the workbench service's replicas (written by workbench.serve; edit freely).
# `service` resolves to every replica when nginx starts (restart nginx after scaling).
upstream workbench {{
    server service:{SERVICE_PORT};
    keepalive 64;
}}

server {{
    listen 80;
    # the service refuses larger bodies itself (413); nginx need not read more than that
    client_max_body_size {body};

    location / {{
        proxy_pass http://workbench;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_read_timeout {read_timeout}s;
        # answers are small JSON; streamed answers must reach the client as they come
        proxy_buffering off;
    }}
}}
"""


def compose_files(spec: DeploymentSpec) -> dict[str, str]:
    """File name -> text, for ``write_deploy_files``."""
    return {COMPOSE_FILE: compose_yaml(spec), NGINX_FILE: nginx_conf(spec)}
