"""Tests of infra/environments.py: the pipeline's environment stages generated from a list.

The committed infra/pipeline.yaml must be what infra/environments.yml gives;
the Rust template test (tests/tests/template.rs) then checks every generated
Deploy action's parameters with eks-deploy's own parser.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
import unittest
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from token_review import _CloudFormationLoader  # noqa: E402

INFRA = HERE.parent.parent / "infra"
_spec = importlib.util.spec_from_file_location("environments", INFRA / "environments.py")
assert _spec is not None and _spec.loader is not None
environments = importlib.util.module_from_spec(_spec)
# dataclasses look their module up in sys.modules while the module is executed.
sys.modules["environments"] = environments
_spec.loader.exec_module(environments)

IMAGE = "#{BuildVariables.IMAGE_URI}"
ROLE = "arn:aws:iam::210987654321:role/eks-deploy-target"


def env(name: str, cluster: str, approval: bool = False, **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "cluster": cluster,
        "namespace": "shop",
        "deployment": "web",
        "container": "web",
        "approval": approval,
        **more,
    }


class Generated:
    """The pipeline generated from ``items``, read back as CloudFormation reads it."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "environments.yml"
            path.write_text(yaml.safe_dump({"environments": items}))
            self.environments = environments.load(path)
        self.text = environments.render((INFRA / "pipeline.yaml").read_text(), self.environments)
        self.template = yaml.load(self.text, Loader=_CloudFormationLoader)

    @property
    def stages(self) -> list[dict[str, Any]]:
        return self.template["Resources"]["Pipeline"]["Properties"]["Stages"]

    def stage_names(self) -> list[str]:
        return [stage["Name"] for stage in self.stages]

    def parameters(self, stage: str) -> dict[str, Any]:
        (found,) = [s for s in self.stages if s["Name"] == stage]
        return json.loads(found["Actions"][0]["Configuration"]["UserParameters"])

    def access_entries(self) -> dict[str, str]:
        return {
            name: resource["Properties"]["ClusterName"]
            for name, resource in self.template["Resources"].items()
            if resource["Type"] == "AWS::EKS::AccessEntry"
        }


def refusal(items: Any) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "environments.yml"
        path.write_text(yaml.safe_dump(items))
        try:
            environments.load(path)
        except environments.InvalidEnvironments as error:
            return str(error)
    raise AssertionError(f"accepted: {items}")


class CommittedPipelineTests(unittest.TestCase):
    def test_the_committed_pipeline_is_what_the_environments_file_gives(self) -> None:
        self.assertEqual(environments.main(["--check"]), 0, "run .venv/bin/python infra/environments.py")

    def test_a_hand_edit_of_the_generated_part_is_found(self) -> None:
        text = (INFRA / "pipeline.yaml").read_text()
        edited = text.replace('"cluster":"shop-prod"', '"cluster":"shop-other"')
        self.assertNotEqual(edited, text)
        self.assertEqual(environments.render(edited, environments.load()), text)

    def test_the_default_environments_are_staging_then_production_behind_an_approval(self) -> None:
        generated = Generated(yaml.safe_load((INFRA / "environments.yml").read_text())["environments"])
        self.assertEqual(
            generated.stage_names(), ["Source", "Build", "DeployStaging", "ApproveProduction", "DeployProduction"]
        )
        for stage in ("DeployStaging", "DeployProduction"):
            parameters = generated.parameters(stage)
            # Today's eks-deploy takes exactly these (no role keys for same-account environments).
            self.assertEqual(set(parameters), {"cluster", "namespace", "deployment", "container", "image"})
            self.assertEqual(parameters["image"], IMAGE)
        self.assertEqual(
            generated.access_entries(), {"DeployAccessEntryShopStaging": "shop-staging", "DeployAccessEntry": "shop-prod"}
        )


class GeneratorTests(unittest.TestCase):
    def test_any_number_of_environments_each_gets_the_builds_one_image(self) -> None:
        generated = Generated(
            [env("dev", "c-dev"), env("test", "c-test"), env("stage", "c-stage", True), env("prod", "c-prod", True)]
        )
        self.assertEqual(
            generated.stage_names(),
            ["Source", "Build", "DeployDev", "DeployTest", "ApproveStage", "DeployStage", "ApproveProd", "DeployProd"],
        )
        images = {generated.parameters(f"Deploy{n}")["image"] for n in ("Dev", "Test", "Stage", "Prod")}
        self.assertEqual(images, {IMAGE})
        gate = generated.stages[6]["Actions"][0]
        self.assertEqual(gate["Name"], "ProdGate")
        self.assertIn("from stage to prod", gate["Configuration"]["CustomData"])
        self.assertIn("#{BuildVariables.IMAGE_DIGEST}", gate["Configuration"]["CustomData"])
        self.assertEqual(gate["Configuration"]["NotificationArn"], {"Ref": "ApprovalRequestsTopicArn"})
        # No build after the Build stage: a promotion never rebuilds.
        providers = [a["ActionTypeId"]["Provider"] for s in generated.stages[2:] for a in s["Actions"]]
        self.assertNotIn("CodeBuild", providers)

    def test_an_environment_of_another_account_names_its_role_and_gets_no_entry_here(self) -> None:
        generated = Generated(
            [env("staging", "shop-staging"), env("production", "shop-prod", True, roleArn=ROLE, externalId="shop-main-prod")]
        )
        self.assertEqual(
            generated.parameters("DeployProduction"),
            {
                "cluster": "shop-prod",
                "namespace": "shop",
                "deployment": "web",
                "container": "web",
                "image": IMAGE,
                "roleArn": ROLE,
                "externalId": "shop-main-prod",
                "environment": "production",
                "pipelineExecutionId": "#{codepipeline.PipelineExecutionId}",
            },
        )
        self.assertNotIn("roleArn", generated.parameters("DeployStaging"))
        self.assertEqual(generated.access_entries(), {"DeployAccessEntry": "shop-staging"})

    def test_release_plans_are_passed_on_as_given(self) -> None:
        strategy = {"type": "canary", "steps": [{"weight": 10, "bake": "5m"}]}
        generated = Generated([env("production", "shop-prod", strategy=strategy, alarms=["shop-5xx"], rollbackOnFailure=False)])
        parameters = generated.parameters("DeployProduction")
        self.assertEqual(
            (parameters["strategy"], parameters["alarms"], parameters["rollbackOnFailure"]), (strategy, ["shop-5xx"], False)
        )

    def test_quotes_in_values_survive_yaml(self) -> None:
        generated = Generated([env("production", "shop-prod", alarms=["it's 5xx"])])
        self.assertEqual(generated.parameters("DeployProduction")["alarms"], ["it's 5xx"])

    def test_mistakes_are_refused_naming_the_field(self) -> None:
        cases = [
            ({"environments": []}, "environments: expected a non-empty list"),
            ({"envs": [env("a", "c")]}, "one key, environments"),
            ({"environments": [env("a", "c", colour="red")]}, "environments[0].colour: unknown key"),
            ({"environments": [{k: v for k, v in env("a", "c").items() if k != "namespace"}]}, "environments[0].namespace: missing"),
            ({"environments": [env("Prod", "c")]}, "environments[0].name: 'Prod' is not a name"),
            ({"environments": [env("a", "c", approval="yes")]}, "environments[0].approval: expected true or false"),
            ({"environments": [env("a", "c a")]}, "environments[0].cluster"),
            ({"environments": [env("a", "c", namespace="Shop")]}, "environments[0].namespace"),
            ({"environments": [env("a", "c"), env("a", "d")]}, "environments[1].name: the name 'a' is used twice"),
            ({"environments": [env("a", "c"), env("b", "c")]}, "environments[1]: c/shop/web is already an earlier environment"),
            ({"environments": [env("a", "c", roleArn=ROLE)]}, "environments[0].externalId: missing"),
            ({"environments": [env("a", "c", externalId="x1")]}, "environments[0].roleArn: missing"),
            ({"environments": [env("a", "c", roleArn="arn:aws:iam::1:role/x", externalId="x1")]}, "environments[0].roleArn"),
            ({"environments": [env("a", "c", roleArn=ROLE, externalId="x")]}, "environments[0].externalId"),
            ({"environments": [env("a", "c", alarms=["x" * 1000])]}, "more than the 1000 CodePipeline takes"),
            ({"environments": [env("a", "shop-prod"), env("b", "shop_prod")]}, "differ only in '-' and '_'"),
        ]
        for items, expected in cases:
            with self.subTest(expected=expected):
                self.assertIn(expected, refusal(items))

    def test_a_pipeline_without_the_markers_is_refused(self) -> None:
        with self.assertRaisesRegex(environments.InvalidEnvironments, "markers are missing"):
            environments.render("Resources: {}\n", environments.load())


if __name__ == "__main__":
    unittest.main()
