"""The AI Copilot's routes (Kestra's ``AI`` tag): the models, flow and flow-test generation, and
Roost's speech-to-text route for the UI's microphone.

Every route asks the one permission function for ``AI_COPILOT`` / ``CREATE`` (in the request's
namespace when it names one); a refused call answers 403 and is written to the audit log, and so is
every use (who, which model, which namespace, the outcome — never the prompt, the YAML or a key).
With no ``ai:`` section in the configuration the Copilot is off: ``providers`` lists nothing and
the other routes answer 404.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from roost.server import models
from roost.server.access import access_of
from roost.server.config import AiModel
from roost.server.copilot import MAX_PROMPT, MAX_YAML, CopilotError, generate, model_settings, yaml_field
from roost.server.errors import ApiError, bad_request, not_found
from roost.server.routes.common import state_of
from roost.server.routing import SegmentRoute
from roost.server.state import ServerState
from roost.server.ui.permissions import ANONYMOUS

router = APIRouter(tags=["AI"], responses=models.ERRORS, route_class=SegmentRoute)
P = "/api/v1/{tenant}/ai"
PERMISSION: Final = "AI_COPILOT"
ACTION: Final = "CREATE"
MAX_AUDIO = 25 * 1024 * 1024  # OpenAI's limit for one transcription upload
audit_log = logging.getLogger("roost.audit")
T = TypeVar("T")


class FlowGenerationPrompt(BaseModel):
    model_config = ConfigDict(extra="ignore")
    conversationId: str = Field(min_length=1, max_length=200)  # noqa: N815 - the API's names
    userPrompt: str = Field(min_length=1, max_length=MAX_PROMPT)  # noqa: N815
    yaml: str | None = Field(default=None, max_length=MAX_YAML)
    providerId: str | None = Field(default=None, max_length=100)  # noqa: N815
    namespace: str | None = Field(default=None, max_length=300)


class TestSuiteGenerationPrompt(BaseModel):
    model_config = ConfigDict(extra="ignore")
    conversationId: str = Field(min_length=1, max_length=200)  # noqa: N815
    userPrompt: str = Field(min_length=1, max_length=MAX_PROMPT)  # noqa: N815
    yaml: str | None = Field(default=None, max_length=MAX_YAML)
    providerId: str | None = Field(default=None, max_length=100)  # noqa: N815


class AiProviderResponse(BaseModel):
    id: str
    displayName: str  # noqa: N815
    isDefault: bool  # noqa: N815


class Transcription(BaseModel):
    text: str


class CopilotFailure(BaseModel):
    model_config = ConfigDict(extra="allow")
    message: str
    violations: list[dict[str, Any]] = []
    yaml: str | None = None


YAML_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/yaml": {"schema": {"type": "string"}}}, "description": "The generated YAML"},
    403: {"model": models.ErrorBody, "description": "The AI Copilot is not permitted for this user"},
    422: {"model": CopilotFailure, "description": "No valid result in the allowed attempts: the violations and the last draft"},
    429: {"model": models.ErrorBody, "description": "The model's provider is rate-limiting (Retry-After passed on)"},
    502: {"model": models.ErrorBody, "description": "The model's provider failed (refused key, unreachable, malformed answer)"},
    503: {"model": models.ErrorBody, "description": "The model is misconfigured (its API key reference cannot be resolved)"},
    504: {"model": models.ErrorBody, "description": "The model did not answer within its timeout"},
}  # fmt: skip


MODEL_THREADS = 4  # Copilot calls waiting on a model at once, per process; more wait their turn
_MODEL_POOL = ThreadPoolExecutor(MODEL_THREADS, thread_name_prefix="roost-copilot")


async def model_work(fn: Callable[[], T]) -> T:
    """Run ``fn`` (which waits on a model for seconds) on threads of its own: the API's store threads
    (``api_threads``) stay free for every other route however slow the models are. The request's
    context variables (who acts, for the audit log) go along."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(_MODEL_POOL, context.run, fn)


def principal_of(request: Request, st: ServerState) -> str | None:
    if not st.config.auth.enabled:
        return ANONYMOUS
    return getattr(request.state, "principal", None)


def audit(st: ServerState, request: Request, tenant: str, kind: str, detail: dict[str, Any]) -> None:
    """An audit entry for a Copilot call: the store's audit log when the server has one, else the
    ``roost.audit`` log. Never the prompt, the YAML or a key."""
    who = str(principal_of(request, st) or "anonymous")
    client = request.client.host if request.client else None
    detail = {"permission": PERMISSION, **detail}
    recorder = getattr(st, "audit", None)
    if recorder is not None:
        recorder.record(kind, "AI_COPILOT", tenant=tenant, detail=detail)
        return
    audit_log.info("audit %s AI_COPILOT tenant=%s user=%s ip=%s %s", kind, tenant, who, client,
                      " ".join(f"{k}={v}" for k, v in detail.items()))  # fmt: skip


def authorize(request: Request, st: ServerState, tenant: str, namespace: str | None, operation: str) -> None:
    """403 (audited) unless the principal may use the Copilot here."""
    who = principal_of(request, st)
    if access_of(request).can(PERMISSION, ACTION, namespace, tenant):
        return
    audit(st, request, tenant, "ACCESS_DENIED", {"operation": operation, "namespace": namespace})
    where = f"namespace {namespace}" if namespace else f"tenant {tenant}"
    raise ApiError(
        403, f"Permission denied: {who or 'anonymous'} may not use the AI Copilot ({PERMISSION}) in {where}"
    )


def _model(st: ServerState, provider_id: str | None) -> AiModel:
    config = st.config.ai
    if config is None:
        raise not_found(
            "the AI Copilot is not configured on this server (no ai.providers in its configuration)"
        )
    model = config.provider(provider_id)
    if model is None:
        raise bad_request(
            f"providerId: no AI model {provider_id!r} here (models: {', '.join(p.id for p in config.providers)})"
        )
    return model


def _failure(exc: CopilotError) -> JSONResponse:
    body: dict[str, Any] = {"message": exc.message}
    if exc.status == 422:
        body["violations"] = exc.violations
        body["yaml"] = exc.draft
    return JSONResponse(body, status_code=exc.status, headers=exc.headers or None)


async def _generate(request: Request, tenant: str, body: Any, namespace: str | None, kind: str) -> Response:
    from roost.server.copilot import Request as CopilotRequest

    st = state_of(request)
    tenant = st.tenant(tenant)
    operation = "generateFlow" if kind == "flow" else "generateTestSuite"
    authorize(request, st, tenant, namespace, operation)
    model = _model(st, body.providerId)
    req = CopilotRequest(body.userPrompt, body.yaml, namespace, body.conversationId,
                         str(principal_of(request, st) or "anonymous"))  # fmt: skip
    try:
        text = await model_work(functools.partial(generate, st, tenant, model, req, kind=kind))
    except CopilotError as exc:
        audit(st, request, tenant, "EXECUTE", {"operation": operation, "namespace": namespace, "provider": model.id,
                                               "outcome": f"HTTP {exc.status}"})  # fmt: skip
        return _failure(exc)
    audit(st, request, tenant, "EXECUTE", {"operation": operation, "namespace": namespace, "provider": model.id,
                                           "outcome": "generated"})  # fmt: skip
    return Response(text, media_type="application/yaml")


@router.get(P + "/providers", operation_id="providers", summary="List available AI providers",
            responses={200: {"model": list[AiProviderResponse]}, 403: {"model": models.ErrorBody}})  # fmt: skip
def providers(request: Request, tenant: str) -> JSONResponse:
    """The configured models (the default one marked); empty when the Copilot is off."""
    st = state_of(request)
    tenant = st.tenant(tenant)
    config = st.config.ai
    if config is None:
        return JSONResponse([])
    authorize(request, st, tenant, None, "providers")
    default = config.provider(None)
    return JSONResponse([{"id": p.id, "displayName": p.display_name, "isDefault": p is default}
                         for p in config.providers])  # fmt: skip


@router.post(P + "/generate/flow", operation_id="generateFlow", summary="Generate or regenerate a flow based on a prompt",
             response_class=Response, responses=YAML_ANSWER)  # fmt: skip
async def generate_flow(request: Request, tenant: str, body: FlowGenerationPrompt) -> Response:
    """A flow for ``userPrompt`` (changing ``yaml`` when given) that validates against the installed
    types and the namespace's plugin defaults; 422 with the violations when the model could not
    produce one in ``ai.maxAttempts`` attempts."""
    namespace = body.namespace or None
    if namespace is None and body.yaml:
        namespace = yaml_field(body.yaml, "namespace")
    return await _generate(request, tenant, body, namespace, "flow")


@router.post(P + "/generate/test", operation_id="generateTestSuite",
             summary="Generate or regenerate a test suite based on a prompt", response_class=Response,
             responses=YAML_ANSWER)  # fmt: skip
async def generate_test(request: Request, tenant: str, body: TestSuiteGenerationPrompt) -> Response:
    """A flow test suite (``id, namespace, flowId, testCases``) for the flow in ``yaml``, checked for
    its structure and for task ids the flow has."""
    if not (body.yaml or "").strip():
        raise bad_request("yaml: the flow under test is required")
    return await _generate(request, tenant, body, yaml_field(body.yaml or "", "namespace"), "test")


@router.post(P + "/transcribe", operation_id="transcribePrompt", summary="Transcribe a dictated prompt (speech to text)",
             responses={200: {"model": Transcription}, 403: {"model": models.ErrorBody}, 413: {"model": models.ErrorBody},
                        429: {"model": models.ErrorBody}, 502: {"model": models.ErrorBody}, 504: {"model": models.ErrorBody}},
             openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                 "type": "object", "required": ["file"], "properties": {
                     "file": {"type": "string", "format": "binary"}, "language": {"type": "string"}}}}}}})  # fmt: skip
async def transcribe(request: Request, tenant: str) -> JSONResponse:
    """The text of a recorded prompt, through the OpenAI-compatible ``/audio/transcriptions`` endpoint
    of ``ai.transcription`` (for browsers without a speech-recognition API)."""
    st = state_of(request)
    tenant = st.tenant(tenant)
    authorize(request, st, tenant, None, "transcribe")
    config = st.config.ai
    if config is None or config.transcription is None:
        raise not_found("speech to text is not configured on this server (no ai.transcription)")
    if int(request.headers.get("content-length") or 0) > MAX_AUDIO + 65536:
        raise ApiError(413, f"the recording is larger than {MAX_AUDIO // (1024 * 1024)} MiB")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("expected multipart/form-data with a file part")
    form = await request.form(max_files=1, max_fields=4)
    upload = form.get("file")
    if upload is None or not hasattr(upload, "read"):
        raise bad_request("file: the recording is required")
    audio = await upload.read(MAX_AUDIO + 1)
    if len(audio) > MAX_AUDIO:
        raise ApiError(413, f"the recording is larger than {MAX_AUDIO // (1024 * 1024)} MiB")
    if not audio:
        raise bad_request("file: the recording is empty")
    language = form.get("language")
    language = language if isinstance(language, str) and language.strip() else None
    if language is not None and (len(language) > 16 or not language.replace("-", "").isalpha()):
        raise bad_request("language: expected an ISO-639 code such as en or fr")
    filename = str(getattr(upload, "filename", None) or "prompt.webm")[:100]
    ctype = str(getattr(upload, "content_type", None) or "application/octet-stream")[:100]
    speech = config.transcription

    def run() -> str:
        from roost.llm import ChatClient
        from roost.rest import ApiError as RestError
        from roost.rest import HttpRetry

        settings = model_settings(speech, st.engine.runtime(tenant).secrets)
        with ChatClient(settings, retry=HttpRetry(max_retries=0)) as client:
            try:
                return client.transcribe(audio, filename, ctype, language)
            except RestError as exc:
                message = client.scrub(str(exc))
                if exc.timed_out:
                    raise CopilotError(
                        504, f"the transcription model did not answer within {settings.timeout:g} s"
                    ) from None
                if exc.status == 429:
                    headers = (
                        {"Retry-After": str(int(exc.retry_after))} if exc.retry_after is not None else {}
                    )
                    raise CopilotError(
                        429, f"the transcription model is rate-limited: {message}", headers=headers
                    ) from None
                raise CopilotError(502, f"the transcription model failed: {message}") from None

    try:
        text = await model_work(run)
    except CopilotError as exc:
        audit(st, request, tenant, "EXECUTE", {"operation": "transcribe", "outcome": f"HTTP {exc.status}"})
        return _failure(exc)
    audit(st, request, tenant, "EXECUTE", {"operation": "transcribe", "outcome": "transcribed"})
    return JSONResponse({"text": text})
