"""infra/buildspec-image.yml run as CodeBuild runs it, against the emulator's ECR.

The buildspec's phase commands run in bash the way CodeBuild (buildspec
version 0.2) runs them: one command at a time, shell variables carried from
one command and phase to the next, a failed ``pre_build`` ending the build, a
failed ``build`` still running ``post_build`` with
``CODEBUILD_BUILD_SUCCEEDING=0``, and the ``exported-variables`` read at the
end. ``docker`` and ``aws`` are the stand-ins of ``standins/``, which reach
the emulator's ECR through its API (an image push is ECR's layer upload and
PutImage, as docker's registry client does it).

The repository is IMMUTABLE, as ``ImageRepository`` in infra/pipeline.yaml:
the buildspec before issue 15 failed on the second build of a commit (the
push of the commit's tag was refused); now that build skips building and
pushing and exports the digest of the image the first one pushed.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import model_checks  # noqa: E402
from aws_ext import make_app  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
BUILDSPEC = ROOT / "infra" / "buildspec-image.yml"
STANDINS = Path(__file__).resolve().parent / "standins"
#: main before issue 15: the buildspec that pushed the commit's tag unconditionally.
BEFORE_THE_FIX = "30f2d3a1376230afa6b8fe4f0072c54a036a57cb"
ACCOUNT = "123456789012"
REGION = "us-east-1"
REPOSITORY = "shop"
REPOSITORY_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPOSITORY}"
COMMIT = "0ccf1ae1bf4c9d0e5b3a7f21c6e84d9a0b1c2d3e"
PHASES = ("install", "pre_build", "build", "post_build")
#: Each command is given this long; the stand-ins answer in well under a second.
COMMAND_TIMEOUT = 60

APP = make_app(None)
SERVER: Any = None
ENDPOINT = ""


def setUpModule() -> None:
    global SERVER, ENDPOINT
    SERVER, ENDPOINT = model_checks.start_server(APP)


def tearDownModule() -> None:
    model_checks.stop_server(SERVER)


def _after_call(http_response: Any, parsed: dict[str, Any], model: Any, **kwargs: Any) -> None:
    if http_response.status_code == 200:
        model_checks.checked_output(parsed, model)


@dataclass
class Build:
    """What one run of a buildspec did."""

    succeeded: bool
    #: The phase that failed first, if any.
    failed_phase: str | None
    exported: dict[str, str]
    output: str
    #: Every docker invocation, in order, as argument lists.
    docker_calls: list[list[str]]

    def docker(self, command: str) -> list[list[str]]:
        return [call for call in self.docker_calls if call[:1] == [command]]


class BuildspecRunner:
    """Runs a buildspec's phases in ``folder`` (the source), as CodeBuild would."""

    def __init__(self, folder: Path, state: Path, environment: dict[str, str]) -> None:
        self.folder = folder
        self.state = state
        self.environment = environment

    def run(self, spec: dict[str, Any], between_phases: Callable[[str], None] | None = None) -> Build:
        if spec.get("version") != 0.2 or spec.get("env", {}).get("shell") != "bash":
            raise AssertionError("the runner knows buildspec version 0.2 with shell: bash only")
        calls = self.state / "calls.jsonl"
        calls_before = len(calls.read_text().splitlines()) if calls.exists() else 0
        variables = self.folder.parent / "variables.sh"
        variables.write_text("")
        environment = {**self.environment, "CODEBUILD_BUILD_SUCCEEDING": "1"}
        baseline = set(self._bash("compgen -v", environment).stdout.split())
        output: list[str] = []
        failed_phase = None
        for phase in PHASES:
            commands = (spec.get("phases", {}).get(phase) or {}).get("commands") or []
            if failed_phase in ("install", "pre_build"):
                break
            if between_phases is not None:
                between_phases(phase)
            for command in commands:
                ran = self._command(command, variables, baseline, environment)
                output.append(f"[{phase}] $ {command.strip()}\n{ran.stdout}{ran.stderr}")
                if ran.returncode != 0:
                    output.append(f"[{phase}] exit status {ran.returncode}\n")
                    failed_phase = failed_phase or phase
                    if phase == "build":
                        environment["CODEBUILD_BUILD_SUCCEEDING"] = "0"
                    break
        names = spec.get("env", {}).get("exported-variables") or []
        printed = self._bash(
            f'source {shlex.quote(str(variables))}; for n in {" ".join(names)}; do printf "%s=%s\\0" "$n" "${{!n}}"; done',
            environment,
        ).stdout
        exported = dict(item.split("=", 1) for item in printed.split("\0") if item)
        docker_calls = [json.loads(line) for line in calls.read_text().splitlines()[calls_before:]] if calls.exists() else []
        return Build(failed_phase is None, failed_phase, exported, "".join(output), docker_calls)

    def _command(
        self, command: str, variables: Path, baseline: set[str], environment: dict[str, str]
    ) -> subprocess.CompletedProcess[str]:
        script = self.folder.parent / "command.sh"
        script.write_text(command)
        # The command runs in a fresh bash that first takes the variables the earlier commands
        # set; afterwards every variable not in the starting environment is written back.
        wrapper = (
            f"source {shlex.quote(str(variables))}\n"
            f"source {shlex.quote(str(script))}\n"
            "__status=$?\n"
            f"for __name in $(compgen -v); do case \" {' '.join(sorted(baseline))} __status __name \" in "
            '*" $__name "*) ;; *) declare -p "$__name";; esac; done > '
            f"{shlex.quote(str(variables))}.new\n"
            f"mv {shlex.quote(str(variables))}.new {shlex.quote(str(variables))}\n"
            "exit $__status\n"
        )
        return self._bash(wrapper, environment)

    def _bash(self, script: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", script],
            cwd=self.folder,
            env=environment,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )


def current_spec() -> dict[str, Any]:
    return yaml.safe_load(BUILDSPEC.read_text())


class ImageBuildTest(unittest.TestCase):
    def setUp(self) -> None:
        status, _ = model_checks.raw_request(ENDPOINT, "POST", "/_emulator/reset")
        self.assertEqual(status, 200)
        self.ecr = model_checks.client(ENDPOINT, "ecr", _after_call)
        self.ecr.create_repository(repositoryName=REPOSITORY, imageTagMutability="IMMUTABLE")
        self.work = Path(tempfile.mkdtemp(prefix="buildspec-image-"))
        self.addCleanup(shutil.rmtree, self.work, ignore_errors=True)
        self.runner = self.runner_for(COMMIT)

    def runner_for(self, commit: str, repository_uri: str = REPOSITORY_URI, checkout: str = "") -> BuildspecRunner:
        """A build of ``commit`` pushing to ``repository_uri``, in a checkout of its own (``checkout``
        names a second one of the same commit: another build, elsewhere)."""
        folder = self.work / (commit + checkout) / "src"
        folder.mkdir(parents=True)
        (folder / "Dockerfile").write_text("FROM scratch\nCOPY app /app\n")
        (folder / "app").write_text(f"the application at {commit}\n")
        path = os.pathsep.join([str(STANDINS), str(Path(sys.executable).parent), "/usr/bin", "/bin"])
        # Each checkout is a build host of its own: its own docker images and logins.
        docker = folder.parent / "docker"
        return BuildspecRunner(
            folder,
            docker,
            {
                "PATH": path,
                "HOME": str(self.work),
                "LANG": "C.UTF-8",
                "AWS_ENDPOINT_URL": ENDPOINT,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_MAX_ATTEMPTS": "1",
                "DOCKER_STANDIN_STATE": str(docker),
                "IMAGE_REPOSITORY_URI": repository_uri,
                "SOURCE_COMMIT": commit,
                "CODEBUILD_RESOLVED_SOURCE_VERSION": commit,
            },
        )

    def digest_of(self, tag: str) -> str:
        images = self.ecr.describe_images(repositoryName=REPOSITORY, imageIds=[{"imageTag": tag}])["imageDetails"]
        self.assertEqual(len(images), 1)
        return images[0]["imageDigest"]

    def test_a_new_commit_is_built_pushed_and_exported_pinned_by_digest(self) -> None:
        build = self.runner.run(current_spec())

        self.assertTrue(build.succeeded, build.output)
        self.assertEqual(len(build.docker("build")), 2, "the test stage, then the image")
        self.assertEqual(build.docker("push"), [["push", f"{REPOSITORY_URI}:{COMMIT[:12]}"]])
        digest = self.digest_of(COMMIT[:12])
        self.assertRegex(digest, r"^sha256:[0-9a-f]{64}$")
        self.assertEqual(
            build.exported,
            {"IMAGE_URI": f"{REPOSITORY_URI}@{digest}", "IMAGE_DIGEST": digest, "IMAGE_TAG": COMMIT[:12]},
        )
        self.assertTrue((self.runner.folder / "reports" / "junit.xml").is_file())

    def test_the_same_commit_built_again_pushes_nothing_and_exports_the_same_digest(self) -> None:
        first = self.runner.run(current_spec())
        self.assertTrue(first.succeeded, first.output)

        second = self.runner.run(current_spec())

        self.assertTrue(second.succeeded, second.output)
        self.assertEqual(second.docker_calls, [], "neither built nor pushed nor logged in")
        self.assertEqual(second.exported, first.exported)
        self.assertIn("not building it again", second.output)
        images = self.ecr.describe_images(repositoryName=REPOSITORY)["imageDetails"]
        self.assertEqual(len(images), 1)

    def test_the_buildspec_before_the_fix_fails_on_the_second_build_of_a_commit(self) -> None:
        shown = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{BEFORE_THE_FIX}:infra/buildspec-image.yml"],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        if shown.returncode != 0:
            self.skipTest(f"the buildspec before the fix is not in this clone's history: {shown.stderr.strip()}")
        before = yaml.safe_load(shown.stdout)
        first = self.runner.run(before)
        self.assertTrue(first.succeeded, first.output)

        second = self.runner.run(before)

        self.assertFalse(second.succeeded)
        self.assertEqual(second.failed_phase, "post_build", second.output)
        self.assertIn("cannot be overwritten because the repository is immutable", second.output)
        # ...while the fixed buildspec, on the same repository, takes the image pushed then.
        fixed = self.runner.run(current_spec())
        self.assertTrue(fixed.succeeded, fixed.output)
        self.assertEqual(fixed.exported["IMAGE_DIGEST"], self.digest_of(COMMIT[:12]))

    def test_a_push_lost_to_another_build_of_the_commit_takes_the_image_that_won(self) -> None:
        # A second pipeline on the same commit pushes between this build's lookup and its push.
        other = self.runner_for(COMMIT, checkout="-other")

        def meanwhile(phase: str) -> None:
            if phase == "post_build":
                won = other.run(current_spec())
                self.assertTrue(won.succeeded, won.output)

        build = self.runner.run(current_spec(), between_phases=meanwhile)

        self.assertTrue(build.succeeded, build.output)
        self.assertIn("cannot be overwritten", build.output)
        digest = self.digest_of(COMMIT[:12])
        self.assertEqual(build.exported["IMAGE_URI"], f"{REPOSITORY_URI}@{digest}")

    def test_a_lookup_refused_for_another_reason_fails_before_anything_is_built(self) -> None:
        # A repository that does not exist: DescribeImages fails, but not with ImageNotFound.
        build = self.runner_for(COMMIT, f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/gone", checkout="-elsewhere").run(current_spec())

        self.assertFalse(build.succeeded)
        self.assertEqual(build.failed_phase, "pre_build", build.output)
        self.assertIn("RepositoryNotFoundException", build.output)
        self.assertEqual(build.docker_calls, [])

    def test_distinct_builds_of_a_commit_are_distinct_images(self) -> None:
        # Why a rebuild is skipped rather than tagged uniquely: its bytes, and so its digest,
        # differ (the stand-in, like docker, records the build's time in the image config).
        first = self.runner.run(current_spec())
        self.assertTrue(first.succeeded, first.output)
        self.ecr.create_repository(repositoryName="shop-copy", imageTagMutability="IMMUTABLE")

        second = self.runner_for(COMMIT, f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/shop-copy", checkout="-copy").run(
            current_spec()
        )

        self.assertTrue(second.succeeded, second.output)
        self.assertNotEqual(second.exported["IMAGE_DIGEST"], first.exported["IMAGE_DIGEST"])


if __name__ == "__main__":
    unittest.main()
