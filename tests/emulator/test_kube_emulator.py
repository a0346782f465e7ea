"""Tests of kube_emulator: the apiserver rules the Rust client relies on.

Run: cd /work/main && .venv/bin/python -m unittest discover -s tests/emulator -p 'test_k*.py' -v

Every wait is bounded: reads have a socket timeout, and waits for the
rollout driver read a watch stream until a predicate holds or a deadline
passes (no sleeping polls).
"""

from __future__ import annotations

import http.client
import json
import ssl
import sys
import threading
import time
import unittest
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kube_emulator import ApiError, KubeEmulator, parse_label_selector, static_token_verifier  # noqa: E402

TOKEN = "tok"
STEP = 0.05
DEPLOYMENTS = "/apis/apps/v1/namespaces/shop/deployments"
PODS = "/api/v1/namespaces/shop/pods"
REPLICASETS = "/apis/apps/v1/namespaces/shop/replicasets"
SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def deployment(name: str = "web", image: str = "repo/app:v1", replicas: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
            **spec,
        },
    }


def new_emulator(**options: Any) -> KubeEmulator:
    emulator = KubeEmulator(
        host="127.0.0.1", port=0, token_verifier=static_token_verifier({TOKEN: "admin"}), step_seconds=STEP, **options
    )
    emulator.start()
    return emulator


class Client:
    """One keep-alive HTTPS connection trusting only the emulator's CA."""

    def __init__(self, emulator: KubeEmulator, timeout: float = 5.0) -> None:
        self.port = int(emulator.server_url.rsplit(":", 1)[1])
        self.context = ssl.create_default_context(cadata=emulator.ca_pem.decode())
        self.timeout = timeout
        self.connection = self.connect()

    def connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=self.timeout)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        token: str | None = TOKEN,
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        return response.status, json.loads(response.read())

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        status, body = self.request("POST", DEPLOYMENTS, obj)
        assert status == 201, body
        return body

    def get(self, name: str = "web") -> dict[str, Any]:
        status, body = self.request("GET", f"{DEPLOYMENTS}/{name}")
        assert status == 200, body
        return body

    def patch(self, patch: Any, content_type: str = SMP, name: str = "web") -> tuple[int, dict[str, Any]]:
        return self.request("PATCH", f"{DEPLOYMENTS}/{name}", patch, content_type)

    def watch(self, path: str) -> "Watch":
        return Watch(self.connect(), path)

    def close(self) -> None:
        self.connection.close()


class Watch:
    """A watch stream read event by event (each read bounded by the socket timeout)."""

    def __init__(self, connection: http.client.HTTPSConnection, path: str) -> None:
        self.connection = connection
        connection.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"})
        self.response = connection.getresponse()
        assert self.response.status == 200, self.response.read()
        assert self.response.getheader("Transfer-Encoding") == "chunked"
        self.buffer = b""

    def next(self) -> dict[str, Any] | None:
        """The next event, or None when the stream ended with the chunked terminator.

        Reads with ``read1``: ``HTTPResponse.readline`` would report a stream cut
        mid-body as a clean end, while ``read1`` raises ``IncompleteRead``.
        """
        while b"\n" not in self.buffer:
            data = self.response.read1(65536)
            if not data:
                assert not self.buffer, f"stream ended inside an event: {self.buffer!r}"
                return None
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> list[dict[str, Any]]:
        """Events up to and including the first one satisfying ``predicate``."""
        deadline = time.monotonic() + timeout
        events = []
        while time.monotonic() < deadline:
            event = self.next()
            if event is None:
                raise AssertionError(f"stream ended before the condition held; saw {len(events)} events")
            events.append(event)
            if predicate(event):
                return events
        raise AssertionError(f"condition not met within {timeout}s; last event {events[-1:]}")

    def close(self) -> None:
        self.connection.close()


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), None)


def progressing_reason(event: dict[str, Any]) -> str | None:
    cond = condition(event["object"], "Progressing")
    return cond["reason"] if cond else None


class EmulatorTestCase(unittest.TestCase):
    emulator: KubeEmulator

    @classmethod
    def setUpClass(cls) -> None:
        cls.emulator = new_emulator(bookmark_seconds=0.2)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.emulator.stop()

    def setUp(self) -> None:
        self.emulator.reset()
        self.client = Client(self.emulator)
        self.addCleanup(self.client.close)

    def watch(self, path: str) -> Watch:
        stream = self.client.watch(path)
        self.addCleanup(stream.close)
        return stream

    def watch_web(self, resource_version: str | None = None) -> Watch:
        query = "watch=true&fieldSelector=metadata.name%3Dweb"
        if resource_version is not None:
            query += f"&resourceVersion={resource_version}"
        return self.watch(f"{DEPLOYMENTS}?{query}")

    def wait_for_reason(self, reason: str, timeout: float = 5.0) -> dict[str, Any]:
        """The Deployment once its Progressing condition has ``reason`` (read from a watch)."""
        return self.watch_web().until(lambda e: progressing_reason(e) == reason, timeout)[-1]["object"]


class TransportTest(EmulatorTestCase):
    def test_tls_verifies_with_the_ca_and_fails_with_a_default_context(self) -> None:
        status, version = self.client.request("GET", "/version")
        self.assertEqual(status, 200)
        self.assertEqual(version["major"], "1")
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.client.port, context=ssl.create_default_context(), timeout=5
        )
        with self.assertRaises(ssl.SSLCertVerificationError):
            connection.request("GET", "/version")
        connection.close()

    def test_keep_alive_serves_many_requests_on_one_connection(self) -> None:
        for _ in range(3):
            self.assertEqual(self.client.request("GET", "/version")[0], 200)
        sock = self.client.connection.sock
        self.assertEqual(self.client.request("GET", "/api")[0], 200)
        self.assertIs(self.client.connection.sock, sock)

    def test_missing_or_wrong_token_is_unauthorized(self) -> None:
        expected = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        }
        self.assertEqual(self.client.request("GET", DEPLOYMENTS, token=None), (401, expected))
        self.assertEqual(self.client.request("GET", DEPLOYMENTS, token="nope"), (401, expected))
        # A rejected body-carrying request leaves the keep-alive connection usable.
        self.assertEqual(self.client.request("POST", DEPLOYMENTS, deployment(), token="nope")[0], 401)
        self.assertEqual(self.client.request("GET", DEPLOYMENTS)[0], 200)

    def test_discovery_lists_resources_with_verbs(self) -> None:
        status, apps = self.client.request("GET", "/apis/apps/v1")
        self.assertEqual(status, 200)
        verbs = {r["name"]: r["verbs"] for r in apps["resources"]}
        self.assertIn("patch", verbs["deployments"])
        self.assertEqual(verbs["replicasets"], ["get", "list", "watch"])
        self.assertIn("deployments/status", verbs)
        core = self.client.request("GET", "/api/v1")[1]
        self.assertEqual({r["name"] for r in core["resources"]}, {"pods", "namespaces"})
        self.assertEqual(self.client.request("GET", "/apis")[1]["groups"][0]["name"], "apps")
        self.assertEqual(self.client.request("GET", "/api")[1]["versions"], ["v1"])

    def test_any_namespace_exists(self) -> None:
        status, namespace = self.client.request("GET", "/api/v1/namespaces/whatever")
        self.assertEqual(status, 200)
        self.assertEqual(namespace["status"]["phase"], "Active")
        self.assertEqual(namespace["metadata"]["name"], "whatever")

    def test_not_found_wording(self) -> None:
        status, body = self.client.request("GET", f"{DEPLOYMENTS}/web")
        self.assertEqual(status, 404)
        self.assertEqual(
            body,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": 'deployments.apps "web" not found',
                "reason": "NotFound",
                "details": {"name": "web", "group": "apps", "kind": "deployments"},
                "code": 404,
            },
        )
        status, body = self.client.request("GET", f"{PODS}/x")
        self.assertEqual((status, body["message"], body["details"]), (404, 'pods "x" not found', {"name": "x", "kind": "pods"}))
        status, body = self.client.request("GET", "/apis/batch/v1/jobs")
        self.assertEqual((status, body["reason"]), (404, "NotFound"))
        self.assertEqual(self.client.request("DELETE", f"{DEPLOYMENTS}/web")[0], 404)

    def test_pods_and_replicasets_are_read_only(self) -> None:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}
        status, body = self.client.request("POST", PODS, pod)
        self.assertEqual((status, body["reason"], body["code"]), (405, "MethodNotAllowed", 405))
        self.assertEqual(self.client.request("DELETE", f"{REPLICASETS}/x")[0], 405)
        self.assertEqual(self.client.request("POST", "/apis/apps/v1/deployments", deployment())[0], 405)


class ObjectRulesTest(EmulatorTestCase):
    def test_create_sets_server_fields_and_defaults(self) -> None:
        created = self.client.create(deployment(image="repo/app"))
        meta = created["metadata"]
        self.assertEqual(meta["generation"], 1)
        self.assertEqual(meta["namespace"], "shop")
        self.assertRegex(meta["resourceVersion"], r"^\d+$")
        self.assertRegex(meta["creationTimestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertRegex(meta["uid"], r"^[0-9a-f-]{36}$")
        self.assertEqual(created["status"], {})
        spec = created["spec"]
        self.assertEqual(spec["strategy"], {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        self.assertEqual((spec["progressDeadlineSeconds"], spec["revisionHistoryLimit"]), (600, 10))
        pod = spec["template"]["spec"]
        self.assertEqual((pod["restartPolicy"], pod["dnsPolicy"]), ("Always", "ClusterFirst"))
        container = pod["containers"][0]
        self.assertEqual(container["imagePullPolicy"], "Always")  # no tag means :latest
        self.assertEqual(container["terminationMessagePath"], "/dev/termination-log")
        self.assertEqual(container["terminationMessagePolicy"], "File")
        self.assertEqual(self.emulator.get_object("deployments", "shop", "web")["metadata"]["uid"], meta["uid"])

    def test_pull_policy_default_depends_on_the_tag(self) -> None:
        created = self.client.create(deployment(image="registry:5000/app:1.2"))
        self.assertEqual(created["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent")
        created = self.client.create(deployment(name="latest", image="app:latest"))
        self.assertEqual(created["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "Always")

    def test_create_twice_is_already_exists(self) -> None:
        self.client.create(deployment())
        status, body = self.client.request("POST", DEPLOYMENTS, deployment())
        self.assertEqual((status, body["reason"], body["message"]), (409, "AlreadyExists", 'deployments.apps "web" already exists'))

    def test_generation_follows_spec_changes_only(self) -> None:
        created = self.client.create(deployment())
        self.wait_for_reason("NewReplicaSetAvailable")  # quiescent: the driver writes no more
        versions = [int(created["metadata"]["resourceVersion"])]

        status, annotated = self.client.patch({"metadata": {"annotations": {"team": "shop"}}})
        self.assertEqual((status, annotated["metadata"]["generation"]), (200, 1))
        versions.append(int(annotated["metadata"]["resourceVersion"]))

        # Re-sending defaulted values changes nothing: same resourceVersion, no event.
        status, same = self.client.patch({"spec": {"revisionHistoryLimit": 10}}, MERGE)
        self.assertEqual(same["metadata"]["resourceVersion"], annotated["metadata"]["resourceVersion"])

        status, scaled = self.client.patch({"spec": {"replicas": 2}}, MERGE)
        self.assertEqual((status, scaled["metadata"]["generation"]), (200, 2))
        versions.append(int(scaled["metadata"]["resourceVersion"]))

        status, faked = self.client.patch({"status": {"replicas": 99}}, MERGE)
        self.assertEqual(faked["metadata"]["generation"], 2)
        self.assertNotEqual(faked["status"].get("replicas"), 99, "status is ignored on the main resource")
        self.assertEqual(versions, sorted(set(versions)), "resourceVersion strictly increases")

    def test_resource_version_is_one_counter_across_kinds(self) -> None:
        self.client.create(deployment(replicas=1))
        self.wait_for_reason("NewReplicaSetAvailable")
        versions = []
        for path in (DEPLOYMENTS, REPLICASETS, PODS):
            listing = self.client.request("GET", path)[1]
            versions += [int(item["metadata"]["resourceVersion"]) for item in listing["items"]]
            self.assertNotIn("kind", listing["items"][0], "typed list items carry no kind")
            self.assertGreaterEqual(int(listing["metadata"]["resourceVersion"]), max(versions))
        self.assertEqual(len(versions), len(set(versions)))

    def test_strategic_merge_of_one_container_keeps_the_others(self) -> None:
        obj = deployment()
        obj["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "repo/proxy:1"})
        self.client.create(obj)
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "repo/app:v2"}]}}}}
        status, patched = self.client.patch(patch, SMP)
        self.assertEqual(status, 200)
        containers = {c["name"]: c["image"] for c in patched["spec"]["template"]["spec"]["containers"]}
        self.assertEqual(containers, {"app": "repo/app:v2", "sidecar": "repo/proxy:1"})
        self.assertEqual(patched["metadata"]["generation"], 2)

    def test_merge_patch_replaces_the_containers_list(self) -> None:
        obj = deployment()
        obj["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "repo/proxy:1"})
        self.client.create(obj)
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "repo/app:v2"}]}}}}
        status, patched = self.client.patch(patch, MERGE)
        self.assertEqual(status, 200)
        containers = patched["spec"]["template"]["spec"]["containers"]
        self.assertEqual([c["name"] for c in containers], ["app"])
        self.assertEqual(containers[0]["imagePullPolicy"], "IfNotPresent", "the replaced list is defaulted again")

    def test_strategic_merge_directives_are_never_stored(self) -> None:
        obj = deployment()
        obj["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
        self.client.create(obj)
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "app"}],
                        "containers": [{"name": "app", "env": [{"name": "A", "$patch": "delete"}]}],
                    }
                }
            }
        }
        status, patched = self.client.patch(patch, SMP)
        self.assertEqual(status, 200)
        self.assertEqual(patched["spec"]["template"]["spec"]["containers"][0]["env"], [{"name": "B", "value": "2"}])
        self.assertNotIn("$", json.dumps(patched))

    def test_json_patch(self) -> None:
        self.client.create(deployment())
        ops = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "repo/app:v3"}]
        status, patched = self.client.patch(ops, JSON_PATCH)
        self.assertEqual((status, patched["spec"]["template"]["spec"]["containers"][0]["image"]), (200, "repo/app:v3"))
        status, body = self.client.patch([{"op": "test", "path": "/spec/replicas", "value": 7}], JSON_PATCH)
        self.assertEqual((status, body["reason"]), (422, "Invalid"))

    def test_apply_patch_is_unsupported_media_type(self) -> None:
        self.client.create(deployment())
        status, body = self.client.patch(b"spec: {}", "application/apply-patch+yaml")
        self.assertEqual((status, body["reason"], body["code"]), (415, "UnsupportedMediaType", 415))

    def test_unparseable_bodies_are_bad_requests(self) -> None:
        self.assertEqual(self.client.request("POST", DEPLOYMENTS, b"{not json")[1]["reason"], "BadRequest")
        wrong_type = deployment()
        wrong_type["spec"]["replicas"] = "three"
        status, body = self.client.request("POST", DEPLOYMENTS, wrong_type)
        self.assertEqual((status, body["reason"]), (400, "BadRequest"))
        self.assertIn("spec.replicas", body["message"])
        self.client.create(deployment())
        self.assertEqual(self.client.patch(b"{", SMP)[0], 400)

    def test_stale_resource_version_is_a_conflict(self) -> None:
        created = self.client.create(deployment())
        stale = created["metadata"]["resourceVersion"]
        self.client.patch({"metadata": {"labels": {"tier": "web"}}})
        message = (
            'Operation cannot be fulfilled on deployments.apps "web": the object has been modified; '
            "please apply your changes to the latest version and try again"
        )
        status, body = self.client.request("PUT", f"{DEPLOYMENTS}/web", created)
        self.assertEqual((status, body["reason"], body["message"]), (409, "Conflict", message))
        status, body = self.client.patch({"metadata": {"resourceVersion": stale}, "spec": {"replicas": 3}}, MERGE)
        self.assertEqual((status, body["message"]), (409, message))
        # With the current resourceVersion (or none at all) the update goes through.
        current = self.client.get()
        current["spec"]["replicas"] = 2
        self.assertEqual(self.client.request("PUT", f"{DEPLOYMENTS}/web", current)[0], 200)
        del current["metadata"]["resourceVersion"]
        current["spec"]["replicas"] = 4
        status, replaced = self.client.request("PUT", f"{DEPLOYMENTS}/web", current)
        self.assertEqual((status, replaced["spec"]["replicas"]), (200, 4))

    def test_validation_errors_are_invalid_with_causes(self) -> None:
        obj = deployment()
        obj["spec"]["selector"] = {"matchLabels": {"app": "other"}}
        status, body = self.client.request("POST", DEPLOYMENTS, obj)
        self.assertEqual((status, body["reason"]), (422, "Invalid"))
        self.assertEqual(body["details"]["kind"], "Deployment")
        self.assertEqual(
            body["details"]["causes"],
            [
                {
                    "reason": "FieldValueInvalid",
                    "message": 'Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`',
                    "field": "spec.template.metadata.labels",
                }
            ],
        )
        self.assertTrue(body["message"].startswith('Deployment.apps "web" is invalid: spec.template.metadata.labels: '))

        obj = deployment()
        obj["spec"]["template"]["spec"]["containers"] = [{"name": "app", "image": "a"}, {"name": "app"}]
        status, body = self.client.request("POST", DEPLOYMENTS, obj)
        fields = {(c["field"], c["reason"]) for c in body["details"]["causes"]}
        self.assertEqual(
            fields,
            {
                ("spec.template.spec.containers[1].name", "FieldValueDuplicate"),
                ("spec.template.spec.containers[1].image", "FieldValueRequired"),
            },
        )
        self.assertIn("[", body["message"])

    def test_selector_is_immutable(self) -> None:
        self.client.create(deployment())
        patch = {"spec": {"selector": {"matchLabels": {"app": "web", "x": "y"}}, "template": {"metadata": {"labels": {"x": "y"}}}}}
        status, body = self.client.patch(patch)
        self.assertEqual((status, body["details"]["causes"][0]["field"]), (422, "spec.selector"))

    def test_status_subresource_changes_only_status(self) -> None:
        created = self.client.create(deployment())
        metadata = {k: v for k, v in created["metadata"].items() if k != "resourceVersion"}
        body = {**created, "metadata": metadata, "spec": {**created["spec"], "replicas": 9}, "status": {"replicas": 5}}
        status, updated = self.client.request("PUT", f"{DEPLOYMENTS}/web/status", body)
        self.assertEqual(status, 200)
        self.assertEqual(updated["spec"]["replicas"], 1, "spec changes through /status are ignored")
        self.assertEqual(updated["metadata"]["generation"], 1)
        self.assertEqual(updated["status"], {"replicas": 5})
        status, patched = self.client.request("PATCH", f"{DEPLOYMENTS}/web/status", {"status": {"readyReplicas": 1}}, MERGE)
        self.assertEqual((status, patched["status"]["readyReplicas"]), (200, 1))
        self.assertEqual(self.client.request("GET", f"{DEPLOYMENTS}/web/status")[1]["kind"], "Deployment")
        self.assertEqual(self.client.request("GET", f"{DEPLOYMENTS}/web/scale")[0], 404)

    def test_dry_run_validates_without_persisting(self) -> None:
        status, body = self.client.request("POST", f"{DEPLOYMENTS}?dryRun=All", deployment())
        self.assertEqual((status, body["metadata"]["generation"]), (201, 1))
        self.assertNotIn("resourceVersion", body["metadata"])
        self.assertIsNone(self.emulator.get_object("deployments", "shop", "web"))
        bad = deployment()
        bad["spec"]["selector"] = {"matchLabels": {"app": "x"}}
        self.assertEqual(self.client.request("POST", f"{DEPLOYMENTS}?dryRun=All", bad)[0], 422)
        created = self.client.create(deployment())
        status, body = self.client.request("PATCH", f"{DEPLOYMENTS}/web?dryRun=All", {"spec": {"replicas": 5}}, MERGE)
        self.assertEqual((status, body["spec"]["replicas"]), (200, 5))
        self.assertEqual(self.client.get()["spec"]["replicas"], created["spec"]["replicas"])

    def test_delete_answers_success_and_collects_dependents(self) -> None:
        self.client.create(deployment(replicas=2))
        self.wait_for_reason("NewReplicaSetAvailable")
        pods = self.watch(f"{PODS}?watch=1&labelSelector=app%3Dweb")
        status, body = self.client.request("DELETE", f"{DEPLOYMENTS}/web", {"preconditions": {"uid": "wrong"}})
        self.assertEqual((status, body["reason"]), (409, "Conflict"))
        status, body = self.client.request("DELETE", f"{DEPLOYMENTS}/web")
        self.assertEqual((status, body["status"], body["details"]["name"]), (200, "Success", "web"))
        deleted: set[str] = set()

        def both_pods_deleted(event: dict[str, Any]) -> bool:
            if event["type"] == "DELETED":
                deleted.add(event["object"]["metadata"]["name"])
            return len(deleted) == 2

        pods.until(both_pods_deleted)
        self.assertEqual(self.client.request("GET", REPLICASETS)[1]["items"], [])

    def test_label_selector_parsing(self) -> None:
        labels = {"app": "web", "tier": "front"}
        cases = {
            "app=web": True,
            "app==web": True,
            "app!=web": False,
            "app in (web, api)": True,
            "app notin (web)": False,
            "tier": True,
            "!tier": False,
            "!missing,app=web,tier in (front)": True,
            "missing!=x": True,
            "": True,
        }
        for text, expected in cases.items():
            with self.subTest(text=text):
                self.assertEqual(all(r.matches(labels) for r in parse_label_selector(text)), expected)
        with self.assertRaises(ApiError):
            parse_label_selector("app=(")

    def test_lists_honour_label_and_field_selectors(self) -> None:
        self.client.create(deployment("web", replicas=2))
        self.client.create(deployment("api", replicas=1))
        self.wait_for_reason("NewReplicaSetAvailable")
        self.watch(f"{DEPLOYMENTS}?watch=1&fieldSelector=metadata.name%3Dapi").until(
            lambda e: progressing_reason(e) == "NewReplicaSetAvailable"
        )

        def names(path: str, selector: str) -> list[str]:
            status, listing = self.client.request("GET", f"{path}?{selector}")
            self.assertEqual(status, 200, listing)
            return sorted(item["metadata"]["name"] for item in listing["items"])

        self.assertEqual(len(names(PODS, "labelSelector=" + quote("app in (web,api)"))), 3)
        self.assertEqual(len(names(PODS, "labelSelector=" + quote("app!=web"))), 1)
        self.assertEqual(len(names(PODS, "labelSelector=" + quote("app,!nope,pod-template-hash"))), 3)
        self.assertEqual(names(DEPLOYMENTS, "fieldSelector=metadata.name%3Dapi"), ["api"])
        self.assertEqual(names("/apis/apps/v1/deployments", "labelSelector=app%3Dweb"), ["web"])
        self.assertEqual(len(names(PODS, "fieldSelector=status.phase%3DRunning")), 3)
        self.assertEqual(self.client.request("GET", f"{DEPLOYMENTS}?fieldSelector=spec.replicas%3D1")[0], 400)
        first = self.client.request("GET", f"{DEPLOYMENTS}?limit=1")[1]
        self.assertEqual(([i["metadata"]["name"] for i in first["items"]], first["metadata"]["remainingItemCount"]), (["api"], 1))
        rest = self.client.request("GET", f"{DEPLOYMENTS}?limit=1&continue={first['metadata']['continue']}")[1]
        self.assertEqual([i["metadata"]["name"] for i in rest["items"]], ["web"])

    def test_put_object_seeds_through_validation(self) -> None:
        seeded = self.emulator.put_object("deployments", "shop", deployment(replicas=2))
        self.assertEqual(seeded["metadata"]["generation"], 1)
        self.assertEqual(self.client.get()["metadata"]["uid"], seeded["metadata"]["uid"])
        replaced = self.emulator.put_object("deployments", "shop", deployment(replicas=3))
        self.assertEqual((replaced["metadata"]["generation"], replaced["metadata"]["uid"]), (2, seeded["metadata"]["uid"]))
        bad = deployment()
        bad["spec"]["template"]["spec"]["containers"] = []
        with self.assertRaises(ApiError) as caught:
            self.emulator.put_object("deployments", "shop", bad)
        self.assertEqual(caught.exception.code, 422)


class WatchTest(EmulatorTestCase):
    def test_watch_sees_added_then_modified_with_increasing_versions(self) -> None:
        stream = self.watch(f"{DEPLOYMENTS}?watch=true")
        self.client.create(deployment(replicas=2))
        events = stream.until(lambda e: progressing_reason(e) == "NewReplicaSetAvailable")
        self.assertEqual(events[0]["type"], "ADDED")
        self.assertEqual({e["type"] for e in events[1:]}, {"MODIFIED"})
        versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
        self.assertEqual(versions, sorted(set(versions)))
        final = events[-1]["object"]
        self.assertEqual(final["status"]["observedGeneration"], final["metadata"]["generation"])

    def test_watch_from_a_resource_version_replays(self) -> None:
        created = self.client.create(deployment())
        self.client.patch({"metadata": {"labels": {"a": "1"}}})
        self.client.patch({"metadata": {"labels": {"b": "2"}}})
        stream = self.watch(f"{DEPLOYMENTS}?watch=1&resourceVersion={created['metadata']['resourceVersion']}")
        # The driver's status writes interleave with ours; every event after the RV is replayed in order.
        events = stream.until(lambda e: "b" in e["object"]["metadata"]["labels"])
        self.assertEqual({e["type"] for e in events}, {"MODIFIED"})
        labels = [sorted(set(e["object"]["metadata"]["labels"]) - {"app"}) for e in events]
        self.assertIn(["a"], labels)
        self.assertEqual(labels[-1], ["a", "b"])
        self.assertNotIn([], labels[labels.index(["a"]):])
        versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
        self.assertGreater(versions[0], int(created["metadata"]["resourceVersion"]))
        self.assertEqual(versions, sorted(set(versions)))

    def test_watch_without_resource_version_starts_with_synthetic_added(self) -> None:
        self.client.create(deployment("web"))
        self.client.create(deployment("api"))
        stream = self.watch(f"{DEPLOYMENTS}?watch=1&resourceVersion=0")
        names = sorted(stream.next()["object"]["metadata"]["name"] for _ in range(2))
        self.assertEqual(names, ["api", "web"])

    def test_too_old_resource_version_is_expired(self) -> None:
        emulator = new_emulator(history_size=3)
        self.addCleanup(emulator.stop)
        client = Client(emulator)
        self.addCleanup(client.close)
        client.create(deployment(image="repo/app:bad"))  # a stuck rollout writes only a few events
        emulator.mark_image_bad("repo/app:bad")
        for n in range(3):
            client.patch({"metadata": {"annotations": {"n": str(n)}}})
        stream = client.watch(f"{DEPLOYMENTS}?watch=1&resourceVersion=1")
        self.addCleanup(stream.close)
        event = stream.next()
        self.assertEqual(event["type"], "ERROR")
        status = event["object"]
        self.assertEqual((status["kind"], status["code"], status["reason"]), ("Status", 410, "Expired"))
        self.assertRegex(status["message"], r"^too old resource version: 1 \(\d+\)$")
        self.assertIsNone(stream.next(), "the stream ends after the ERROR event")

    def test_timeout_seconds_ends_the_stream_cleanly(self) -> None:
        started = time.monotonic()
        stream = self.watch(f"{DEPLOYMENTS}?watch=1&timeoutSeconds=1")
        self.assertIsNone(stream.next())
        self.assertLess(time.monotonic() - started, 3)
        # The chunked terminator leaves the connection reusable.
        stream.connection.request("GET", "/version", headers={"Authorization": f"Bearer {TOKEN}"})
        self.assertEqual(stream.connection.getresponse().status, 200)

    def test_bookmarks_carry_the_current_resource_version(self) -> None:
        created = self.client.create(deployment(image="repo/app:bad"))
        self.emulator.mark_image_bad("repo/app:bad")
        stream = self.watch(f"{PODS}?watch=1&allowWatchBookmarks=true&timeoutSeconds=2&resourceVersion={created['metadata']['resourceVersion']}")
        bookmark = stream.until(lambda e: e["type"] == "BOOKMARK")[-1]["object"]
        self.assertEqual(set(bookmark), {"kind", "apiVersion", "metadata"})
        self.assertEqual((bookmark["kind"], bookmark["apiVersion"]), ("Pod", "v1"))
        self.assertGreater(int(bookmark["metadata"]["resourceVersion"]), int(created["metadata"]["resourceVersion"]))

    def test_streaming_list_ends_initial_events_with_a_bookmark(self) -> None:
        self.client.create(deployment("web"))
        self.client.create(deployment("api"))
        stream = self.watch(
            f"{DEPLOYMENTS}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
        )
        events = [stream.next() for _ in range(3)]
        self.assertEqual([e["type"] for e in events], ["ADDED", "ADDED", "BOOKMARK"])
        self.assertEqual(events[2]["object"]["metadata"]["annotations"], {"k8s.io/initial-events-end": "true"})

    def test_field_selector_watch_sees_only_that_object(self) -> None:
        stream = self.watch_web()
        self.client.create(deployment("api"))
        self.client.create(deployment("web"))
        event = stream.next()
        self.assertEqual((event["type"], event["object"]["metadata"]["name"]), ("ADDED", "web"))

    def test_label_change_moves_objects_in_and_out_of_a_watch(self) -> None:
        self.client.create(deployment())
        stream = self.watch(f"{DEPLOYMENTS}?watch=1&labelSelector=tier%3Dfront")
        self.client.patch({"metadata": {"labels": {"tier": "front"}}})
        self.assertEqual(stream.next()["type"], "ADDED")
        self.client.patch({"metadata": {"labels": {"tier": None}}})
        stream.until(lambda e: e["type"] == "DELETED")

    def test_dropped_watch_is_cut_after_k_events(self) -> None:
        for name in ("a", "b", "c"):
            self.client.create(deployment(name))
        self.emulator.drop_watches_after(events=2)
        stream = self.watch(f"{DEPLOYMENTS}?watch=1")
        self.assertEqual([stream.next()["type"], stream.next()["type"]], ["ADDED", "ADDED"])
        with self.assertRaises((http.client.IncompleteRead, ConnectionError)):
            stream.next()
        # Only the next watch was cut; this one gets all three.
        stream = self.watch(f"{DEPLOYMENTS}?watch=1&timeoutSeconds=1")
        self.assertEqual(len([stream.next() for _ in range(3)]), 3)

    def test_a_cut_scoped_to_a_path_spares_other_watches(self) -> None:
        for name in ("a", "b"):
            self.client.create(deployment(name))
        self.emulator.drop_watches_after(events=0, path_regex="/namespaces/elsewhere/")
        # A watch of another path is not cut, and does not use the cut up.
        stream = self.watch(f"{DEPLOYMENTS}?watch=1&timeoutSeconds=1")
        self.assertEqual(len([stream.next() for _ in range(2)]), 2)
        elsewhere = self.watch("/apis/apps/v1/namespaces/elsewhere/deployments?watch=1")
        with self.assertRaises((http.client.IncompleteRead, ConnectionError)):
            elsewhere.next()

    def test_reset_ends_open_watches(self) -> None:
        stream = self.watch(f"{DEPLOYMENTS}?watch=1")
        self.emulator.reset()
        self.assertIsNone(stream.next())


class RolloutTest(EmulatorTestCase):
    def test_good_image_rolls_out(self) -> None:
        stream = self.watch_web()
        self.client.create(deployment(replicas=3))
        events = stream.until(lambda e: progressing_reason(e) == "NewReplicaSetAvailable")
        first_status = next(e["object"]["status"] for e in events if e["object"]["status"])
        self.assertEqual(first_status["observedGeneration"], 1)
        self.assertEqual(condition(events[1]["object"], "Progressing")["reason"], "ReplicaSetUpdated")
        final = events[-1]["object"]
        status = final["status"]
        self.assertEqual(
            [status.get(k) for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")], [3, 3, 3, 3]
        )
        self.assertNotIn("unavailableReplicas", status)
        self.assertEqual(status["observedGeneration"], final["metadata"]["generation"])
        self.assertEqual(condition(final, "Available")["reason"], "MinimumReplicasAvailable")
        progressing = condition(final, "Progressing")
        self.assertEqual(progressing["status"], "True")
        self.assertRegex(progressing["message"], r'^ReplicaSet "web-[a-z0-9]+" has successfully progressed\.$')
        self.assertTrue({"lastUpdateTime", "lastTransitionTime"} <= set(progressing))
        self.assertTrue(any(e["object"]["status"].get("unavailableReplicas") for e in events), "pods become ready step by step")

        replica_sets = self.client.request("GET", REPLICASETS)[1]["items"]
        self.assertEqual(len(replica_sets), 1)
        rs = replica_sets[0]
        template_hash = rs["metadata"]["labels"]["pod-template-hash"]
        self.assertEqual(rs["metadata"]["name"], f"web-{template_hash}")
        self.assertEqual(rs["metadata"]["ownerReferences"][0]["uid"], final["metadata"]["uid"])
        pods = self.client.request("GET", f"{PODS}?labelSelector=pod-template-hash%3D{template_hash}")[1]["items"]
        self.assertEqual(len(pods), 3)
        self.assertTrue(all(p["status"]["phase"] == "Running" for p in pods))
        self.assertTrue(all(p["metadata"]["ownerReferences"][0]["name"] == rs["metadata"]["name"] for p in pods))

    def test_bad_image_waits_then_exceeds_the_progress_deadline(self) -> None:
        self.client.create(deployment(replicas=2))
        self.wait_for_reason("NewReplicaSetAvailable")
        self.emulator.mark_image_bad("repo/app:bad", reason="ImagePullBackOff")
        patch = {"spec": {"progressDeadlineSeconds": 1, "template": {"spec": {"containers": [{"name": "app", "image": "repo/app:bad"}]}}}}
        started = time.monotonic()
        self.assertEqual(self.client.patch(patch)[0], 200)
        stuck = self.wait_for_reason("ProgressDeadlineExceeded", timeout=4)
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        progressing = condition(stuck, "Progressing")
        self.assertEqual(progressing["status"], "False")
        self.assertRegex(progressing["message"], r'^ReplicaSet "web-[a-z0-9]+" has timed out progressing\.$')
        status = stuck["status"]
        self.assertEqual(status["availableReplicas"], 2, "old pods stay")
        self.assertGreaterEqual(status["updatedReplicas"], 1)
        self.assertGreaterEqual(status["unavailableReplicas"], 1)
        self.assertEqual(status["observedGeneration"], stuck["metadata"]["generation"])

        pods = self.client.request("GET", PODS)[1]["items"]
        bad = [p for p in pods if p["spec"]["containers"][0]["image"] == "repo/app:bad"]
        self.assertTrue(bad)
        for pod in bad:
            container = pod["status"]["containerStatuses"][0]
            self.assertFalse(container["ready"])
            self.assertEqual(
                container["state"]["waiting"], {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "repo/app:bad"'}
            )
        self.assertEqual(len(pods) - len(bad), 2)

    def test_crash_loop_restarts_climb(self) -> None:
        self.emulator.mark_image_bad("repo/app:crash", reason="CrashLoopBackOff")
        self.client.create(deployment(image="repo/app:crash"))
        pods = self.watch(f"{PODS}?watch=1")
        event = pods.until(lambda e: e["object"]["status"].get("containerStatuses", [{}])[0].get("restartCount", 0) >= 2)[-1]
        container = event["object"]["status"]["containerStatuses"][0]
        self.assertEqual(container["state"]["waiting"]["reason"], "CrashLoopBackOff")
        self.assertRegex(container["state"]["waiting"]["message"], r"^back-off 20s restarting failed container=app pod=web-")
        self.assertEqual(container["lastState"]["terminated"]["exitCode"], 1)
        self.assertFalse(container["ready"])

    def test_rollback_to_a_good_image_completes_and_removes_bad_pods(self) -> None:
        self.client.create(deployment(replicas=2))
        self.wait_for_reason("NewReplicaSetAvailable")
        good_rs = self.client.request("GET", REPLICASETS)[1]["items"][0]["metadata"]["name"]
        self.emulator.mark_image_bad("repo/app:bad")
        bad = {"spec": {"progressDeadlineSeconds": 1, "template": {"spec": {"containers": [{"name": "app", "image": "repo/app:bad"}]}}}}
        self.client.patch(bad)
        self.wait_for_reason("ProgressDeadlineExceeded", timeout=4)

        good = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "repo/app:v1"}]}}}}
        status, patched = self.client.patch(good)
        self.assertEqual((status, patched["metadata"]["generation"]), (200, 3))
        done = self.wait_for_reason("NewReplicaSetAvailable")
        self.assertEqual(done["status"]["updatedReplicas"], 2)
        self.assertEqual(done["status"]["observedGeneration"], 3)
        self.assertEqual(done["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3")
        self.assertIn(good_rs, condition(done, "Progressing")["message"], "the old ReplicaSet is reused")
        images = [p["spec"]["containers"][0]["image"] for p in self.client.request("GET", PODS)[1]["items"]]
        self.assertEqual(images, ["repo/app:v1", "repo/app:v1"])

    def test_scaling_adjusts_counts(self) -> None:
        self.client.create(deployment(replicas=1))
        self.wait_for_reason("NewReplicaSetAvailable")
        stream = self.watch_web()
        status, scaled = self.client.patch({"spec": {"replicas": 3}}, MERGE)
        self.assertEqual(scaled["metadata"]["generation"], 2)
        final = stream.until(lambda e: e["object"]["status"].get("availableReplicas") == 3)[-1]["object"]
        self.assertEqual(final["status"]["observedGeneration"], 2)
        self.assertEqual(len(self.client.request("GET", REPLICASETS)[1]["items"]), 1, "no new ReplicaSet for a scale")
        self.client.patch({"spec": {"replicas": 0}}, MERGE)
        stream.until(lambda e: "replicas" not in e["object"]["status"])
        self.assertEqual(self.client.request("GET", PODS)[1]["items"], [])


class AdminHooksTest(EmulatorTestCase):
    def test_injected_faults_answer_once_then_normally(self) -> None:
        self.client.create(deployment())
        self.emulator.inject_faults(method="PATCH", path_regex=r"/deployments/", status=409, count=1)
        self.emulator.inject_faults(method="GET", path_regex=r"/deployments/web$", status=500)
        status, body = self.client.patch({"metadata": {"labels": {"x": "1"}}})
        self.assertEqual((status, body["kind"], body["reason"], body["code"]), (409, "Status", "Conflict", 409))
        self.assertEqual(self.client.patch({"metadata": {"labels": {"x": "1"}}})[0], 200)
        status, body = self.client.request("GET", f"{DEPLOYMENTS}/web")
        self.assertEqual((status, body["reason"]), (500, "InternalError"))
        self.assertEqual(self.client.request("GET", f"{DEPLOYMENTS}/web")[0], 200)
        self.emulator.inject_faults(method="GET", path_regex=".", status=503, count=2)
        self.assertEqual([self.client.request("GET", "/version")[0] for _ in range(3)], [503, 503, 200])

    def test_request_log_counts_requests_and_marks_watches(self) -> None:
        self.client.request("GET", DEPLOYMENTS, token="nope")
        self.client.create(deployment())
        self.watch(f"{DEPLOYMENTS}?watch=true&fieldSelector=metadata.name%3Dweb")
        log = self.emulator.request_log()
        self.assertEqual(
            [(e["method"], e["path"], e["status"], e["user"], e["watch"]) for e in log],
            [
                ("GET", DEPLOYMENTS, 401, None, False),
                ("POST", DEPLOYMENTS, 201, "admin", False),
                ("GET", DEPLOYMENTS, 200, "admin", True),
            ],
        )
        self.assertEqual(log[2]["query"], {"watch": "true", "fieldSelector": "metadata.name=web"})
        self.emulator.clear_request_log()
        self.assertEqual(self.emulator.request_log(), [])

    def test_reset_drops_objects_faults_and_bad_images(self) -> None:
        self.client.create(deployment())
        self.emulator.inject_faults(method="GET", path_regex=".", status=500)
        self.emulator.mark_image_bad("repo/app:v1")
        self.emulator.reset()
        self.assertEqual(self.emulator.request_log(), [])
        self.assertEqual(self.client.request("GET", DEPLOYMENTS)[1]["items"], [])
        self.client.create(deployment())
        self.wait_for_reason("NewReplicaSetAvailable")

    def test_admin_hooks_validate_their_arguments(self) -> None:
        with self.assertRaises(ValueError):
            self.emulator.mark_image_bad("x", reason="Nope")
        with self.assertRaises(ValueError):
            self.emulator.inject_faults(method="GET", path_regex=".", status=200)
        with self.assertRaises(ValueError):
            self.emulator.drop_watches_after(events=-1)

    def test_static_token_verifier(self) -> None:
        verify = static_token_verifier({"a": "alice", "b": "bob"})
        self.assertEqual((verify("a"), verify("b")), ("alice", "bob"))
        for wrong in ("", "c", "aa"):
            with self.assertRaises(PermissionError):
                verify(wrong)


class StopTest(unittest.TestCase):
    def test_stop_ends_an_open_watch_promptly(self) -> None:
        emulator = new_emulator()
        client = Client(emulator)
        idle = Client(emulator)  # an idle keep-alive connection must not hold stop() up
        self.assertEqual(idle.request("GET", "/version")[0], 200)
        stream = client.watch(f"{DEPLOYMENTS}?watch=1")
        ended = threading.Event()

        def read() -> None:
            try:
                stream.next()
            except (OSError, http.client.HTTPException):
                pass
            ended.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        started = time.monotonic()
        emulator.stop()
        self.assertLess(time.monotonic() - started, 1.5)
        self.assertTrue(ended.wait(2))
        reader.join(2)
        for c in (client, idle):
            c.close()
        stream.close()


if __name__ == "__main__":
    unittest.main()
