"""Tests of strategic_merge: the three PATCH content types the apiserver accepts.

Expected results follow upstream ``k8s.io/apimachinery/pkg/util/strategicpatch``
(ordering included), RFC 7386 (its appendix examples) and RFC 6902.

Run: cd /work/main && .venv/bin/python -m unittest discover -s tests/emulator -p 'test_strategic_merge.py' -v
"""

from __future__ import annotations

import copy
import json
import sys
import unittest
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from strategic_merge import PatchError, json_merge_patch, json_patch, strategic_merge_patch  # noqa: E402


def deployment() -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "finalizers": ["a", "b", "c"], "labels": {"app": "web", "tier": "front"}},
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "repo/app:1",
                            "args": ["--a", "--b"],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}],
                            "volumeMounts": [{"mountPath": "/data", "name": "data"}],
                        },
                        {"name": "sidecar", "image": "repo/proxy:1"},
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cache", "emptyDir": {}}],
                    "imagePullSecrets": [{"name": "registry"}],
                }
            },
        },
        "status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]},
    }


def pod_patch(**fields: Any) -> dict[str, Any]:
    return {"spec": {"template": {"spec": fields}}}


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def container(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod(obj)["containers"] if c["name"] == name)


class StrategicMergePatchTest(unittest.TestCase):
    def setUp(self) -> None:
        self.original = deployment()
        self.pristine = copy.deepcopy(self.original)

    def tearDown(self) -> None:
        self.assertEqual(self.original, self.pristine, "the original must never be mutated")

    def apply(self, patch: dict[str, Any]) -> dict[str, Any]:
        pristine_patch = copy.deepcopy(patch)
        result = strategic_merge_patch(self.original, patch)
        self.assertEqual(patch, pristine_patch, "the patch must never be mutated")
        self.assertNotIn('"$', json.dumps(result), "directives are never stored")
        return result

    def test_patching_one_container_keeps_the_others(self) -> None:
        result = self.apply(pod_patch(containers=[{"name": "app", "image": "repo/app:2"}]))
        self.assertEqual([c["name"] for c in pod(result)["containers"]], ["app", "sidecar"])
        app = container(result, "app")
        self.assertEqual(app["image"], "repo/app:2")
        self.assertEqual(app["env"], self.original["spec"]["template"]["spec"]["containers"][0]["env"])
        self.assertEqual(container(result, "sidecar"), {"name": "sidecar", "image": "repo/proxy:1"})

    def test_a_new_container_goes_first_without_set_element_order(self) -> None:
        result = self.apply(pod_patch(containers=[{"name": "debug", "image": "busybox"}]))
        self.assertEqual([c["name"] for c in pod(result)["containers"]], ["debug", "app", "sidecar"])

    def test_nested_lists_merge_by_their_keys(self) -> None:
        patch = pod_patch(
            containers=[
                {
                    "name": "app",
                    "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                    "ports": [{"containerPort": 443, "name": "https"}],
                    "volumeMounts": [{"mountPath": "/data", "readOnly": True}],
                }
            ]
        )
        app = container(self.apply(patch), "app")
        self.assertEqual(app["env"], [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}])
        self.assertEqual(app["ports"], [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "name": "https"}])
        self.assertEqual(app["volumeMounts"], [{"mountPath": "/data", "name": "data", "readOnly": True}])

    def test_volumes_and_image_pull_secrets_merge_by_name(self) -> None:
        result = self.apply(
            pod_patch(volumes=[{"name": "cache", "emptyDir": {"medium": "Memory"}}], imagePullSecrets=[{"name": "other"}])
        )
        self.assertEqual(pod(result)["volumes"], [{"name": "data", "emptyDir": {}}, {"name": "cache", "emptyDir": {"medium": "Memory"}}])
        self.assertEqual(pod(result)["imagePullSecrets"], [{"name": "other"}, {"name": "registry"}])

    def test_lists_without_a_merge_key_are_replaced(self) -> None:
        result = self.apply(pod_patch(containers=[{"name": "app", "args": ["--c"]}]))
        self.assertEqual(container(result, "app")["args"], ["--c"])

    def test_null_deletes_a_key(self) -> None:
        result = self.apply({"metadata": {"labels": {"tier": None}}, "spec": {"replicas": None}})
        self.assertEqual(result["metadata"]["labels"], {"app": "web"})
        self.assertNotIn("replicas", result["spec"])

    def test_patch_delete_removes_a_list_element(self) -> None:
        result = self.apply(pod_patch(containers=[{"name": "sidecar", "$patch": "delete"}], volumes=[{"name": "cache", "$patch": "delete"}]))
        self.assertEqual([c["name"] for c in pod(result)["containers"]], ["app"])
        self.assertEqual([v["name"] for v in pod(result)["volumes"]], ["data"])

    def test_patch_replace_in_a_list_and_in_a_map(self) -> None:
        result = self.apply(pod_patch(containers=[{"name": "only", "image": "x"}, {"$patch": "replace"}]))
        self.assertEqual(pod(result)["containers"], [{"name": "only", "image": "x"}])
        result = self.apply({"metadata": {"labels": {"$patch": "replace", "new": "yes"}}})
        self.assertEqual(result["metadata"]["labels"], {"new": "yes"})
        result = self.apply({"metadata": {"labels": {"$patch": "delete"}}})
        self.assertEqual(result["metadata"]["labels"], {})

    def test_set_element_order(self) -> None:
        patch = pod_patch(
            **{"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}], "containers": [{"name": "app", "image": "repo/app:3"}]}
        )
        result = self.apply(patch)
        self.assertEqual([c["name"] for c in pod(result)["containers"]], ["sidecar", "app"])
        self.assertEqual(container(result, "app")["image"], "repo/app:3")
        with self.assertRaises(PatchError) as caught:
            strategic_merge_patch(
                self.original,
                pod_patch(**{"$setElementOrder/containers": [{"name": "sidecar"}], "containers": [{"name": "app", "image": "x"}]}),
            )
        self.assertEqual(caught.exception.code, 400)

    def test_retain_keys(self) -> None:
        result = self.apply(pod_patch(**{"$retainKeys": ["containers"], "containers": [{"name": "app", "image": "repo/app:4"}]}))
        self.assertEqual(set(pod(result)), {"containers"})

    def test_primitive_lists_with_a_merge_strategy(self) -> None:
        result = self.apply({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}})
        self.assertEqual(result["metadata"]["finalizers"], ["a", "c"])
        result = self.apply({"metadata": {"finalizers": ["d", "a"]}})
        self.assertEqual(result["metadata"]["finalizers"], ["d", "a", "b", "c"])

    def test_status_conditions_merge_by_type(self) -> None:
        result = self.apply({"status": {"conditions": [{"type": "Progressing", "status": "False"}]}})
        self.assertEqual(result["status"]["conditions"], [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "False"}])

    def test_directives_inside_new_values_are_applied_not_stored(self) -> None:
        patch = pod_patch(
            containers=[{"name": "new", "image": "x", "env": [{"name": "Q", "$patch": "delete"}, {"name": "R", "value": "1"}]}],
            initContainers=[{"name": "init", "image": "y"}],
        )
        result = self.apply(patch)
        self.assertEqual(container(result, "new")["env"], [{"name": "R", "value": "1"}])
        self.assertEqual(pod(result)["initContainers"], [{"name": "init", "image": "y"}])

    def test_errors_carry_the_apiserver_status(self) -> None:
        cases = [
            (pod_patch(containers=[{"image": "no-name"}]), 500),
            (pod_patch(**{"$unknown": 1}), 400),
            ({"metadata": {"labels": {"$patch": "explode"}}}, 400),
            (pod_patch(**{"$retainKeys": "containers"}), 400),
        ]
        for patch, code in cases:
            with self.subTest(patch=patch):
                with self.assertRaises(PatchError) as caught:
                    strategic_merge_patch(self.original, patch)
                self.assertEqual(caught.exception.code, code)
        with self.assertRaises(PatchError):
            strategic_merge_patch(self.original, ["not", "a", "map"])  # type: ignore[arg-type]


class JsonMergePatchTest(unittest.TestCase):
    def test_rfc7386_appendix_examples(self) -> None:
        cases = [
            ({"a": "b"}, {"a": "c"}, {"a": "c"}),
            ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
            ({"a": "b"}, {"a": None}, {}),
            ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
            ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
            ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
            ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
            ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
            (["a", "b"], ["c", "d"], ["c", "d"]),
            ({"a": "b"}, ["c"], ["c"]),
            ({"a": "foo"}, None, None),
            ({"a": "foo"}, "bar", "bar"),
            ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
            ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
            ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        ]
        for target, patch, expected in cases:
            with self.subTest(target=target, patch=patch):
                pristine = copy.deepcopy(target)
                self.assertEqual(json_merge_patch(target, patch), expected)
                self.assertEqual(target, pristine)

    def test_a_merge_patch_replaces_the_containers_list(self) -> None:
        result = json_merge_patch(deployment(), pod_patch(containers=[{"name": "app", "image": "repo/app:2"}]))
        self.assertEqual(pod(result)["containers"], [{"name": "app", "image": "repo/app:2"}])


class JsonPatchTest(unittest.TestCase):
    def test_rfc6902_operations(self) -> None:
        document = {"foo": ["bar", "baz"], "a": {"b": 1}, "x/y": 0, "m~n": 1}
        operations = [
            {"op": "add", "path": "/foo/1", "value": "qux"},
            {"op": "add", "path": "/foo/-", "value": "end"},
            {"op": "remove", "path": "/foo/0"},
            {"op": "replace", "path": "/a/b", "value": 2},
            {"op": "move", "from": "/a/b", "path": "/c"},
            {"op": "copy", "from": "/foo", "path": "/copy"},
            {"op": "test", "path": "/x~1y", "value": 0.0},
            {"op": "test", "path": "/m~0n", "value": 1},
            {"op": "add", "path": "/a/new", "value": {"deep": [1]}},
        ]
        pristine = copy.deepcopy(document)
        result = json_patch(document, operations)
        self.assertEqual(
            result,
            {
                "foo": ["qux", "baz", "end"],
                "a": {"new": {"deep": [1]}},
                "x/y": 0,
                "m~n": 1,
                "c": 2,
                "copy": ["qux", "baz", "end"],
            },
        )
        self.assertEqual(document, pristine)
        result["copy"].append("independent")
        self.assertEqual(result["foo"], ["qux", "baz", "end"], "copy makes a deep copy")

    def test_root_operations(self) -> None:
        self.assertEqual(json_patch({"a": 1}, [{"op": "replace", "path": "", "value": [1]}]), [1])
        self.assertEqual(json_patch({"a": 1}, [{"op": "add", "path": "", "value": {"b": 2}}]), {"b": 2})

    def test_failures_are_all_or_nothing_with_the_apiserver_status(self) -> None:
        document = {"a": [1, 2], "b": True}
        cases = [
            ([{"op": "test", "path": "/a/0", "value": 2}], 422),
            ([{"op": "test", "path": "/b", "value": 1}], 422),  # true is not 1
            ([{"op": "remove", "path": "/missing"}], 422),
            ([{"op": "replace", "path": "/missing", "value": 1}], 422),
            ([{"op": "add", "path": "/a/5", "value": 1}], 422),
            ([{"op": "add", "path": "/a/01", "value": 1}], 422),
            ([{"op": "remove", "path": "/a/-"}], 422),
            ([{"op": "move", "from": "/a", "path": "/a/0"}], 422),
            ([{"op": "add", "path": "/a/0"}], 422),
            ([{"op": "frobnicate", "path": "/a"}], 422),
            ([{"op": "add", "path": "no-slash", "value": 1}], 422),
            ([{"op": "add", "path": "/ok", "value": 1}, {"op": "remove", "path": "/nope"}], 422),
            ({"op": "add"}, 400),
            ([1], 400),
        ]
        for operations, code in cases:
            with self.subTest(operations=operations):
                pristine = copy.deepcopy(document)
                with self.assertRaises(PatchError) as caught:
                    json_patch(document, operations)
                self.assertEqual(caught.exception.code, code)
                self.assertEqual(document, pristine)


if __name__ == "__main__":
    unittest.main()
