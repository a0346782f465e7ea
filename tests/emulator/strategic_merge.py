"""The three PATCH flavours the kube-apiserver accepts, as pure functions.

* :func:`strategic_merge_patch` - ``application/strategic-merge-patch+json``.
  A port of ``k8s.io/apimachinery/pkg/util/strategicpatch`` (``mergeMap`` /
  ``mergeSlice`` / ``normalizeElementOrder``) driven by a small table of patch
  strategies keyed by field path instead of Go struct tags.  This is what makes
  ``kubectl patch`` / ``kube::Api::patch(Patch::Strategic)`` of *one* container
  keep the other containers: lists that have a ``patchMergeKey`` in the Go API
  types are merged element by element, every other list is replaced.
* :func:`json_merge_patch` - ``application/merge-patch+json`` (RFC 7386).
  Every list is atomic, so patching one container drops the others; the tests
  contrast the two to show why the strategic flavour matters.
* :func:`json_patch` - ``application/json-patch+json`` (RFC 6902).

All functions return a new document and never mutate their arguments.
Errors raise :class:`PatchError` carrying the HTTP status the apiserver uses
for that failure (400 for a malformed patch document, 422 for a JSON patch that
cannot be applied, 500 for merge failures the apiserver does not classify).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = [
    "DEPLOYMENT_LIST_STRATEGIES",
    "ListStrategy",
    "PatchError",
    "json_merge_patch",
    "json_patch",
    "strategic_merge_patch",
]


class PatchError(ValueError):
    """A patch could not be decoded or applied; ``code`` is the HTTP status."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ListStrategy:
    """``patchStrategy:"merge"`` on a list field.

    ``merge_key`` is the ``patchMergeKey`` for lists of objects; ``None`` marks a
    list of scalars merged as an ordered set (e.g. ``metadata.finalizers``).
    Lists absent from a strategy table are atomic (replaced by the patch), which
    is the apiserver's behaviour for e.g. ``tolerations``, ``args``, ``command``.
    """

    merge_key: str | None


def _pod_template_strategies(prefix: str) -> dict[str, ListStrategy]:
    """Merge strategies of a PodTemplateSpec rooted at ``prefix`` (core/v1 tags)."""
    pod = f"{prefix}.spec"
    table = {
        f"{prefix}.metadata.finalizers": ListStrategy(None),
        f"{prefix}.metadata.ownerReferences": ListStrategy("uid"),
        f"{pod}.volumes": ListStrategy("name"),
        f"{pod}.imagePullSecrets": ListStrategy("name"),
        f"{pod}.hostAliases": ListStrategy("ip"),
        f"{pod}.topologySpreadConstraints": ListStrategy("topologyKey"),
        f"{pod}.schedulingGates": ListStrategy("name"),
        f"{pod}.resourceClaims": ListStrategy("name"),
    }
    for containers in ("containers", "initContainers"):
        base = f"{pod}.{containers}"
        table[base] = ListStrategy("name")
        table[f"{base}[].env"] = ListStrategy("name")
        table[f"{base}[].ports"] = ListStrategy("containerPort")
        table[f"{base}[].volumeMounts"] = ListStrategy("mountPath")
        table[f"{base}[].volumeDevices"] = ListStrategy("devicePath")
    return table


#: Patch strategies of an ``apps/v1`` Deployment, keyed by dotted path where
#: ``[]`` stands for "any element of this list".
DEPLOYMENT_LIST_STRATEGIES: Mapping[str, ListStrategy] = {
    "metadata.finalizers": ListStrategy(None),
    "metadata.ownerReferences": ListStrategy("uid"),
    "status.conditions": ListStrategy("type"),
    **_pod_template_strategies("spec.template"),
}

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER_PREFIX = "$setElementOrder/"
_DELETE_FROM_PRIMITIVE_PREFIX = "$deleteFromPrimitiveList/"


# --------------------------------------------------------------------------
# Strategic merge patch
# --------------------------------------------------------------------------


def strategic_merge_patch(
    original: Mapping[str, Any],
    patch: Mapping[str, Any],
    strategies: Mapping[str, ListStrategy] = DEPLOYMENT_LIST_STRATEGIES,
) -> dict[str, Any]:
    """Apply a strategic merge patch to ``original`` as the apiserver does.

    Maps merge recursively and ``null`` deletes a key.  Lists listed in
    ``strategies`` merge by their key, honouring ``$patch: replace|delete``,
    ``$setElementOrder/<list>``, ``$retainKeys`` and
    ``$deleteFromPrimitiveList/<list>``; no directive is ever stored.
    """
    if not isinstance(patch, Mapping):
        raise PatchError("strategic merge patch must be a JSON object", 400)
    return _merge_map(copy.deepcopy(dict(original)), copy.deepcopy(dict(patch)), "", strategies)


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _merge_map(
    original: dict[str, Any], patch: dict[str, Any], path: str, strategies: Mapping[str, ListStrategy]
) -> dict[str, Any]:
    directive = patch.pop(_DIRECTIVE, None)
    if directive == "replace":
        # The map is replaced wholesale; merging onto {} still strips nested directives.
        return _merge_map({}, patch, path, strategies)
    if directive == "delete":
        # Upstream ``handleDirectiveInMergeMap`` yields an empty map, not an absent key.
        return {}
    if directive is not None:
        raise PatchError(f"unknown patch type: {directive!r} in map at {path or '<root>'}", 400)

    _apply_retain_keys(original, patch)

    for key in [k for k in patch if k.startswith(_DELETE_FROM_PRIMITIVE_PREFIX)]:
        field_name = key[len(_DELETE_FROM_PRIMITIVE_PREFIX):]
        to_delete = patch.pop(key)
        if not isinstance(to_delete, list):
            raise PatchError("invalid patch format of primitive list", 400)
        current = original.get(field_name)
        if isinstance(current, list):
            doomed = {_scalar_key(v) for v in to_delete}
            original[field_name] = [v for v in current if _scalar_key(v) not in doomed]

    for key in [k for k in patch if k.startswith(_SET_ORDER_PREFIX)]:
        _merge_ordered_list(original, patch, key[len(_SET_ORDER_PREFIX):], patch.pop(key), path, strategies)

    for key, value in patch.items():
        if key.startswith("$"):
            raise PatchError(f"unknown strategic merge patch directive {key!r}", 400)
        child = _child(path, key)
        if value is None:
            original.pop(key, None)
        elif key not in original:
            original[key] = _fresh(value, child, strategies)
        elif isinstance(value, dict) and isinstance(original[key], dict):
            original[key] = _merge_map(original[key], value, child, strategies)
        elif isinstance(value, list) and isinstance(original[key], list):
            original[key] = _merge_list(original[key], value, child, strategies)
        else:
            original[key] = _fresh(value, child, strategies)
    return original


def _merge_ordered_list(
    original: dict[str, Any],
    patch: dict[str, Any],
    field_name: str,
    order: Any,
    path: str,
    strategies: Mapping[str, ListStrategy],
) -> None:
    """Upstream ``mergePatchIntoOriginal``: merge one list together with its ``$setElementOrder``.

    The list is merged as usual, then items named by the directive take its
    order and the remaining (server-only) items are interleaved by their
    position in the live list.  The list is removed from ``patch`` so that the
    main loop does not merge it a second time.
    """
    if not isinstance(order, list):
        raise PatchError("invalid patch format of setElementOrder list", 400)
    child = _child(path, field_name)
    strategy = strategies.get(child)
    merge_key = strategy.merge_key if strategy else None
    if merge_key is not None and not all(isinstance(o, dict) and merge_key in o for o in order):
        raise PatchError("invalid patch format of setElementOrder list", 400)
    live = original.get(field_name) if isinstance(original.get(field_name), list) else None
    patch_list = patch.pop(field_name) if isinstance(patch.get(field_name), list) else None
    if patch_list is not None:
        _validate_patch_with_order(patch_list, order, merge_key)
    if live is not None and patch_list is not None:
        merged = _merge_list(live, patch_list, child, strategies)
    elif patch_list is not None:
        merged = _fresh(patch_list, child, strategies)
    elif live is not None:
        merged = live
    else:
        return
    original[field_name] = _normalize_order(merged, order, live or [], merge_key)


def _fresh(value: Any, path: str, strategies: Mapping[str, ListStrategy]) -> Any:
    """A patch value for a key the original lacks: merge it onto an empty value.

    Upstream stores such values verbatim; merging onto an empty value instead
    keeps directives nested inside them (``$patch``, ``$setElementOrder``...)
    from ever being persisted.
    """
    if isinstance(value, dict):
        return _merge_map({}, value, path, strategies)
    if isinstance(value, list):
        return _merge_list([], value, path, strategies)
    return value


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    """``$retainKeys``: drop every original key not listed (upstream ``applyRetainKeysDirective``)."""
    if _RETAIN_KEYS not in patch:
        return
    retain = patch.pop(_RETAIN_KEYS)
    if not isinstance(retain, list):
        raise PatchError("invalid patch format of retainKeys", 400)
    allowed = set(retain)
    for key, value in patch.items():
        if value is None or key.startswith((_DELETE_FROM_PRIMITIVE_PREFIX, _SET_ORDER_PREFIX)):
            continue
        if key not in allowed:
            raise PatchError("invalid patch format of retainKeys", 400)
    for key in [k for k in original if k not in allowed]:
        del original[key]


def _merge_list(
    original: list[Any], patch: list[Any], path: str, strategies: Mapping[str, ListStrategy]
) -> list[Any]:
    strategy = strategies.get(path)
    element_path = f"{path}[]"
    if strategy is None:
        return [_fresh(item, element_path, strategies) for item in patch]
    if any(isinstance(item, list) for item in original + patch):
        raise PatchError("lists of lists are not supported", 400)
    if strategy.merge_key is None:
        if any(isinstance(item, dict) for item in original + patch):
            raise PatchError(f"cannot merge lists without merge key for {path}", 500)
        merged = _dedupe_scalars(original + patch)
        return _normalize_order(merged, patch, original, None)
    return _merge_keyed_list(original, patch, strategy.merge_key, element_path, strategies)


def _merge_keyed_list(
    original: list[Any], patch: list[Any], key: str, element_path: str, strategies: Mapping[str, ListStrategy]
) -> list[Any]:
    """Upstream ``mergeSlice`` for a list of maps with a patch merge key."""
    if not all(isinstance(item, dict) for item in original + patch):
        raise PatchError(f"list element types are not identical at {element_path[:-2]}", 500)
    plain: list[dict[str, Any]] = []
    replace = False
    for item in patch:
        directive = item.get(_DIRECTIVE)
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            if key not in item:
                raise PatchError(f"map: {item} does not contain declared merge key: {key}", 500)
            original = [o for o in original if not _same_key(o, item, key)]
        elif directive == "replace":
            replace = True
        else:
            raise PatchError(f"unknown patch type: {directive!r} in list at {element_path[:-2]}", 400)
    if replace:
        # ``$patch: replace`` in a list: the list becomes exactly the other elements.
        return [_merge_map({}, item, element_path, strategies) for item in plain]

    merged = list(original)
    for item in plain:
        if key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {key}", 500)
        index = next((i for i, o in enumerate(merged) if _same_key(o, item, key)), None)
        if index is None:
            merged.append(_merge_map({}, item, element_path, strategies))
        else:
            merged[index] = _merge_map(merged[index], item, element_path, strategies)
    return _normalize_order(merged, plain, original, key)


def _scalar_key(value: Any) -> tuple[str, Any]:
    """Equality as Go compares ``interface{}`` JSON scalars (``1 == 1.0``, ``True != 1``)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", float(value))
    return (type(value).__name__, value)


def _same_key(a: Mapping[str, Any], b: Mapping[str, Any], key: str) -> bool:
    return key in a and key in b and _scalar_key(a[key]) == _scalar_key(b[key])


def _dedupe_scalars(items: list[Any]) -> list[Any]:
    seen: set[tuple[str, Any]] = set()
    result = []
    for item in items:
        marker = _scalar_key(item)
        if marker not in seen:
            seen.add(marker)
            result.append(item)
    return result


def _index(items: list[Any], value: Any, merge_key: str | None) -> int:
    """Position of ``value`` in ``items`` by merge key (maps) or by value (scalars); -1 if absent."""
    for i, item in enumerate(items):
        if merge_key is None:
            if not isinstance(item, dict) and _scalar_key(item) == _scalar_key(value):
                return i
        elif isinstance(item, dict) and _same_key(item, value, merge_key):
            return i
    return -1


def _normalize_order(merged: list[Any], patch_order: list[Any], server_order: list[Any], merge_key: str | None) -> list[Any]:
    """Upstream ``normalizeElementOrder``: the resulting order of a merged list.

    Items named by the patch keep the patch's order, items only on the server
    keep the server's order, and the two runs are interleaved by their server
    positions.  An item new to the server sorts *before* the server-only items
    it is compared with, so (exactly like the apiserver) a strategic patch that
    adds a new container without ``$setElementOrder`` puts it first.
    """
    patch_items = [m for m in merged if _index(patch_order, m, merge_key) >= 0]
    server_only = [m for m in merged if _index(patch_order, m, merge_key) < 0]

    def position_in(order: list[Any]):
        def position(item: Any) -> int:
            index = _index(order, item, merge_key)
            return index if index >= 0 else len(order)

        return position

    patch_items.sort(key=position_in(patch_order))
    server_only.sort(key=position_in(server_order))

    result: list[Any] = []
    i = j = 0
    while i < len(server_only) or j < len(patch_items):
        if j >= len(patch_items):
            result.append(server_only[i])
            i += 1
        elif i >= len(server_only):
            result.append(patch_items[j])
            j += 1
        else:
            left = _index(server_order, server_only[i], merge_key)
            right = _index(server_order, patch_items[j], merge_key)
            if left >= 0 and right >= 0 and left < right:
                result.append(server_only[i])
                i += 1
            else:
                result.append(patch_items[j])
                j += 1
    return result


def _validate_patch_with_order(patch_list: list[Any], order: list[Any], merge_key: str | None) -> None:
    """Upstream ``validatePatchWithSetOrderList``: patch items must be a subsequence of the order."""
    items = [p for p in patch_list if not (isinstance(p, dict) and _DIRECTIVE in p)]
    position = 0
    for item in items:
        while position < len(order) and _index([order[position]], item, merge_key) < 0:
            position += 1
        if position >= len(order):
            raise PatchError("the order in the patch list doesn't match the $setElementOrder list", 400)
        position += 1


# --------------------------------------------------------------------------
# JSON merge patch (RFC 7386)
# --------------------------------------------------------------------------


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


# --------------------------------------------------------------------------
# JSON patch (RFC 6902)
# --------------------------------------------------------------------------


def json_patch(document: Any, operations: Any) -> Any:
    """RFC 6902 ``add``/``remove``/``replace``/``move``/``copy``/``test``.

    The whole patch is applied to a copy, so a failing operation leaves nothing
    half-applied - the apiserver likewise rejects the request as a whole (422).
    """
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise PatchError("json patch must be a JSON array of operation objects", 400)
    doc = copy.deepcopy(document)
    for op in operations:
        kind = op.get("op")
        path = _pointer(op, "path")
        if kind == "add":
            doc = _ptr_add(doc, path, copy.deepcopy(_value(op)))
        elif kind == "remove":
            doc = _ptr_remove(doc, path)
        elif kind == "replace":
            value = copy.deepcopy(_value(op))
            doc = _ptr_add(_ptr_remove(doc, path), path, value) if path else value
        elif kind == "move":
            source = _pointer(op, "from")
            if path[: len(source)] == source and len(path) > len(source):
                raise PatchError("move operation cannot move a value into one of its children", 422)
            value = _ptr_get(doc, source)
            doc = _ptr_add(_ptr_remove(doc, source), path, value)
        elif kind == "copy":
            doc = _ptr_add(doc, path, copy.deepcopy(_ptr_get(doc, _pointer(op, "from"))))
        elif kind == "test":
            if not _json_equal(_ptr_get(doc, path), _value(op)):
                raise PatchError(f"testing value {op.get('path')} failed", 422)
        else:
            raise PatchError(f"unexpected kind: {kind!r}", 422)
    return doc


def _value(op: Mapping[str, Any]) -> Any:
    if "value" not in op:
        raise PatchError(f"missing value in {op.get('op')} operation", 422)
    return op["value"]


def _pointer(op: Mapping[str, Any], field_name: str) -> list[str]:
    raw = op.get(field_name)
    if not isinstance(raw, str) or (raw and not raw.startswith("/")):
        raise PatchError(f"invalid JSON pointer in {field_name!r}: {raw!r}", 422)
    if raw == "":
        return []
    return [token.replace("~1", "/").replace("~0", "~") for token in raw[1:].split("/")]


def _list_index(container: list[Any], token: str, allow_end: bool) -> int:
    if allow_end and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r}", 422)
    index = int(token)
    if index > len(container) or (index == len(container) and not allow_end):
        raise PatchError(f"array index {index} out of bounds", 422)
    return index


def _ptr_get(doc: Any, path: list[str]) -> Any:
    node = doc
    for token in path:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"missing key {token!r}", 422)
            node = node[token]
        elif isinstance(node, list):
            node = node[_list_index(node, token, allow_end=False)]
        else:
            raise PatchError(f"cannot traverse into a scalar at {token!r}", 422)
    return node


def _ptr_add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = _ptr_get(doc, path[:-1])
    token = path[-1]
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, token, allow_end=True), value)
    else:
        raise PatchError(f"cannot add to a scalar at {token!r}", 422)
    return doc


def _ptr_remove(doc: Any, path: list[str]) -> Any:
    if not path:
        raise PatchError("cannot remove the whole document", 422)
    parent = _ptr_get(doc, path[:-1])
    token = path[-1]
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"missing key {token!r}", 422)
        del parent[token]
    elif isinstance(parent, list):
        del parent[_list_index(parent, token, allow_end=False)]
    else:
        raise PatchError(f"cannot remove from a scalar at {token!r}", 422)
    return doc


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    return _scalar_key(a) == _scalar_key(b)
