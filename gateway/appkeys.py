"""The web.AppKeys of the service graph, typed, in one module (DESIGN.md habit); the REST
sub-application's own route-table key lives with its routing (gateway.api.routing)."""

from __future__ import annotations

from aiohttp import web

from gateway.config import Config
from gateway.services.auth import Authenticator
from gateway.services.crl import CrlService
from gateway.services.graph import Services

CONFIG = web.AppKey("config", Config)
SERVICES = web.AppKey("services", Services)
AUTH = web.AppKey("auth", Authenticator)
CRL = web.AppKey("crl", CrlService)
