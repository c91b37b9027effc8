"""Would the Gateway accept our HTTPRoutes? Route attachment as the Gateway API specifies it, so that a
route the Gateway will not admit fails pre-flight instead of `up` succeeding while every model answers 404.

The rules, each from the Gateway API reference (https://gateway-api.sigs.k8s.io/reference/spec/, sections
Listener, AllowedRoutes, RouteNamespaces, RouteGroupKind, ParentReference, BackendRef, ReferenceGrant) and the
field docs of the vendored HTTPRoute CRD (tests/upstream/crds/gateway.networking.k8s.io_httproutes.yaml):

- parentRef `sectionName` selects the listener of that name, `port` the listeners on that port, both: the
  listener matching both; none matching is `NoMatchingParent` (ParentReference.sectionName / .port).
- A listener admits a route kind listed in `allowedRoutes.kinds` (group defaulting to
  gateway.networking.k8s.io); when the list is empty, the kinds its protocol supports: HTTPRoute on HTTP and
  HTTPS listeners, never on TLS, TCP or UDP ones (Listener.allowedRoutes, RouteGroupKind; `NotAllowedByListeners`).
- `allowedRoutes.namespaces.from`: `Same` (the default: "restricted to the namespace of this Gateway by
  default", RouteNamespaces) admits routes in the Gateway's own namespace only,
  `All` every namespace, `Selector` namespaces whose labels match `selector` (RouteNamespaces.from).
- Hostnames: a listener without one, or a route without any, match anything; otherwise at least one route
  hostname must intersect the listener's, a `*.` wildcard being a suffix match of one or more labels
  (`*.example.com` matches `a.example.com` and `b.a.example.com`, not `example.com`), in either direction
  (HTTPRoute.spec.hostnames; `NoMatchingListenerHostname`).
- The route is accepted when at least one selected listener admits it (ParentReference.sectionName: "an
  attachment is considered successful if at least one section in the parent resource accepts it").
- A backendRef in another namespace needs a ReferenceGrant there from HTTPRoutes in the route's namespace
  to that Service (BackendRef.namespace; otherwise `ResolvedRefs=False` with `RefNotPermitted`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

GATEWAY_GROUP = "gateway.networking.k8s.io"
HTTP_PROTOCOLS = ("HTTP", "HTTPS")


@dataclass(frozen=True)
class RouteSpec:
    """An HTTPRoute as the stack will create it."""

    name: str
    namespace: str
    hostnames: tuple[str, ...]
    parent_ref: Mapping[str, Any]
    backend_refs: tuple[Mapping[str, Any], ...] = ()


def _as_map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def matches_selector(selector: Any, labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector against labels. An empty selector ({}) matches everything, a missing one nothing
    (LabelSelector docs: "An empty label selector matches all objects. A null label selector matches no objects")."""
    if not isinstance(selector, dict):
        return False
    if any(labels.get(key) != value for key, value in _as_map(selector.get("matchLabels")).items()):
        return False
    return all(_matches_expression(_as_map(item), labels) for item in _as_list(selector.get("matchExpressions")))


def _matches_expression(expr: dict[str, Any], labels: Mapping[str, str]) -> bool:
    """One of matchExpressions; an operator the API does not define matches nothing."""
    key, op, values = str(expr.get("key")), expr.get("operator"), _as_list(expr.get("values"))
    outcome = {
        "In": lambda: labels.get(key) in values,
        "NotIn": lambda: not (key in labels and labels.get(key) in values),
        "Exists": lambda: key in labels,
        "DoesNotExist": lambda: key not in labels,
    }.get(str(op))
    return outcome is not None and outcome()


def hostname_matches(listener: str, route: str) -> bool:
    """Whether a listener hostname and a route hostname intersect (either may be a `*.` wildcard)."""
    listener, route = listener.lower(), route.lower()
    if listener == route:
        return True
    if listener.startswith("*."):
        if route.startswith("*."):
            # two wildcards intersect when one's suffix contains the other's
            return route[1:].endswith(listener[1:]) or listener[1:].endswith(route[1:])
        return route.endswith(listener[1:])
    if route.startswith("*."):
        return listener.endswith(route[1:])
    return False


def _kind_allowed(listener: Mapping[str, Any]) -> str | None:
    """Why the listener refuses HTTPRoutes by kind, or None."""
    kinds = _as_list(_as_map(listener.get("allowedRoutes")).get("kinds"))
    if kinds:
        for kind in kinds:
            kind = _as_map(kind)
            if kind.get("kind") == "HTTPRoute" and kind.get("group", GATEWAY_GROUP) == GATEWAY_GROUP:
                return None
        listed = ", ".join(str(_as_map(k).get("kind")) for k in kinds)
        return f"allowedRoutes.kinds lists {listed}, not HTTPRoute"
    protocol = str(listener.get("protocol", ""))
    if protocol not in HTTP_PROTOCOLS:
        return f"protocol {protocol or '(none)'} does not carry HTTPRoutes"
    return None


def _namespace_allowed(
    listener: Mapping[str, Any], gateway_namespace: str, route_namespace: str, labels: Mapping[str, str]
) -> str | None:
    """Why the listener refuses routes from `route_namespace`, or None."""
    namespaces = _as_map(_as_map(listener.get("allowedRoutes")).get("namespaces"))
    source = namespaces.get("from") or "Same"
    if source == "All":
        return None
    if source == "Same":
        if route_namespace == gateway_namespace:
            return None
        return f"namespace {route_namespace} is not allowed by listener {listener.get('name')} (allowedRoutes.namespaces.from: Same)"
    if source == "Selector":
        if matches_selector(namespaces.get("selector"), labels):
            return None
        return (
            f"namespace {route_namespace} is not allowed by listener {listener.get('name')} (allowedRoutes.namespaces.from: "
            f"Selector; its labels {dict(sorted(labels.items()))} do not match {namespaces.get('selector')})"
        )
    return f"listener {listener.get('name')} has allowedRoutes.namespaces.from: {source}, which admits nothing"


def _hostname_allowed(listener: Mapping[str, Any], route: RouteSpec) -> str | None:
    name = listener.get("hostname")
    if not name or not route.hostnames:
        return None
    if any(hostname_matches(str(name), h) for h in route.hostnames):
        return None
    return (
        f"no hostname of the route ({', '.join(route.hostnames)}) matches listener {listener.get('name')}'s "
        f"hostname {name} (NoMatchingListenerHostname)"
    )


def route_acceptance(gateway: Mapping[str, Any], route: RouteSpec, namespace_labels: Mapping[str, str]) -> list[str]:
    """Why the Gateway would not accept the route: empty when at least one listener admits it."""
    gateway_namespace = str(_as_map(gateway.get("metadata")).get("namespace", ""))
    gateway_name = str(_as_map(gateway.get("metadata")).get("name", ""))
    listeners = [_as_map(item) for item in _as_list(_as_map(gateway.get("spec")).get("listeners"))]
    section, port = route.parent_ref.get("sectionName"), route.parent_ref.get("port")
    selected = [
        listener
        for listener in listeners
        if (section is None or listener.get("name") == section) and (port is None or listener.get("port") == port)
    ]
    what = f"HTTPRoute {route.namespace}/{route.name} on Gateway {gateway_namespace}/{gateway_name}"
    if not selected:
        wanted = " and ".join(
            part for part in (f"sectionName {section}" if section else "", f"port {port}" if port else "") if part
        )
        return [f"{what}: no listener matches {wanted or 'the parentRef'} (NoMatchingParent)"]
    reasons = []
    for listener in selected:
        refusal = (
            _kind_allowed(listener)
            or _namespace_allowed(listener, gateway_namespace, route.namespace, namespace_labels)
            or _hostname_allowed(listener, route)
        )
        if refusal is None:
            return []
        reasons.append(
            refusal if str(listener.get("name")) in refusal else f"listener {listener.get('name')}: {refusal}"
        )
    return [f"{what} would not be accepted: " + "; ".join(reasons)]


def backend_refs_permitted(route: RouteSpec, reference_grants: Callable[[str], list[dict[str, Any]]]) -> list[str]:
    """Cross-namespace backendRefs without a ReferenceGrant in the backend's namespace (RefNotPermitted)."""
    problems = []
    for ref in route.backend_refs:
        namespace = ref.get("namespace") or route.namespace
        if namespace == route.namespace:
            continue
        kind, group = ref.get("kind", "Service"), ref.get("group", "")
        granted = any(
            any(
                _as_map(f).get("group") == GATEWAY_GROUP
                and _as_map(f).get("kind") == "HTTPRoute"
                and _as_map(f).get("namespace") == route.namespace
                for f in _as_list(_as_map(grant.get("spec")).get("from"))
            )
            and any(
                _as_map(t).get("kind") == kind
                and (_as_map(t).get("group") or "") == group
                and _as_map(t).get("name") in (None, "", ref.get("name"))
                for t in _as_list(_as_map(grant.get("spec")).get("to"))
            )
            for grant in reference_grants(namespace)
        )
        if not granted:
            problems.append(
                f"HTTPRoute {route.namespace}/{route.name}: backendRef {kind} {namespace}/{ref.get('name')} is in "
                f"another namespace and no ReferenceGrant in {namespace} allows it (RefNotPermitted)"
            )
    return problems


def existing_route_status(route: Mapping[str, Any], gateway_name: str, gateway_namespace: str) -> list[str]:
    """What an existing route's status says about our parent: Accepted=False or ResolvedRefs=False, with reasons."""
    problems = []
    meta = _as_map(route.get("metadata"))
    where = f"HTTPRoute {meta.get('namespace')}/{meta.get('name')}"
    for parent in _as_list(_as_map(route.get("status")).get("parents")):
        ref = _as_map(_as_map(parent).get("parentRef"))
        if ref.get("name") != gateway_name or (ref.get("namespace") or meta.get("namespace")) != gateway_namespace:
            continue
        for condition in _as_list(_as_map(parent).get("conditions")):
            condition = _as_map(condition)
            if condition.get("type") in ("Accepted", "ResolvedRefs") and condition.get("status") == "False":
                problems.append(
                    f"{where} exists and its Gateway {gateway_namespace}/{gateway_name} reports "
                    f"{condition.get('type')}=False ({condition.get('reason')}): {condition.get('message', '')}".rstrip(
                        ": "
                    )
                )
    return problems
