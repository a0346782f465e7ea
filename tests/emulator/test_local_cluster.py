"""Tests of the local cluster itself: one real control plane, started once for these tests.

What the other tests build on: the version is stamped, pods of every image
convention get the status a kubelet reports (Ready, ImagePullBackOff,
CrashLoopBackOff), kwok's pod-ready delay annotation is honoured, and a
deleted pod goes away.
"""

from __future__ import annotations

import json
import sys
import time
import unittest
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_cluster import LocalCluster  # noqa: E402

TIMEOUT = 20.0


class LocalClusterTests(unittest.TestCase):
    cluster: LocalCluster

    @classmethod
    def setUpClass(cls) -> None:
        cls.cluster = LocalCluster({"testing": "testing"}, "123456789012", lambda: ["shop-prod"])
        try:
            cls.cluster.launch()
        except BaseException:
            cls.cluster.stop()
            raise
        cls.admin = cls.cluster.control_plane.request
        cls.admin("POST", "/api/v1/namespaces", {"metadata": {"name": "conventions"}})
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                cls.admin("GET", "/api/v1/namespaces/conventions/serviceaccounts/default")
                break
            except OSError:
                time.sleep(0.1)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.cluster.stop()

    def pod(self, name: str, images: list[str], annotations: dict[str, str] | None = None) -> None:
        containers = [{"name": f"c{n}", "image": image} for n, image in enumerate(images)]
        self.admin(
            "POST",
            "/api/v1/namespaces/conventions/pods",
            {"metadata": {"name": name, "annotations": annotations or {}}, "spec": {"containers": containers}},
        )

    def status_when(self, name: str, wanted, timeout: float = TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.admin("GET", f"/api/v1/namespaces/conventions/pods/{name}").get("status", {})
            if wanted(status):
                return status
            time.sleep(0.1)
        self.fail(f"pod {name} never got there: {json.dumps(status)}")

    @staticmethod
    def states(status: dict[str, Any]) -> dict[str, Any]:
        return {c["name"]: c["state"] for c in status.get("containerStatuses", [])}

    def test_the_api_server_says_the_version_it_was_built_from(self) -> None:
        version = self.admin("GET", "/version")
        self.assertRegex(version["gitVersion"], r"^v1\.\d+\.\d+$")
        self.assertEqual(version["gitVersion"], self.cluster.version)
        self.assertEqual(version["minor"], version["gitVersion"].split(".")[1])

    def test_a_good_image_runs_and_gets_ready(self) -> None:
        self.pod("good", ["shop:v1", "envoy:v1.30"])
        status = self.status_when("good", lambda s: s.get("phase") == "Running")
        self.assertEqual({n: "running" in s for n, s in self.states(status).items()}, {"c0": True, "c1": True})
        ready = {c["type"]: c["status"] for c in status["conditions"]}
        self.assertEqual(ready["Ready"], "True")

    def test_an_unpullable_image_waits_in_image_pull_back_off_beside_the_others(self) -> None:
        self.pod("unpullable", ["shop:v2-unpullable", "envoy:v1.30"])
        status = self.status_when("unpullable", lambda s: bool(s.get("containerStatuses")))
        self.assertEqual(status["phase"], "Pending")
        states = self.states(status)
        self.assertEqual(states["c0"]["waiting"]["reason"], "ImagePullBackOff")
        self.assertIn('Back-off pulling image "shop:v2-unpullable"', states["c0"]["waiting"]["message"])
        self.assertIn("running", states["c1"])
        time.sleep(1)
        self.assertEqual(self.admin("GET", "/api/v1/namespaces/conventions/pods/unpullable")["status"]["phase"], "Pending")

    def test_a_crash_looping_image_is_in_crash_loop_back_off_with_its_last_exit(self) -> None:
        self.pod("crashing", ["shop:v2-crashloop"])
        status = self.status_when("crashing", lambda s: bool(s.get("containerStatuses")))
        [container] = status["containerStatuses"]
        self.assertEqual(container["state"]["waiting"]["reason"], "CrashLoopBackOff")
        self.assertEqual(container["lastState"]["terminated"]["exitCode"], 1)
        self.assertGreater(container["restartCount"], 0)
        self.assertFalse(container["ready"])

    def test_the_pod_ready_delay_annotation_is_honoured(self) -> None:
        created = time.monotonic()
        self.pod("slow", ["shop:v1"], {"pod-ready.stage.kwok.x-k8s.io/delay": "2s"})
        self.status_when("slow", lambda s: s.get("phase") == "Running", timeout=TIMEOUT)
        self.assertGreaterEqual(time.monotonic() - created, 1.8)

    def test_a_deleted_pod_goes_away(self) -> None:
        self.pod("doomed", ["shop:v1"])
        self.status_when("doomed", lambda s: s.get("phase") == "Running")
        self.admin("DELETE", "/api/v1/namespaces/conventions/pods/doomed")
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            names = [p["metadata"]["name"] for p in self.admin("GET", "/api/v1/namespaces/conventions/pods")["items"]]
            if "doomed" not in names:
                return
            time.sleep(0.1)
        self.fail("the deleted pod stayed")


if __name__ == "__main__":
    unittest.main()
