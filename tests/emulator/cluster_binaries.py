#!/usr/bin/env python3
"""The local cluster's binaries: built once from pinned sources through the Go module proxy.

    python tests/emulator/cluster_binaries.py build     # what tests/scripts/setup runs
    python tests/emulator/cluster_binaries.py locate    # prints the folder of each binary

Each binary comes from a small wrapper module in ``tests/kubernetes/build/``
whose committed go.mod and go.sum pin every module (the Go checksum database
guards each download): k8s.io/kubernetes with its staging modules replaced by
their published versions (``tests/kubernetes/build/generate`` writes those
replaces from k8s.io/kubernetes's own go.mod), etcd's server, and kwok.

Binaries go to a cache outside the repository, one folder per binary keyed by
its version and a digest of its wrapper's go.mod and go.sum:
``${EKS_CICD_CACHE:-${XDG_CACHE_HOME:-~/.cache}/eks-cicd}/kubernetes/<name>-<version>-<digest>/``.
A cached binary is never built again. With ``KUBERNETES_BINARIES`` naming a
folder of ready binaries (or, failing that, ``KUBEBUILDER_ASSETS``, where
setup-envtest puts etcd and kube-apiserver), every binary found there is used
as it is and only those missing are built.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BUILD = ROOT / "tests" / "kubernetes" / "build"

__all__ = ["BINARIES", "Binary", "BinaryError", "build_all", "locate_all"]


class BinaryError(RuntimeError):
    """A binary is missing, or could not be built."""


@dataclass(frozen=True)
class Binary:
    """One program of the local cluster and where its pinned source is."""

    name: str
    #: The wrapper module's folder under tests/kubernetes/build.
    module: str
    #: The main package to build.
    package: str
    #: The module whose version the binary carries.
    versioned: str
    #: Build tags, as upstream's own release builds use them.
    tags: str = ""

    def version(self) -> str:
        return required_version(BUILD / self.module / "go.mod", self.versioned)

    def ldflags(self) -> str:
        flags = ["-s", "-w"]
        if self.versioned == "k8s.io/kubernetes":
            # What k8s.io/kubernetes hack/lib/version.sh stamps: /version and the compatibility
            # version the components derive from it both read these.
            version = self.version()
            major, minor = version.lstrip("v").split(".")[:2]
            for key, value in (
                ("gitVersion", version),
                ("gitMajor", major),
                ("gitMinor", minor),
                ("gitTreeState", "clean"),
            ):
                flags.append(f"-X k8s.io/component-base/version.{key}={value}")
        return " ".join(flags)

    def cache_folder(self, cache: Path) -> Path:
        digest = hashlib.sha256()
        for part in ("go.mod", "go.sum"):
            digest.update((BUILD / self.module / part).read_bytes())
        return cache / f"{self.name}-{self.version()}-{digest.hexdigest()[:12]}"


BINARIES = (
    Binary("etcd", "etcd", "go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/server/v3"),
    Binary(
        "kube-apiserver",
        "kubernetes",
        "k8s.io/kubernetes/cmd/kube-apiserver",
        "k8s.io/kubernetes",
        tags="selinux,notest",
    ),
    Binary(
        "kube-controller-manager",
        "kubernetes",
        "k8s.io/kubernetes/cmd/kube-controller-manager",
        "k8s.io/kubernetes",
        tags="selinux,notest",
    ),
    Binary(
        "kube-scheduler",
        "kubernetes",
        "k8s.io/kubernetes/cmd/kube-scheduler",
        "k8s.io/kubernetes",
        tags="selinux,notest",
    ),
    Binary("kwok", "kwok", "sigs.k8s.io/kwok/cmd/kwok", "sigs.k8s.io/kwok"),
)


def required_version(go_mod: Path, module: str) -> str:
    """The version ``go_mod`` requires of ``module``."""
    pattern = re.compile(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", re.MULTILINE)
    found = pattern.search(go_mod.read_text())
    if found is None:
        raise BinaryError(f"{go_mod} does not require {module}")
    return found.group(1)


def cache_root() -> Path:
    if explicit := os.environ.get("EKS_CICD_CACHE"):
        return Path(explicit) / "kubernetes"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "eks-cicd" / "kubernetes"


def ready_folder() -> Path | None:
    """The folder of ready binaries the environment names, if any."""
    for variable in ("KUBERNETES_BINARIES", "KUBEBUILDER_ASSETS"):
        if value := os.environ.get(variable):
            folder = Path(value)
            if not folder.is_dir():
                raise BinaryError(f"{variable}={value} is not a folder")
            return folder
    return None


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def locate(binary: Binary) -> Path | None:
    """Where ``binary`` is: the ready folder first, then the cache; None when not there yet."""
    folder = ready_folder()
    if folder is not None and _executable(folder / binary.name):
        return folder / binary.name
    cached = binary.cache_folder(cache_root()) / binary.name
    return cached if _executable(cached) else None


def locate_all() -> dict[str, Path]:
    """Every binary's path; a missing one is an error that says how to get it."""
    found: dict[str, Path] = {}
    missing = []
    for binary in BINARIES:
        path = locate(binary)
        if path is None:
            missing.append(binary.name)
        else:
            found[binary.name] = path
    if missing:
        raise BinaryError(
            f"the local cluster's {', '.join(missing)} not built yet: run tests/scripts/setup "
            "(it builds them once from the pinned sources in tests/kubernetes/build)"
        )
    return found


def go_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        # The committed go.sum is the whole truth: nothing is resolved or upgraded on the way.
        GOFLAGS="-mod=readonly -trimpath",
        # The machine's Go, never a toolchain download (go.mod names a version it satisfies).
        GOTOOLCHAIN="local",
        GOWORK="off",
        CGO_ENABLED="0",
    )
    return env


def build(binary: Binary, log=print) -> Path:
    """Builds ``binary`` into the cache unless it is there (or in the ready folder)."""
    started = time.monotonic()
    if (path := locate(binary)) is not None:
        given = ready_folder() is not None and path.parent == ready_folder()
        how = "given" if given else "cached"
        version = "" if given else binary.version()
        log(f"  {binary.name:<24} {version:<10} {how:<9} {path}")
        return path
    target = binary.cache_folder(cache_root())
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{binary.name}-", dir=target.parent) as scratch:
        output = Path(scratch) / binary.name
        command = ["go", "build", "-ldflags", binary.ldflags(), "-o", str(output)]
        if binary.tags:
            command += ["-tags", binary.tags]
        command.append(binary.package)
        result = subprocess.run(
            command, cwd=BUILD / binary.module, env=go_environment(), capture_output=True, text=True
        )
        if result.returncode != 0:
            raise BinaryError(
                f"building {binary.name} {binary.version()} failed:\n  cd {BUILD / binary.module} && "
                f"{' '.join(command)}\n{result.stderr[-4000:]}"
            )
        # Whole or not at all: a build cut short leaves no binary that looks cached.
        final = Path(scratch) / "final"
        final.mkdir()
        shutil.move(str(output), final / binary.name)
        if target.exists():
            shutil.rmtree(target)
        os.replace(final, target)
    seconds = time.monotonic() - started
    log(f"  {binary.name:<24} {binary.version():<10} built in {seconds:5.0f} s  {target / binary.name}")
    return target / binary.name


def build_all(log=print) -> dict[str, Path]:
    if shutil.which("go") is None:
        raise BinaryError("the local cluster is built from source with Go (1.26 or later): no `go` on PATH")
    return {binary.name: build(binary, log) for binary in BINARIES}


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "build"
    try:
        if command == "build":
            print("setup: the local cluster's binaries (built once from tests/kubernetes/build, then cached)", file=sys.stderr, flush=True)
            build_all(log=lambda line: print(line, file=sys.stderr, flush=True))
        elif command == "locate":
            for name, path in locate_all().items():
                print(f"{name}\t{path}")
        else:
            print(f"usage: {argv[0]} [build|locate]", file=sys.stderr)
            return 2
    except BinaryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
