"""OpenAPI 3 document generated from the route table, so it cannot drift from the routes."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from gateway.api.routing import ROUTES, Permission, Route

_PARAM = re.compile(r"{([a-z_]+)}")
_TYPES = {
    "string": "string",
    "integer": "integer",
    "boolean": "boolean",
    "array": "array",
    "object": "object",
    "uuid": "string",
    "date-time": "string",
}


def _schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": _TYPES.get(kind, "string")}
    if kind in ("uuid", "date-time"):
        schema["format"] = kind
    if "|" in kind:
        schema["enum"] = kind.split("|")
    return schema


def _error_ref() -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": [route.tag],
        "x-permission": route.permission.value,
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(route.path)
        ]
        + [
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            for name in route.query
        ],
        "responses": {str(code): {"description": text} for code, text in route.responses.items()},
    }
    for code, text in ((400, "Bad request"), (404, "Not found")):
        op["responses"][str(code)] = {"description": text, **_error_ref()}
    if route.permission is not Permission.PUBLIC:
        op["security"] = [{"bearer": []}]
        op["responses"]["401"] = {"description": "Missing or invalid token", **_error_ref()}
        op["responses"]["403"] = {"description": "Not allowed", **_error_ref()}
    if route.request_body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {k: _schema(v) for k, v in route.request_body.items()},
                    }
                }
            },
        }
    return op


def document(routes: list[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if route.path.startswith("/api/"):
            paths.setdefault(route.path, {})[route.method.lower()] = operation(route)
    return {
        "openapi": "3.0.3",
        "info": {"title": "certgate REST API", "version": "1"},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                }
            },
        },
    }


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document(list(request.app[ROUTES].values())))


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
