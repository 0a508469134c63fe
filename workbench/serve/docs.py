"""The service's documentation, readable without a key and served from this machine: the
OpenAPI document (one error shape, security schemes, every error status), ``/docs`` (Swagger UI
from files on this machine, never a CDN, else a self-contained page) and ``/redoc``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.serve.deployment import ENV_API_KEYS

if TYPE_CHECKING:
    from pathlib import Path

    from workbench.serve.service import Service

def _swagger_assets() -> Path | None:
    """The folder of Swagger UI's files on this machine, if an installed package ships them
    (litellm's proxy does, and the workbench installs litellm); None otherwise. Nothing is
    fetched: /docs must work offline."""
    import importlib.util
    from pathlib import Path

    found = importlib.util.find_spec("litellm")
    if found is None or not found.origin:
        return None
    folder = Path(found.origin).parent / "proxy" / "swagger"
    names = ("swagger-ui-bundle.js", "swagger-ui.css")
    return folder if all((folder / n).is_file() for n in names) else None


def _endpoint_page(doc: dict[str, Any]) -> str:
    """A self-contained HTML page listing the endpoints of an OpenAPI document (the /docs page
    when Swagger UI's files are not on this machine)."""
    from html import escape

    rows = []
    for path, operations in doc.get("paths", {}).items():
        for method, op in operations.items():
            keyed = "key" if op.get("security") else "no key"
            body = (op.get("requestBody") or {}).get("content", {}).get("application/json", {})
            schema = body.get("schema", {})
            if "$ref" in schema:
                schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
            fields = ", ".join(
                f"<code>{escape(name)}</code>" + (" (required)" if name in schema.get(
                    "required", []) else "") for name in schema.get("properties", {}))
            statuses = ", ".join(escape(s) for s in op.get("responses", {}))
            rows.append(f"<tr><td><code>{escape(method.upper())} {escape(path)}</code></td>"
                        f"<td>{escape(op.get('summary', ''))}</td><td>{fields or '-'}</td>"
                        f"<td>{keyed}</td><td>{statuses}</td></tr>")
    info = doc.get("info", {})
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
            f"{escape(info.get('title', 'API'))}</title><style>body{{font-family:sans-serif;"
            "margin:2em}td,th{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left}"
            "</style></head><body>"
            f"<h1>{escape(info.get('title', 'API'))}</h1><p>{escape(info.get('description', ''))}"
            "</p><table><tr><th>Endpoint</th><th>What</th><th>JSON fields</th><th>Auth</th>"
            f"<th>Statuses</th></tr>{''.join(rows)}</table><p>Errors answer "
            "<code>{\"error\", \"fix\", \"request_id\"}</code>. The whole description: "
            "<a href='openapi.json'>openapi.json</a>.</p></body></html>")


_ERROR_TEXT = {
    400: "The body is not UTF-8 JSON, or nests too deeply.",
    401: "No key, an unknown or revoked key, or one sent with characters no key has.",
    402: "A monthly budget is spent (the key's, or the whole service's); the body says which "
         "and when it resets.",
    404: "No answer with this request_id for this key.",
    413: "The body passed the service's byte bound (the connection is closed).",
    422: "A field is missing, unknown, too long or empty, or has control or bidirectional "
         "control characters; or the content filter refused the input or withheld the answer "
         "(prompt injection, jailbreak, system-prompt extraction or leakage, a blocked term, "
         "the moderation model): the error says which, never what matched.",
    429: "The key's limit of requests or model tokens a minute is reached (or too many "
         "requests without a valid key).",
    500: "The service failed on this request.",
    502: "No model could answer.",
    503: "Too many requests are in progress, every model is resting after repeated failures "
         "(circuit breaker), or the limits the service's processes share cannot be checked.",
    504: "No model answered within the service's timeout.",
}
KEYED_ERRORS = frozenset({401, 413, 429, 500})  # what any keyed route may answer


def add_docs(app: Any, service: Service) -> None:
    """Give ``app`` its OpenAPI document (built once, on first request) and the /docs, /redoc
    and Swagger asset routes; ``service.documented_errors`` says which errors each route
    answers."""
    from fastapi import Request
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.openapi.utils import get_openapi
    from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    assets = _swagger_assets()

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description,
                          routes=app.routes)
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        schemas["Error"] = {
            "title": "Error", "type": "object", "required": ["error", "fix"],
            "additionalProperties": False,
            "properties": {
                "error": {"type": "string", "description": "What went wrong."},
                "fix": {"type": "string", "description": "What to do about it."},
                "request_id": {"type": "string",
                               "description": "Give it to the service's operator."}}}
        components["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "Authorization: Bearer KEY (a key from `workbench keys "
                                      f"create`, or from {ENV_API_KEYS})"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                       "description": "X-API-Key: KEY, the same keys"}}
        retry = {"Retry-After": {"description": "Seconds to wait before trying again.",
                                 "schema": {"type": "integer", "minimum": 1}}}
        for path, operations in doc.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                shape = service.error_schema.get(path, {"$ref": "#/components/schemas/Error"})
                statuses = set(service.documented_errors.get((method, path), {500}))
                if path in service.answering_routes:  # budgets apply where a model is called
                    statuses.add(402)
                for status in sorted(statuses):
                    response: dict[str, Any] = {
                        "description": service.error_text.get((method, path, status),
                                                              _ERROR_TEXT[status]),
                        "content": {"application/json": {"schema": shape}}}
                    if status in (429, 503):
                        response["headers"] = retry
                    elif status == 401:
                        response["headers"] = {"WWW-Authenticate": {
                            "description": "Bearer", "schema": {"type": "string"}}}
                    responses[str(status)] = response
                if path not in service.public:
                    operation["security"] = [{"bearer": []}, {"apiKey": []}]
        app.openapi_schema = doc
        return doc

    app.openapi = openapi

    def docs(request):
        root = request.scope.get("root_path", "")
        if assets is None:
            return HTMLResponse(_endpoint_page(app.openapi()))
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json", title=app.title + " - docs",
            swagger_js_url=f"{root}/docs/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/favicon.png",
            swagger_ui_parameters={"validatorUrl": None})

    def redoc(request):
        return RedirectResponse(request.scope.get("root_path", "") + "/docs")

    docs.__annotations__ = redoc.__annotations__ = {"request": Request}
    app.get("/docs", include_in_schema=False, response_class=HTMLResponse)(docs)
    app.get("/redoc", include_in_schema=False)(redoc)

    def asset(name: str, media_type: str):
        def serve_asset():
            if assets is None or not (assets / name).is_file():
                raise StarletteHTTPException(404)
            return FileResponse(assets / name, media_type=media_type,
                                headers={"Cache-Control": "public, max-age=86400"})
        return serve_asset

    for name, media_type in (("swagger-ui-bundle.js", "text/javascript"),
                             ("swagger-ui.css", "text/css"), ("favicon.png", "image/png")):
        app.get(f"/docs/{name}", include_in_schema=False)(asset(name, media_type))
