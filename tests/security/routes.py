"""The app's route inventory for the security matrix, and how each route is called.

Every route of the app is either public (``PUBLIC``: no bearer token, with the
answer it must give without one) or organization-scoped: then each of its path
parameters maps to a resource of a ``World`` (``PARAM_RESOURCES``), a body it
takes has a valid example (``CALLS``), and a route that is not a plain read
names the permission it needs (``PERMISSIONS``), which the test compares with
the ``Authorizer`` dependency the route declares. A new route that fits none of
these makes the suite fail with its name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts

from ocore.core.auth import Authorizer, Permission, authenticate
from tests.security.world import World

_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


@dataclass(frozen=True)
class Route:
    method: str  # "WEBSOCKET" for a websocket route
    path: str
    dependant: Dependant | None

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def params(self) -> list[str]:
        return _PARAM.findall(self.path)

    @property
    def is_read(self) -> bool:
        return self.method == "GET"


def app_routes(app: FastAPI) -> list[Route]:
    """Every (method, path) the app answers, through included routers, one entry per method."""
    routes: list[Route] = []
    for context in iter_route_contexts(app.routes):
        original = context.original_route
        path = context.path
        assert path is not None, original
        if isinstance(original, APIWebSocketRoute):
            routes.append(Route("WEBSOCKET", path, context.dependant))
            continue
        dependant = context.dependant if isinstance(original, APIRoute) else None
        methods = set(context.methods or ())
        if "GET" in methods:
            methods.discard("HEAD")  # Starlette's implicit HEAD of a GET route
        routes.extend(Route(method, path, dependant) for method in sorted(methods))
    return routes


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for child in dependant.dependencies:
        yield from _walk(child)


def declared_permissions(route: Route) -> frozenset[Permission]:
    """The permissions the route's ``Authorizer`` dependencies demand (none for plain members)."""
    assert route.dependant is not None, route.key
    return frozenset(
        d.call.permission for d in _walk(route.dependant) if isinstance(d.call, Authorizer)
    )


def authenticates(route: Route) -> bool:
    return route.dependant is not None and any(
        d.call is authenticate for d in _walk(route.dependant)
    )


def has_body(route: Route) -> bool:
    return route.dependant is not None and bool(route.dependant.body_params)


def required_query(route: Route) -> list[str]:
    if route.dependant is None:
        return []
    return [q.alias for q in route.dependant.query_params if q.field_info.is_required()]


# --- Path parameters ---------------------------------------------------------------------

# A parameter's name says which resource it is...
PARAM_RESOURCES = {
    "job_id": "job",
    "template_id": "template",
    "project_id": "project",
    "deployment_id": "deployment",
    "link_id": "share_link",
    "env_id": "environment",
    "item_id": "neutralization_item",
    "server_id": "server",
}
# ...except ``{id}``, which is the resource of the collection segment before it.
ID_COLLECTIONS = {"instances": "instance", "environments": "environment"}
# Not ids: the path below a proxied root (a route's own resource is in the other params).
LITERAL_PARAMS = {"path": "web/login"}


class UncoveredParam(LookupError):
    pass


def resource_of(path: str, param: str) -> str | None:
    """The ``World.ids`` key a path parameter takes; None for a literal; else UncoveredParam."""
    if param in LITERAL_PARAMS:
        return None
    if param in PARAM_RESOURCES:
        return PARAM_RESOURCES[param]
    if param == "id":
        segments = path.split("/")
        collection = segments[segments.index("{id}") - 1]
        if collection in ID_COLLECTIONS:
            return ID_COLLECTIONS[collection]
    raise UncoveredParam(f"{path}: no resource is known for the path parameter '{{{param}}}'")


# --- How a route is called ---------------------------------------------------------------

ALLOWED = frozenset({200, 201, 202, 204, 409})
Body = Callable[[World, str], Any]  # (the world whose ids it references, a fresh tag)


@dataclass(frozen=True)
class Call:
    """One way to call a route: body, query, ids other than the default, and what it needs."""

    label: str = ""
    body: Body | None = None
    query: Callable[[World], dict[str, str]] | None = None
    # Path parameter -> World.ids key, where the default resource is not the one to use.
    ids: Mapping[str, str] = field(default_factory=dict)
    # Checked in the handler (not by an Authorizer): the permissions this call needs.
    needs: frozenset[Permission] | None = None
    # What a caller holding the permission may get (the async ones: 202 or 409).
    allowed: frozenset[int] = ALLOWED
    # What another organization's owner gets; None: 404 when the path names a resource.
    stranger: int | None = None
    # The body names other resources: another organization's ids there must be a 404 too.
    body_refs: bool = False
    # The call moves the environment to another stage: put it back afterwards.
    resets_environment: bool = False


def _promote(target: str, forced: bool = False) -> Body:
    return lambda w, fresh: {"targetStage": target, "forcePromote": forced}


PS, PP, ADMIN = Permission.PROMOTE_STAGING, Permission.PROMOTE_PRODUCTION, Permission.ADMIN

CALLS: dict[str, tuple[Call, ...]] = {
    "GET /api/jobs": (
        Call("all"),
        Call("by target", query=lambda w: {"targetId": w.ids["instance"]}),
    ),
    "GET /api/instances": (
        Call("all"),
        Call("by server", query=lambda w: {"serverId": w.ids["server"]}),
    ),
    "GET /api/projects/{project_id}/commits-since": (
        Call(query=lambda w: {"since": w.facts["sha_first"], "branch": "main"}),
    ),
    # Cancelling needs the permission that starting the job needed.
    "POST /api/jobs/{job_id}/cancel": (
        Call(
            "instance job",
            ids={"job_id": "job_instance"},
            needs=frozenset({Permission.MANAGE_INSTANCES}),
        ),
        Call(
            "environment job",
            ids={"job_id": "job_environment"},
            needs=frozenset({Permission.MANAGE_ENVIRONMENTS}),
        ),
        Call(
            "deployment job",
            ids={"job_id": "job_deployment"},
            needs=frozenset({Permission.DEPLOY}),
        ),
        Call("server job", ids={"job_id": "job_server"}, needs=frozenset({ADMIN})),
        Call(
            "finished job",
            needs=frozenset({Permission.MANAGE_INSTANCES}),
            allowed=frozenset({409}),
        ),
    ),
    "POST /api/instances": (
        Call(
            body=lambda w, fresh: {
                "name": f"New {fresh}",
                "slug": f"new-{fresh}",
                "serverId": w.ids["server"],
                "templateId": w.ids["template"],
                "projectId": w.ids["project"],
            },
            body_refs=True,
            allowed=frozenset({202}),
        ),
    ),
    "PUT /api/instances/{id}": (
        Call(body=lambda w, fresh: {"name": f"Renamed {fresh}"}, allowed=frozenset({200})),
    ),
    "POST /api/instances/{id}/control": (Call(body=lambda w, fresh: {"action": "restart"}),),
    "POST /api/templates": (
        Call(
            body=lambda w, fresh: {"name": f"template-{fresh}", "odooVersion": "17.0"},
            allowed=frozenset({201}),
            stranger=201,  # the caller's own organization gets the template
        ),
    ),
    "PUT /api/templates/{template_id}": (
        Call(body=lambda w, fresh: {"workers": 3}, allowed=frozenset({200})),
    ),
    "PUT /api/environments/{id}": (
        Call(body=lambda w, fresh: {"description": f"about {fresh}"}, allowed=frozenset({200})),
    ),
    "PUT /api/environments/{id}/commit-behavior": (
        Call(body=lambda w, fresh: {"behavior": "do_nothing"}, allowed=frozenset({200})),
    ),
    # The world's environment has no mail catcher: a permitted caller gets 404 for that.
    **{
        f"{method} /api/environments/{{id}}/mail{sub}": (Call(allowed=frozenset({404})),)
        for method in ("GET", "POST", "PUT", "DELETE")
        for sub in ("", "/{path:path}")
    },
    "POST /api/environments/{id}/clone": (
        Call(body=lambda w, fresh: {"targetBranch": f"feature-{fresh}"}),
    ),
    # Moving to or from production needs promote:production, within the lower stages
    # promote:staging; forcing past a test gate needs admin on top.
    "POST /api/environments/{id}/promote": (
        Call(
            "staging to production",
            body=_promote("production"),
            needs=frozenset({PP}),
            resets_environment=True,
        ),
        Call(
            "staging to development",
            body=_promote("development"),
            needs=frozenset({PS}),
            resets_environment=True,
        ),
        Call(
            "forced, staging to development",
            body=_promote("development", forced=True),
            needs=frozenset({PS, ADMIN}),
            resets_environment=True,
        ),
        Call(
            "forced, staging to production",
            body=_promote("production", forced=True),
            needs=frozenset({PP, ADMIN}),
            resets_environment=True,
        ),
    ),
    "POST /api/projects/{project_id}/environments": (
        Call(
            body=lambda w, fresh: {
                "instanceId": w.ids["spare_instance"],
                "branch": f"spare-{fresh}",
                "environmentType": "development",
            },
            body_refs=True,
        ),
    ),
    "PUT /api/projects/{project_id}/test-gates": (
        Call(
            body=lambda w, fresh: {"testGateStaging": "warn", "testGateProduction": "block"},
            allowed=frozenset({200}),
        ),
    ),
    "PUT /api/projects/{project_id}/neutralization/profile": (
        Call(body=lambda w, fresh: {"neutralizeSocial": False}, allowed=frozenset({200})),
    ),
    "POST /api/projects/{project_id}/deploy": (
        Call(
            body=lambda w, fresh: {"instanceId": w.ids["instance"], "branch": "main"},
            body_refs=True,
        ),
    ),
    "POST /api/projects/{project_id}/rollback": (
        Call(body=lambda w, fresh: {"deploymentId": w.ids["deployment"]}, body_refs=True),
    ),
    "POST /api/projects/{project_id}/deployments/{deployment_id}/waivers": (
        Call(body=lambda w, fresh: {"gateKey": "tests", "reason": f"accepted for {fresh}"}),
    ),
    "POST /api/environments/{id}/share": (
        Call(
            body=lambda w, fresh: {"shareType": "token", "label": f"label {fresh}"},
            allowed=frozenset({201}),
        ),
    ),
    "POST /api/environments/{env_id}/neutralization/items/{item_id}/toggle": (
        # The world's running environment job holds the environment: 409 once allowed.
        Call(body=lambda w, fresh: {"enable": True}),
    ),
    "POST /api/environments/{env_id}/neutralization/toggle-category": (
        Call(body=lambda w, fresh: {"category": "crons", "enable": True}),
    ),
    "POST /api/environments/{env_id}/neutralization/neutralize": (
        Call(body=lambda w, fresh: {"confirmText": w.facts["environment_name"]}),
    ),
    "POST /api/projects": (
        Call(
            body=lambda w, fresh: {
                "name": f"project-{fresh}",
                "repositoryUrl": "https://git.example.com/shop.git",
                "odooVersion": "17.0",
            },
            allowed=frozenset({201}),
            stranger=201,  # the caller's own organization gets the project
        ),
    ),
    "PUT /api/projects/{project_id}": (
        Call(body=lambda w, fresh: {"testTags": "/shop_custom"}, allowed=frozenset({200})),
    ),
    "POST /api/servers": (
        Call(
            body=lambda w, fresh: {"name": f"server-{fresh}", "isLocal": True},
            allowed=frozenset({201}),
            stranger=201,  # the caller's own organization gets the server
        ),
    ),
    "PUT /api/servers/{server_id}": (
        Call(body=lambda w, fresh: {"nginxListen": "8080"}, allowed=frozenset({200})),
    ),
    "DELETE /api/environments/{id}/share/{link_id}": (Call(allowed=frozenset({200})),),
    "DELETE /api/environments/{id}/share/{link_id}/permanent": (Call(allowed=frozenset({204})),),
}

# --- Permissions -------------------------------------------------------------------------

MEMBER = None  # any member of the organization
IN_HANDLER = "checked in the handler"  # by call: see Call.needs

# Every route that is not a plain read, with the permission it needs: the security
# policy, compared with what each route declares. Also the order the role test
# calls them in (deletions last, children before parents).
PERMISSIONS: dict[str, Permission | str | None] = {
    "POST /api/instances": Permission.MANAGE_INSTANCES,
    "PUT /api/instances/{id}": Permission.MANAGE_INSTANCES,
    "POST /api/instances/{id}/control": Permission.MANAGE_INSTANCES,
    "POST /api/templates": Permission.MANAGE_INSTANCES,
    "PUT /api/templates/{template_id}": Permission.MANAGE_INSTANCES,
    "PUT /api/environments/{id}": Permission.MANAGE_ENVIRONMENTS,
    "PUT /api/environments/{id}/commit-behavior": Permission.MANAGE_ENVIRONMENTS,
    **{
        f"{method} /api/environments/{{id}}/mail{sub}": Permission.MANAGE_ENVIRONMENTS
        for method in ("POST", "PUT", "DELETE")
        for sub in ("", "/{path:path}")
    },
    "POST /api/environments/{id}/promote": IN_HANDLER,
    "POST /api/environments/{id}/clone": Permission.MANAGE_ENVIRONMENTS,
    "POST /api/projects/{project_id}/environments": Permission.MANAGE_ENVIRONMENTS,
    "PUT /api/projects/{project_id}/test-gates": Permission.ADMIN,
    "PUT /api/projects/{project_id}/neutralization/profile": Permission.MANAGE_NEUTRALIZATION,
    "POST /api/projects/{project_id}/deployments/{deployment_id}/waivers": Permission.ADMIN,
    "POST /api/projects/{project_id}/rollback": Permission.DEPLOY,
    "POST /api/projects/{project_id}/deploy": Permission.DEPLOY,
    "POST /api/environments/{id}/trigger-build": Permission.DEPLOY,
    "POST /api/environments/{id}/share": Permission.MANAGE_SHARES,
    "POST /api/environments/{env_id}/neutralization/items/{item_id}/toggle": (
        Permission.MANAGE_NEUTRALIZATION
    ),
    "POST /api/environments/{env_id}/neutralization/toggle-category": (
        Permission.MANAGE_NEUTRALIZATION
    ),
    "POST /api/environments/{env_id}/neutralization/neutralize": Permission.MANAGE_NEUTRALIZATION,
    "POST /api/jobs/{job_id}/cancel": IN_HANDLER,
    "POST /api/projects": Permission.ADMIN,
    "PUT /api/projects/{project_id}": Permission.ADMIN,
    "POST /api/projects/{project_id}/webhook-secret": Permission.ADMIN,
    "POST /api/servers": Permission.ADMIN,
    "PUT /api/servers/{server_id}": Permission.ADMIN,
    "POST /api/servers/{server_id}/check": Permission.ADMIN,
    "DELETE /api/environments/{id}/share/{link_id}": Permission.MANAGE_SHARES,
    "DELETE /api/environments/{id}/share/{link_id}/permanent": Permission.MANAGE_SHARES,
    "DELETE /api/environments/{id}": Permission.MANAGE_ENVIRONMENTS,
    "DELETE /api/instances/{id}": Permission.MANAGE_INSTANCES,
    "DELETE /api/templates/{template_id}": Permission.MANAGE_INSTANCES,
    "DELETE /api/servers/{server_id}": Permission.ADMIN,
    "DELETE /api/projects/{project_id}": Permission.ADMIN,
}


def calls_of(route: Route) -> tuple[Call, ...]:
    return CALLS.get(route.key, (Call(),))


def needs_of(route: Route, call: Call) -> frozenset[Permission]:
    """What a caller must hold for this call to pass the permission check."""
    if call.needs is not None:
        return call.needs
    declared = PERMISSIONS.get(route.key, MEMBER)
    if declared is MEMBER:
        return frozenset()
    assert isinstance(declared, Permission), (route.key, declared)
    return frozenset({declared})


# --- Public routes -----------------------------------------------------------------------


@dataclass(frozen=True)
class PublicCall:
    """A call without a bearer token and the answer it must get."""

    status: int
    why: str
    params: Callable[[World], dict[str, str]] = lambda w: {}
    body: Callable[[World], Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


_NO_TOKEN = "no-such-share-token-0123456789abcdef"
_SHARE_404 = (
    PublicCall(404, "an unknown token", lambda w: {"token": _NO_TOKEN}),
    PublicCall(404, "a share link's id is not its token", lambda w: {"token": w.ids["share_link"]}),
)
_PROXY_404 = PublicCall(404, "no share session cookie", lambda w: {"path": "web/login"})
_WEBHOOK_401 = (
    PublicCall(
        401,
        "an unsigned delivery for a real project",
        lambda w: {"project_id": w.ids["project"]},
        body=lambda w: {"ref": "refs/heads/main"},
    ),
    PublicCall(
        401,
        "an unsigned delivery for an unknown project",
        lambda w: {"project_id": "00000000-0000-4000-8000-000000000000"},
        body=lambda w: {"ref": "refs/heads/main"},
    ),
)

# Routes anyone may call: no bearer token, each with the answers it must give without one.
PUBLIC: dict[str, tuple[PublicCall, ...]] = {
    "GET /api/health": (PublicCall(200, "liveness probe"),),
    "GET /api/ready": (PublicCall(200, "readiness probe"),),
    "GET /api/openapi.json": (PublicCall(200, "the API's own description"),),
    "GET /api/docs": (PublicCall(200, "Swagger UI page"),),
    "GET /docs/oauth2-redirect": (PublicCall(200, "Swagger UI's OAuth2 redirect page"),),
    # Prometheus scrapes: counts by route template and job kind, never an id. Open
    # here because the test settings set no OCORE_METRICS_TOKEN (test_metrics covers it).
    "GET /metrics": (PublicCall(200, "Prometheus metrics, no token configured"),),
    # Share links: the link's token (and then its cookie) is the credential.
    "GET /api/share/{token}": _SHARE_404,
    "POST /api/share/{token}/login": tuple(
        PublicCall(c.status, c.why, c.params, body=lambda w: {"password": "not-the-password"})
        for c in _SHARE_404
    ),
    # nginx's share gateway asks with its own token (unset in the test settings: no endpoint).
    "GET /api/share-gateway/auth": (PublicCall(404, "no gateway token configured"),),
    "GET /api/s-proxy/{path}": (_PROXY_404,),
    "DELETE /api/s-proxy/{path}": (_PROXY_404,),
    "HEAD /api/s-proxy/{path}": (_PROXY_404,),
    "OPTIONS /api/s-proxy/{path}": (_PROXY_404,),
    "PATCH /api/s-proxy/{path}": (_PROXY_404,),
    "POST /api/s-proxy/{path}": (_PROXY_404,),
    "PUT /api/s-proxy/{path}": (_PROXY_404,),
    # A websocket (driven through ASGI: httpx has none): 403 is a close before the
    # handshake, what servers answer to it. The share cookie is the only credential.
    "WEBSOCKET /api/s-proxy/websocket": (
        PublicCall(403, "no Origin header"),
        PublicCall(403, "no share cookie", headers={"Origin": "http://ocore.test"}),
        PublicCall(
            403,
            "a forged share cookie",
            headers={"Origin": "http://ocore.test", "Cookie": "ocore_share=forged.cookie"},
        ),
    ),
    # Git providers: the project's webhook secret signs each delivery.
    "POST /api/webhooks/github/{project_id}": _WEBHOOK_401,
    "POST /api/webhooks/gitlab/{project_id}": _WEBHOOK_401,
    "POST /api/webhooks/git/{project_id}": _WEBHOOK_401,
}


def public_key(route: Route) -> str:
    """The allow-list key: ``{path:path}`` is written ``{path}``."""
    return f"{route.method} {_PARAM.sub(lambda m: '{' + m.group(1) + '}', route.path)}"


def fill_path(path: str, values: Mapping[str, str]) -> str:
    return _PARAM.sub(lambda m: values[m.group(1)], path)
