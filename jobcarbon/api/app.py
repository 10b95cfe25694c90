"""The credit API: a thin FastAPI shell over ``jobcarbon.credit`` (pure core) and a
``CreditStore`` (warehouse). Built by ``create_app(ApiConfig)``: no work and no global state at
import time. Every rejected request is logged with its reason."""

# No "from __future__ import annotations": FastAPI resolves the handlers' Depends(...) on
# closures at definition time.

import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Protocol

import msgspec
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobcarbon.api import models as m
from jobcarbon.api import wire
from jobcarbon.api.auth import AuthError, Identity, check_bearer
from jobcarbon.credit.check import CheckResult, run_check
from jobcarbon.credit.greener import ForecastPoint
from jobcarbon.credit.policy import Policy, PolicyError, budget_kg, parse_policy, period_bounds
from jobcarbon.credit.policy import previous_period_start as prev_start
from jobcarbon.credit.predict import HISTORY_LIMIT, JobRequest
from jobcarbon.credit.store import CreditStore, UsageQuery

log = logging.getLogger("jobcarbon.api")
#: A /v1/check (or reservation) body: pydantic's model, or the fast path's struct.
CheckBody = m.CheckRequest | wire.CheckRequest
#: Where an answer given later goes: (HTTP status, JSON body).
Reply = Callable[[int, bytes], None]


class Verifier(Protocol):
    def verify(self, credential: str) -> Identity: ...


class PolicyHolder:
    """The current policy and its TOML text; an admin update replaces the file atomically."""

    def __init__(self, text: str = "", path: str | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.text = text
        self.policy = parse_policy(text)

    @classmethod
    def from_file(cls, path: str | None) -> "PolicyHolder":
        """Load ``path`` (None: an empty policy, the check only informs)."""
        return cls(Path(path).read_text(), path) if path else cls()

    def replace(self, text: str) -> Policy:
        """Validate, write (atomically, when file-backed) and swap in a new policy."""
        policy = parse_policy(text)
        with self._lock:
            if self.path:
                directory = os.path.dirname(os.path.abspath(self.path))
                fd, tmp = tempfile.mkstemp(dir=directory, prefix=".policy-")
                with os.fdopen(fd, "w") as fh:
                    fh.write(text)
                os.replace(tmp, self.path)
            self.text, self.policy = text, policy
        return policy


@dataclass
class ApiConfig:
    """Everything the API needs, passed in explicitly."""

    store: CreditStore
    policy: PolicyHolder
    verifier: Verifier
    resolve_uid: Callable[[str], int | None]
    admin_token: str | None = None
    pue_for: Callable[[str], float] = lambda cluster: 1.0
    forecast: Callable[[datetime], Sequence[ForecastPoint]] = lambda now: ()
    forecast_source: str = "forecast"
    fallback_intensity_g_per_kwh: float = 475.0
    fallback_source: str = "default"
    default_cluster: str = "cluster"
    stale_after: timedelta = timedelta(days=7)
    max_request_bytes: int = 16_384
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


class BodyLimit:
    """Reject bodies above ``limit`` bytes (by Content-Length, or while streaming) with 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await self._reject(scope, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._reject(scope, send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        reason = f"request body larger than {self.limit} bytes"
        log.warning("rejected %s %s: 413 %s", scope.get("method"), scope.get("path"), reason)
        response = JSONResponse({"detail": reason}, status_code=413)
        await response({"type": "http"}, _empty_receive, send)


class _TooLarge(Exception):
    pass


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def create_app(config: ApiConfig) -> "CreditApi":
    """The credit API over ``config``."""
    app = CreditApi(
        title="jobcarbon credit API",
        version="1",
        description="Submission-time carbon credit check (docs/credit.md). Users authenticate "
        "with a MUNGE credential in X-Munge-Credential, admins with a bearer token.",
    )
    app.add_middleware(BodyLimit, limit=config.max_request_bytes)
    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": m.ErrorOut} for code in (400, 401, 403, 404, 413, 503)
    }

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, exc: AuthError) -> JSONResponse:
        log.warning("rejected %s %s: %d %s", request.method, request.url.path, exc.status, exc)
        return JSONResponse({"detail": exc.reason}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "error": e.get("msg", "")}
            for e in exc.errors()
        ]
        log.warning("rejected %s %s: 422 %s", request.method, request.url.path, details)
        return JSONResponse({"detail": details}, status_code=422)

    def admin(authorization: Annotated[str | None, Header()] = None) -> None:
        check_bearer(authorization, config.admin_token)

    def caller(
        x_munge_credential: Annotated[str | None, Header()] = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Identity | None:
        """A MUNGE-verified user, or None for an admin (bearer token)."""
        if x_munge_credential is None:
            if authorization is not None:
                check_bearer(authorization, config.admin_token)
                return None
            raise AuthError(401, "missing X-Munge-Credential header")
        return config.verifier.verify(x_munge_credential)

    def authorize(identity: Identity | None, user: str, account: str | None) -> None:
        if identity is None:
            return  # admin
        uid = config.resolve_uid(user)
        if uid is None:
            raise AuthError(403, f"unknown user {user!r}")
        if uid != identity.uid:
            raise AuthError(403, f"credential is for uid {identity.uid}, not for user {user!r}")
        if account is not None:
            policy = config.policy.policy
            if (account, user) not in policy.users and not config.store.uses_account(user, account):
                raise AuthError(403, f"account {account!r} is not one of {user!r}'s accounts")

    def check(body: CheckBody, now: datetime) -> CheckResult:
        policy = config.policy.policy
        request = JobRequest(
            user=body.user,
            account=body.account,
            partition=body.partition,
            nodes=body.nodes,
            cpus=body.cpus,
            gpus=body.gpus,
            time_limit_s=body.time_limit_s,
            job_name=body.job_name,
        )
        allocation = policy.allocation(body.account, body.user)
        period = allocation.period if allocation else "month"
        start, _ = period_bounds(period, now)
        query = UsageQuery(
            user=body.user,
            account=body.account,
            now=now,
            past_from=now - timedelta(days=policy.past_window_days),
            period_start=start,
            previous_period_start=(
                prev_start(period, now) if allocation and allocation.carry_over else None
            ),
            scope_user=(body.account, body.user) in policy.users,
            open_since=now - config.stale_after,
        )
        usage = config.store.usage(query)
        prediction = config.store.predict(request, HISTORY_LIMIT)
        cluster = body.cluster or config.default_cluster
        return run_check(
            request,
            usage,
            prediction,
            policy,
            now=now,
            pue=config.pue_for(cluster),
            fallback_intensity_g_per_kwh=config.fallback_intensity_g_per_kwh,
            fallback_source=config.fallback_source,
            forecast=config.forecast(now),
            forecast_source=config.forecast_source,
            max_delay_s=body.max_delay_s,
        )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Liveness for orchestrators (no authentication, no data)."""
        return {"status": "ok"}

    def check_response(body: CheckBody, identity: Identity | None) -> bytes:
        """The answer of ``POST /v1/check`` (both the FastAPI route and the fast front):
        ``models.CheckResponse`` as JSON (jobcarbon.api.wire)."""
        authorize(identity, body.user, body.account)
        now = config.clock()
        r = check(body, now)
        policy = config.policy.policy
        eq = {e.name: e for e in policy.equivalences}
        p, g = r.prediction, r.greener
        return wire.encode_check(
            wire.CheckResponse(
                user=body.user,
                account=body.account,
                checked_at=now,
                past_window_days=float(policy.past_window_days),
                past_co2e_g=float(r.past_co2e_g),
                running_co2e_g=float(r.running_co2e_g),
                predicted_co2e_g=float(r.predicted_co2e_g),
                predicted_co2e_low_g=float(r.predicted_co2e_low_g),
                predicted_co2e_high_g=float(r.predicted_co2e_high_g),
                total_co2e_g=float(r.total_co2e_g),
                average_rate_g_per_kwh=_float(r.average_rate_g_per_kwh),
                budget_kg=_float(r.budget_kg),
                used_kg=_float(r.used_kg),
                available_credit_kg=_float(r.available_kg),
                intensity_g_per_kwh=float(r.intensity_g_per_kwh),
                intensity_source=r.intensity_source,
                pue=float(r.pue),
                prediction=wire.Prediction(
                    float(p.energy_it_j),
                    float(p.energy_low_j),
                    float(p.energy_high_j),
                    float(p.runtime_s),
                    p.level,
                    p.samples,
                ),
                equivalents={
                    name: wire.Equivalent(
                        float(value), eq[name].unit, eq[name].label, eq[name].source
                    )
                    for name, value in r.equivalents.items()
                },
                decision=r.decision,
                message=r.message,
                suggested_begin=g.sbatch_begin if g else None,
                greener=(
                    wire.Greener(
                        g.begin_at,
                        g.sbatch_begin,
                        float(g.co2e_g),
                        float(g.co2e_saved_g),
                        float(g.intensity_g_per_kwh),
                    )
                    if g
                    else None
                ),
            )
        )

    @app.post("/v1/check", response_model=m.CheckResponse, responses=errors)
    def post_check(
        body: m.CheckRequest, identity: Annotated[Identity | None, Depends(caller)]
    ) -> Response:
        """Past, running, predicted and total emissions, credit left, and a decision."""
        return Response(check_response(body, identity), media_type="application/json")

    def fast_check(
        credential: str | None,
        authorization: str | None,
        raw: bytes,
        decoded: wire.CheckRequest | None = None,
    ) -> tuple[int, bytes]:
        """``POST /v1/check`` without FastAPI's per-request machinery (dependency solving,
        thread hops, response re-validation): the same steps in the same order (JSON, then
        the caller, then the body's fields) and the same answers, statuses and log lines.
        A plainly valid body is decoded and validated in one step (``wire.decode_check``);
        anything else takes the steps one by one (``decoded``: the body, if the caller has
        already decoded it so)."""
        body: CheckBody | None = decoded or wire.decode_check(raw)
        try:
            if body is None:
                try:
                    data = _decode(raw)
                except ValueError as exc:
                    return _invalid([{"field": "body", "error": f"JSON decode error ({exc})"}])
                identity = caller(credential, authorization)
                body = m.CheckRequest.model_validate(data)
            else:
                identity = caller(credential, authorization)
            return 200, check_response(body, identity)
        except AuthError as exc:
            return _rejected(exc)
        except ValidationError as exc:
            return _invalid(
                [{"field": ".".join(str(p) for p in ("body", *e["loc"])), "error": e["msg"]}
                 for e in exc.errors()]
            )  # fmt: skip

    verify_async = getattr(config.verifier, "verify_async", None)

    def begin_check(
        credential: str | None, authorization: str | None, raw: bytes, done: Reply
    ) -> tuple[int, bytes] | None:
        """``fast_check`` for a caller on the event loop that can wait: a plainly valid body
        with a MUNGE credential is answered through ``done`` once munged has decoded the
        credential without blocking the loop (None returned); everything else, right away,
        by ``fast_check`` (the same steps: the body, the caller, the check)."""
        body = wire.decode_check(raw)
        if body is None or credential is None or verify_async is None:
            return fast_check(credential, authorization, raw, body)

        def decoded(identity: Identity | AuthError) -> None:
            try:
                if isinstance(identity, AuthError):
                    raise identity
                answer = 200, check_response(body, identity)
            except AuthError as exc:
                answer = _rejected(exc)
            except Exception:
                log.exception("Exception in POST /v1/check")
                answer = 500, b"Internal Server Error"
            done(*answer)

        try:
            verify_async(credential, decoded)
        except AuthError as exc:
            return _rejected(exc)
        return None

    # Ahead of FastAPI's own entry and middleware stack (CreditApi.__call__).
    app.front = FastCheck(
        app.call_fastapi, handle=fast_check, begin=begin_check, limit=config.max_request_bytes
    )

    @app.post(
        "/v1/reservations",
        response_model=m.ReservationResponse,
        status_code=201,
        responses=errors,
    )
    def post_reservation(
        body: m.ReservationRequest, identity: Annotated[Identity | None, Depends(caller)]
    ) -> m.ReservationResponse:
        """Reserve a submitted job's predicted CO2e (recomputed here, never taken from the
        client). Idempotent per cluster and job id."""
        authorize(identity, body.user, body.account)
        now = config.clock()
        r = check(body, now)
        entry_id, created = config.store.reserve(
            user=body.user,
            account=body.account,
            cluster=body.cluster or config.default_cluster,
            job_id=body.job_id,
            co2e_g=r.predicted_co2e_g,
            now=now,
            actor=body.user if identity else "admin",
        )
        return m.ReservationResponse(id=entry_id, created=created, co2e_g=r.predicted_co2e_g)

    @app.get("/v1/ledger", response_model=list[m.LedgerEntryOut], responses=errors)
    def my_ledger(
        user: Annotated[str, Query(min_length=1, max_length=64, pattern=m.NAME_PATTERN)],
        identity: Annotated[Identity | None, Depends(caller)],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[m.LedgerEntryOut]:
        """A user's own ledger entries (reservations, settlements, releases)."""
        authorize(identity, user, None)
        return [_entry(e) for e in config.store.ledger(account=None, user=user, limit=limit)]

    @app.get("/v1/admin/policy", response_model=m.PolicyOut, responses=errors)
    def get_policy(_: Annotated[None, Depends(admin)]) -> m.PolicyOut:
        """The current policy file and what it defines."""
        return _policy_out(config.policy)

    @app.put("/v1/admin/policy", response_model=m.PolicyOut, responses=errors)
    def put_policy(body: m.PolicyIn, _: Annotated[None, Depends(admin)]) -> m.PolicyOut:
        """Replace the policy (validated first; errors name the key and the value)."""
        try:
            config.policy.replace(body.toml)
        except PolicyError as exc:
            raise AuthError(400, str(exc)) from None  # same handler: logged, clear message
        log.info("policy replaced by admin")
        return _policy_out(config.policy)

    @app.get("/v1/admin/ledger", response_model=list[m.LedgerEntryOut], responses=errors)
    def get_ledger(
        _: Annotated[None, Depends(admin)],
        account: Annotated[str | None, Query(max_length=64, pattern=m.NAME_PATTERN)] = None,
        user: Annotated[str | None, Query(max_length=64, pattern=m.NAME_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> list[m.LedgerEntryOut]:
        """Ledger entries, most recent first."""
        return [_entry(e) for e in config.store.ledger(account=account, user=user, limit=limit)]

    @app.post(
        "/v1/admin/ledger/adjustments",
        response_model=m.IdOut,
        status_code=201,
        responses=errors,
    )
    def post_adjustment(body: m.AdjustmentIn, _: Annotated[None, Depends(admin)]) -> m.IdOut:
        """Append a correction (positive charges, negative credits)."""
        entry = config.store.adjust(
            account=body.account,
            user=body.user,
            amount_g=body.amount_g,
            note=body.note,
            now=config.clock(),
            actor="admin",
        )
        return m.IdOut(id=entry)

    @app.post("/v1/admin/ledger/sweep", response_model=m.SweepOut, responses=errors)
    def post_sweep(_: Annotated[None, Depends(admin)]) -> m.SweepOut:
        """Settle reservations of jobs now in the warehouse; release stale ones."""
        now = config.clock()
        settled, released = config.store.sweep(
            now=now, stale_before=now - config.stale_after, actor="sweep"
        )
        return m.SweepOut(settled=settled, released=released)

    @app.get("/v1/admin/deny-list", response_class=PlainTextResponse, responses=errors)
    def get_deny_list(_: Annotated[None, Depends(admin)]) -> str:
        """Accounts (``account``) and users in accounts (``account/user``) in mode deny that
        are at or above their limit: the cache job_submit.lua reads."""
        return deny_list(config, config.clock())

    return app


_msgspec_decode = msgspec.json.Decoder().decode


def _decode(raw: bytes) -> Any:
    """``json.loads(raw)``: msgspec's decoder first (a few times faster); whatever it
    refuses (NaN, integers beyond 64 bits, bad JSON) goes to ``json.loads``, so the values
    accepted and the error messages are json's."""
    try:
        return _msgspec_decode(raw)
    except msgspec.DecodeError:
        return json.loads(raw)


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _rejected(exc: AuthError) -> tuple[int, bytes]:
    log.warning("rejected POST /v1/check: %d %s", exc.status, exc)
    return exc.status, _json({"detail": exc.reason})


def _invalid(details: list[dict[str, str]]) -> tuple[int, bytes]:
    log.warning("rejected POST /v1/check: 422 %s", details)
    return 422, _json({"detail": details})


class CreditApi(FastAPI):
    """The FastAPI app, entered through ``front`` (a ``FastCheck``) when one is set:
    ``POST /v1/check`` then skips FastAPI's and Starlette's per-request entry (middleware
    stack, telemetry hooks: about 40 us of CPU per check, bench.credit); unexpected errors
    there become the ASGI server's 500, as Starlette's handler would answer."""

    front: "FastCheck | None" = None

    async def call_fastapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is not None:
            await self.front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


class FastCheck:
    """Middleware: ``POST /v1/check`` goes to ``handle`` (inline on the event loop: every
    step is in-process or a short local call to munged), with the body limit of
    ``BodyLimit``; every other request goes on to the FastAPI app. ``begin`` is the same
    answer for jobcarbon.api.http_check, which can wait for munged without blocking."""

    def __init__(
        self,
        app: ASGIApp,
        handle: Callable[[str | None, str | None, bytes], tuple[int, bytes]],
        limit: int,
        begin: Callable[[str | None, str | None, bytes, Reply], tuple[int, bytes] | None]
        | None = None,
    ) -> None:
        self.app, self.handle, self.limit = app, handle, limit
        self.begin = begin or (lambda credential, authorization, raw, done: handle(
            credential, authorization, raw))  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/check" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        credential = authorization = None
        for name, value in scope["headers"]:
            if name == b"x-munge-credential" and credential is None:
                credential = value.decode("latin-1")
            elif name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await self._reply(send, *self.too_large())
                return
        chunks, seen, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await self._reply(send, *self.too_large())
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        await self._reply(send, *self.handle(credential, authorization, b"".join(chunks)))

    def too_large(self) -> tuple[int, bytes]:
        reason = f"request body larger than {self.limit} bytes"
        log.warning("rejected POST /v1/check: 413 %s", reason)
        return 413, _json({"detail": reason})

    @staticmethod
    async def _reply(send: Send, status: int, body: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def deny_list(config: ApiConfig, now: datetime) -> str:
    """The text of the controller-side deny cache (one scope per line)."""
    policy = config.policy.policy
    scopes: list[tuple[str, str | None]] = [(a, None) for a in policy.accounts]
    scopes += list(policy.users)
    lines = [f"# jobcarbon deny list, generated {now.isoformat()}"]
    for account, user in scopes:
        allocation = policy.allocation(account, user)
        if allocation is None or allocation.mode != "deny":
            continue
        start, _ = period_bounds(allocation.period, now)
        usage = config.store.usage(
            UsageQuery(
                user=user or "",
                account=account,
                now=now,
                past_from=now,
                period_start=start,
                previous_period_start=(
                    prev_start(allocation.period, now) if allocation.carry_over else None
                ),
                scope_user=user is not None,
                open_since=now - config.stale_after,
            )
        )
        prev = usage.previous_period_used_g
        budget = budget_kg(allocation, None if prev is None else prev / 1000)
        if usage.period_used_g / 1000 >= allocation.deny_at * budget:
            lines.append(account if user is None else f"{account}/{user}")
    return "\n".join(lines) + "\n"


def _policy_out(holder: PolicyHolder) -> m.PolicyOut:
    return m.PolicyOut(
        toml=holder.text,
        accounts=sorted(holder.policy.accounts),
        past_window_days=holder.policy.past_window_days,
        max_delay_hours=holder.policy.max_delay_hours,
    )


def _entry(e: Any) -> m.LedgerEntryOut:
    return m.LedgerEntryOut(
        id=e.id,
        entry_type=e.entry_type,
        account=e.account,
        user=e.user,
        cluster=e.cluster,
        job_id=e.job_id,
        reservation_id=e.reservation_id,
        amount_g=e.amount_g,
        created_at=e.created_at,
        actor=e.actor,
        note=e.note,
    )
