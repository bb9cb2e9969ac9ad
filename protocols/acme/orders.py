"""Orders: newOrder (RFC 8555 §7.4, RFC 9773 §5 `replaces`), order polling, the orders
list (§7.1.2.1), finalize (§7.4), certificate download (§7.4.2)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import replace
from typing import Any

from aiohttp import web

from gateway.core import acme as rules
from gateway.core.acme import (
    AUTHZ_LIFETIME,
    ORDER_LIFETIME,
    Account,
    AcmeUnitOfWork,
    Authorization,
    AuthzStatus,
    Challenge,
    ChallengeStatus,
    Order,
    OrderStatus,
)
from gateway.core.acme import Problem as StoredProblem
from gateway.core.csr import parse_csr
from gateway.core.enrollment import EnrollmentRequest, Issued
from gateway.core.errors import (
    BadCSR,
    CAUnavailable,
    DomainError,
    MethodNotEnabled,
    PolicyDenied,
    SelfSignedNeedsKey,
)
from gateway.core.model import Certificate, EnrollmentMethod, new_id
from protocols.acme import ari
from protocols.acme.identifiers import check_identifiers
from protocols.acme.messages import Finalize, NewOrder, OrderResource, decode, identifier_json
from protocols.acme.problems import Problem, Subproblem, not_found
from protocols.acme.server import Ctx, iso, json_response, verify_post

RETRY_AFTER = "3"  # seconds a client should wait before polling a processing order
ORDERS_LISTED = 1000


def order_json(ctx: Ctx, order: Order) -> dict[str, Any]:
    resource = OrderResource(
        status=order.status.value,
        expires=iso(order.expires),
        identifiers=[identifier_json(i) for i in order.identifiers],
        authorizations=[ctx.url("authz", authz_id=str(a)) for a in order.authorization_ids],
        finalize=ctx.url("finalize", order_id=str(order.id)),
        not_before=iso(order.not_before),
        not_after=iso(order.not_after),
        error=stored_problem_json(order.error),
        certificate=ctx.url("cert", cert_id=str(order.certificate_id))
        if order.certificate_id and order.status is OrderStatus.VALID
        else None,
        replaces=order.replaces,
    )
    out: dict[str, Any] = resource.to_partial_json()
    return out


def stored_problem_json(problem: StoredProblem | None) -> dict[str, Any] | None:
    if problem is None:
        return None
    out: dict[str, Any] = {
        "type": "urn:ietf:params:acme:error:" + problem.type,
        "detail": problem.detail,
    }
    if problem.identifier is not None:
        out["identifier"] = identifier_json(problem.identifier)
    return out


def _check_issuable(ctx: Ctx) -> None:
    """Refuse an order this directory could never finalize, before the client proves
    anything: a self-signed profile signs with the certificate's own key, which an ACME
    client keeps (it sends a CSR, RFC 8555 §7.4), and an external CA's key is not held
    here. RFC 8555 has no error for "this server issues nothing here"; like Boulder for
    names it will not issue for, rejectedIdentifier, with the reason."""
    profile, ca = ctx.target.profile, ctx.target.ca
    if profile.self_signed:
        raise Problem(
            "rejectedIdentifier",
            f"profile '{profile.slug}' is self-signed: its certificates are signed by a key "
            "generated here, so it cannot issue for an ACME client's own key",
        )
    if ca is not None and not ca.holds_key:
        raise Problem(
            "rejectedIdentifier",
            f"profile '{profile.slug}' issues through the external CA '{ca.name}', whose key "
            "is held outside certgate (ca_external): nothing can be issued here",
        )


async def new_order(ctx: Ctx) -> web.Response:
    verified = await verify_post(ctx)
    account = verified.account
    assert account is not None
    payload = decode(NewOrder, verified.jws.payload())
    if payload.not_before or payload.not_after:
        # §7.4: the server may refuse; validity comes from the profile.
        raise Problem("malformed", "notBefore/notAfter are not supported; the profile decides")
    if payload.profile is not None:
        # draft-aaron-acme-profiles (newOrder `profile`): a profile the directory does not
        # advertise is refused with invalidProfile. Each directory here serves exactly one
        # certificate profile, so none is advertised (see accounts.directory) and any
        # `profile` is one we do not offer.
        raise Problem(
            "invalidProfile",
            f"this directory offers no selectable profiles (asked for {payload.profile!r}); "
            "it always issues under its own profile",
        )
    _check_issuable(ctx)
    identifiers = check_identifiers(payload.identifiers)
    replaces = await ari.check_replaces(ctx, account, payload.replaces, identifiers)
    now = ctx.server.now()
    order_id = new_id()
    authorizations = []
    refused: list[Subproblem] = []
    policy = ctx.target.policy
    for identifier in identifiers:
        violations = rules.identifier_violations(identifier, policy.rules) if policy else []
        if violations:
            detail = "; ".join(v.message for v in violations)
            refused.append(Subproblem("rejectedIdentifier", detail, identifier))
            continue
        types = rules.challenge_types_for(identifier, ctx.target.methods.acme.effective_challenges)
        if not types:
            refused.append(
                Subproblem("rejectedIdentifier", "no enabled challenge can prove it", identifier)
            )
            continue
        authz_id = new_id()
        challenges = tuple(
            Challenge(
                id=new_id(),
                authorization_id=authz_id,
                type=kind,
                token=secrets.token_urlsafe(32),  # §8.1: at least 128 bits of entropy
                status=ChallengeStatus.PENDING,
                validated=None,
                error=None,
            )
            for kind in types
        )
        authorizations.append(
            Authorization(
                id=authz_id,
                account_id=account.id,
                order_id=order_id,
                identifier=identifier,
                status=AuthzStatus.PENDING,
                expires=now + AUTHZ_LIFETIME,
                challenges=challenges,
            )
        )
    if refused:
        raise Problem(
            "rejectedIdentifier",
            "; ".join(f"{s.identifier.value}: {s.detail}" for s in refused),
            subproblems=refused,
        )
    order = Order(
        id=order_id,
        account_id=account.id,
        status=OrderStatus.PENDING,
        identifiers=identifiers,
        authorization_ids=tuple(a.id for a in authorizations),
        expires=now + ORDER_LIFETIME,
        not_before=None,
        not_after=None,
        error=None,
        certificate_id=None,
        request_id=None,
        replaces=replaces,
        created_at=now,
    )
    await ctx.uow.acme.add_order(order, authorizations)
    location = ctx.url("order", order_id=str(order.id))
    return json_response(ctx, order_json(ctx, order), status=201, location=location)


async def load_order(ctx: Ctx, account: Account, order_id: uuid.UUID) -> Order:
    """The order with its status brought up to date (§7.1.6 expiry, approval outcome)."""
    async with ctx.work() as uow:
        order = await uow.acme.get_order(order_id)
        if order is None or order.account_id != account.id:
            raise not_found("order")
        now = ctx.server.now()
        current = order.status
        if current in (OrderStatus.PENDING, OrderStatus.READY):  # the others are final here
            authzs = await uow.acme.authorizations_of(order_id, challenges=False)
            statuses = [rules.authorization_status(a, now) for a in authzs]
            current = rules.order_status(order, statuses, now)
        if current is not order.status:
            await uow.acme.set_order(order.id, status=current, expected=[order.status])
            order = replace(order, status=current)
    if order.status is OrderStatus.PROCESSING and order.request_id is not None:
        order = await _poll_approval(ctx, order)
    return order


async def _poll_approval(ctx: Ctx, order: Order) -> Order:
    """A Pending enrollment keeps the order `processing` (§7.1.6) until the request is
    decided; approval issues the certificate, which makes the order `valid`."""
    assert order.request_id is not None
    await ctx.commit()  # the enrollment core's transactions are its own
    outcome = await ctx.deps.pending.outcome(order.request_id)
    status, error = rules.order_after_approval(outcome)
    if status is OrderStatus.PROCESSING:
        return order
    certificate_id = outcome.certificate_id if status is OrderStatus.VALID else None
    current: Order | None = None
    async with ctx.work() as uow:
        moved = await uow.acme.set_order(
            order.id,
            status=status,
            expected=[OrderStatus.PROCESSING],
            error=error,
            certificate_id=certificate_id,
        )
        if not moved:  # another poll (maybe in another process) got there first
            current = await uow.acme.get_order(order.id)
    if not moved and current is not None:
        return current
    return replace(order, status=status, error=error, certificate_id=certificate_id)


def _order_response(ctx: Ctx, order: Order, status: int = 200) -> web.Response:
    if order.status is OrderStatus.PROCESSING:
        ctx.headers.setdefault("Retry-After", RETRY_AFTER)  # §7.4
    location = ctx.url("order", order_id=str(order.id))
    return json_response(ctx, order_json(ctx, order), status=status, location=location)


async def get_order(ctx: Ctx) -> web.Response:
    verified = await verify_post(ctx)
    assert verified.account is not None
    if not verified.jws.post_as_get:
        raise Problem("malformed", "an order is fetched with POST-as-GET (§6.3)")
    order = await load_order(ctx, verified.account, ctx.resource_id("order_id"))
    return _order_response(ctx, order)


async def list_orders(ctx: Ctx) -> web.Response:
    verified = await verify_post(ctx)
    assert verified.account is not None
    if ctx.resource_id("account_id") != verified.account.id:
        raise Problem("unauthorized", "the kid does not own this account")
    orders = await ctx.uow.acme.list_orders(verified.account.id, ORDERS_LISTED)
    urls = [ctx.url("order", order_id=str(o.id)) for o in orders]
    return json_response(ctx, {"orders": urls})


async def finalize(ctx: Ctx) -> web.Response:
    verified = await verify_post(ctx)
    account = verified.account
    assert account is not None
    payload = decode(Finalize, verified.jws.payload())
    order = await load_order(ctx, account, ctx.resource_id("order_id"))
    if order.status is not OrderStatus.READY:
        raise Problem("orderNotReady", f"order is {order.status.value}, not ready")
    try:
        csr = parse_csr(rules.b64url_decode(payload.csr))
    except ValueError:
        raise Problem("badCSR", "csr is not base64url DER") from None
    except BadCSR as err:
        raise Problem("badCSR", err.message) from None
    mismatch = rules.csr_mismatch(csr, order.identifiers)
    if mismatch:
        raise Problem("badCSR", f"CSR does not match the order: {mismatch}")
    async with ctx.work() as uow:
        claimed = await uow.acme.set_order(
            order.id, status=OrderStatus.PROCESSING, expected=[OrderStatus.READY]
        )
    if not claimed:  # another request finalized it first
        raise Problem("orderNotReady", "order is already being finalized")
    # The claim is committed before issuance, which runs in transactions of its own.
    await ctx.commit()
    mark_valid = _MarkValid(order.id)
    try:
        outcome = await ctx.deps.enrollment.enroll(
            EnrollmentRequest(
                profile=ctx.target.profile,
                application=ctx.target.application,
                csr=csr,
                requester=f"acme:{account.id}",
                method=EnrollmentMethod.ACME,
                source_ip=ctx.request.remote,
                renewed_from=await ari.replaced_certificate_id(ctx, order.replaces),
            ),
            also=mark_valid,
        )
    except PolicyDenied as err:
        problem = _policy_problem(err)
        await _fail(ctx, order, StoredProblem(problem.type, problem.detail))
        raise problem from None
    except (BadCSR, SelfSignedNeedsKey) as err:
        # §7.4: "badCSR" when the CSR is unacceptable; on a self-signed profile every CSR
        # is, since its key is the client's and the certificate must be signed by it.
        await _fail(ctx, order, StoredProblem("badCSR", err.message))
        raise Problem("badCSR", err.message) from None
    except (CAUnavailable, MethodNotEnabled) as err:  # CAExternal (ca_external) among them
        await _fail(ctx, order, StoredProblem("serverInternal", err.message))
        raise Problem("serverInternal", err.message, 500) from None
    except DomainError as err:  # e.g. Conflict from the approval engine: say it once, alike
        await _fail(ctx, order, StoredProblem("malformed", err.message))
        raise Problem("malformed", err.message) from None
    except BaseException:
        await _fail(ctx, order, StoredProblem("serverInternal", "issuance failed"))
        raise
    if isinstance(outcome, Issued):
        certificate_id = outcome.certificate.id
        if mark_valid.certificate_id != certificate_id:
            # An identical request approved earlier was finished instead (the enrollment
            # core's Resume), so mark_valid did not run.
            async with ctx.work() as uow:
                await uow.acme.set_order(
                    order.id,
                    status=OrderStatus.VALID,
                    expected=[OrderStatus.PROCESSING],
                    certificate_id=certificate_id,
                )
        order = replace(order, status=OrderStatus.VALID, certificate_id=certificate_id)
    else:
        async with ctx.work() as uow:
            await uow.acme.set_order(
                order.id,
                status=OrderStatus.PROCESSING,
                expected=[OrderStatus.PROCESSING],
                request_id=outcome.request_id,
            )
            order = replace(order, status=OrderStatus.PROCESSING, request_id=outcome.request_id)
            ctx.headers["Retry-After"] = str(max(1, outcome.retry_after))
    return _order_response(ctx, order)


async def _fail(ctx: Ctx, order: Order, error: StoredProblem) -> None:
    async with ctx.work() as uow:
        await uow.acme.set_order(
            order.id, status=OrderStatus.INVALID, expected=[OrderStatus.PROCESSING], error=error
        )


def _policy_problem(err: PolicyDenied) -> Problem:
    """§6.7.1: one rejectedIdentifier subproblem per identifier the policy refused."""
    subproblems = []
    for violation in err.violations:
        if violation.identifier is None:
            continue
        identifier = rules.identifier_for(violation.identifier)
        subproblems.append(Subproblem("rejectedIdentifier", violation.message, identifier))
    return Problem("rejectedIdentifier", err.message, subproblems=subproblems)


async def certificate(ctx: Ctx) -> web.Response:
    """§7.4.2: the chain as application/pem-certificate-chain, leaf first."""
    verified = await verify_post(ctx)
    assert verified.account is not None
    if not verified.jws.post_as_get:
        raise Problem("malformed", "a certificate is fetched with POST-as-GET (§6.3)")
    cert_id = ctx.resource_id("cert_id")
    order = await ctx.uow.acme.find_order_by_certificate(cert_id)
    cert = await ctx.uow.certificates.get(cert_id) if order is not None else None
    if order is None or order.account_id != verified.account.id or cert is None:
        raise not_found("certificate")
    # §7.4.2 allows `Link: rel="alternate"` for other chains from the same leaf to other
    # trust anchors. A CA here has exactly one chain (its own certificate up to its root),
    # so there is no alternate to offer: the same path without the root certificate would
    # end at the same trust anchor. rel="up" names the issuer certificate (as in the AIA
    # caIssuers URL, RFC 5280 §4.2.2.1), which clients use to rebuild the chain.
    # A self-signed certificate (no CA) has no issuer to point at: it is its own.
    issuer = ctx.app_url("pki.ca_cert", ca_id=str(cert.ca_id)) if cert.ca_id else None
    if issuer is not None:
        ctx.headers["Link"] = f'<{issuer}>;rel="up"'
    body = cert.certificate_pem + cert.chain_pem
    return web.Response(
        body=body.encode(), content_type="application/pem-certificate-chain", charset=None
    )


class _MarkValid:
    """RFC 8555 §7.4: the order turns valid in the transaction that stores its
    certificate (gateway.core.ports.InTransaction), so no process ever sees one without the
    other."""

    def __init__(self, order_id: uuid.UUID) -> None:
        self._order_id = order_id
        self.certificate_id: uuid.UUID | None = None

    async def certificate_stored(self, uow: AcmeUnitOfWork, certificate: Certificate) -> None:
        moved = await uow.acme.set_order(
            self._order_id,
            status=OrderStatus.VALID,
            expected=[OrderStatus.PROCESSING],
            certificate_id=certificate.id,
        )
        if not moved:  # e.g. swept as stuck meanwhile: store no certificate for it
            raise Problem("orderNotReady", "the order changed while it was being finalized")
        self.certificate_id = certificate.id
