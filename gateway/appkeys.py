"""Every web.AppKey of the gateway, typed, in one module (DESIGN.md habit)."""

from __future__ import annotations

from aiohttp import web

from gateway.admin.crl import CrlService
from gateway.admin.services import Services
from gateway.api.routing import Route
from gateway.auth import Authenticator
from gateway.config import Config

CONFIG = web.AppKey("config", Config)
SERVICES = web.AppKey("services", Services)
AUTH = web.AppKey("auth", Authenticator)
CRL = web.AppKey("crl", CrlService)
ROUTES = web.AppKey("routes", dict[str, Route])
