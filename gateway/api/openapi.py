"""OpenAPI 3.1 document generated from the route table and its models (gateway.api.models),
so it cannot drift from the routes or from what the dispatcher validates."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from gateway.api.routing import ROUTES, Permission, Route

_PARAM = re.compile(r"{([a-z_]+)}")
_REF = "#/components/schemas/{model}"

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable machine-readable code"},
                "message": {"type": "string"},
                "violations": {
                    "type": "array",
                    "description": "What was wrong: each invalid field (code invalid_input) "
                    "or each policy rule a request broke (code policy_denied)",
                    "items": {
                        "type": "object",
                        "properties": {
                            "rule": {"type": "string"},
                            "field": {"type": "string"},
                            "message": {"type": "string"},
                            "identifier": {"type": ["string", "null"]},
                        },
                    },
                },
            },
        }
    },
}

_ERRORS = {
    400: "Invalid input (malformed JSON, a body or query that violates the schema, or a "
    "value the service refuses); `violations` says which fields",
    404: "Not found",
    409: "Conflict with the current state",
}
_AUTH_ERRORS = {401: "Missing or invalid token", 403: "Not allowed"}
_BODY_ERRORS = {413: "Body too large", 415: "Body is not application/json"}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}},
    }


def _path_param(name: str) -> dict[str, Any]:
    if name.endswith("_id"):
        schema: dict[str, Any] = {"type": "string", "format": "uuid"}
    else:
        schema = {"type": "string", "pattern": "^[a-z0-9-]{1,63}$"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a string, never null."""
    options = [s for s in schema.get("anyOf", []) if s != {"type": "null"}]
    if len(options) == 1:
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
        return {**rest, **options[0]}
    return {k: v for k, v in schema.items() if k != "default" or v is not None}


def _query_params(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": _not_null(prop)}
        for name, prop in schema.get("properties", {}).items()
    ]


def _models(routes: list[Route]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    seen: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
    for route in routes:
        if route.body is not None:
            seen[(route.body, "validation")] = None
        if route.query is not None:
            seen[(route.query, "validation")] = None
        for model in route.schemas.values():
            seen[(model, "serialization")] = None
    return list(seen)


def operation(route: Route, refs: Any, defs: dict[str, Any]) -> dict[str, Any]:
    parameters = [_path_param(name) for name in _PARAM.findall(route.path)]
    if route.query is not None:
        ref = refs[(route.query, "validation")]["$ref"].rsplit("/", 1)[-1]
        parameters += _query_params(defs[ref])
    responses: dict[str, Any] = {}
    for code, text in route.responses.items():
        if code == 204:
            responses[str(code)] = {"description": text}
            continue
        model = route.schemas.get(code)
        schema = refs[(model, "serialization")] if model is not None else {"type": "object"}
        responses[str(code)] = {
            "description": text,
            "content": {"application/json": {"schema": schema}},
        }
    errors = dict(_ERRORS)
    if route.permission is not Permission.PUBLIC:
        errors.update(_AUTH_ERRORS)
    if route.body is not None:
        errors.update(_BODY_ERRORS)
    for code, text in sorted(errors.items()):
        responses.setdefault(str(code), _error(text))
    op: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": [route.tag],
        "x-permission": route.permission.value,
        "parameters": parameters,
        "responses": responses,
    }
    if route.permission is not Permission.PUBLIC:
        op["security"] = [{"bearer": []}]
    if route.body is not None:
        op["requestBody"] = {
            "required": not route.body_optional,
            "content": {"application/json": {"schema": refs[(route.body, "validation")]}},
        }
    return op


def document(routes: list[Route]) -> dict[str, Any]:
    api = [r for r in routes if r.path.startswith("/api/")]
    refs, top = models_json_schema(_models(api), ref_template=_REF)
    defs: dict[str, Any] = dict(top.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for route in api:
        paths.setdefault(route.path, {})[route.method.lower()] = operation(route, refs, defs)
    # Query models are expanded into parameters; only what else refers to them stays.
    return {
        "openapi": "3.1.0",
        "info": {"title": "certgate REST API", "version": "1"},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {**defs, "Error": ERROR_SCHEMA},
        },
    }


_built: dict[int, tuple[dict[str, Route], bytes]] = {}


async def openapi_json(request: web.Request) -> web.Response:
    # The table is fixed once the app is built: generate the document once per table.
    table = request.config_dict[ROUTES]
    cached = _built.get(id(table))
    if cached is None or cached[0] is not table:
        cached = (table, json.dumps(document(list(table.values()))).encode())
        if len(_built) >= 8:  # tests build many apps; keep a few
            _built.clear()
        _built[id(table)] = cached
    return web.Response(body=cached[1], content_type="application/json")


def routes() -> list[Route]:
    return [
        Route(
            "GET",
            "/api/v1/openapi.json",
            openapi_json,
            "openapi",
            Permission.PUBLIC,
            "This document",
            "meta",
        )
    ]
