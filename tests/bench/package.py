#!/usr/bin/env python3
"""Zip the arm64 bootstraps (and the Python baselines' modules) as `sam deploy` uploads them.

    python tests/bench/package.py TARGET_LAMBDA_DIR PYTHON_DIR OUT_DIR FUNCTION...

SAM builds each function into a folder holding `bootstrap` and zips that folder with its own
`make_zip` (deflate, mode 0755); this calls the same function of the installed SAM CLI, so the
sizes are the ones SAM would upload. OUT_DIR gets `<function>.zip` and `python-<function>.zip`.
"""

import shutil
import sys
import tempfile
from pathlib import Path

from samcli.lib.package.utils import make_zip


def main(lambda_dir: Path, python_dir: Path, out: Path, functions: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for function in functions:
        bootstrap = lambda_dir / function / "bootstrap"
        with tempfile.TemporaryDirectory() as folder:
            shutil.copy2(bootstrap, Path(folder) / "bootstrap")
            zip_path = make_zip(str(out / function), folder)
        print(f"{function}: bootstrap {bootstrap.stat().st_size} bytes, zip {Path(zip_path).stat().st_size} bytes")
        module = python_dir / (function.replace("-", "_") + ".py")
        if module.exists():
            with tempfile.TemporaryDirectory() as folder:
                shutil.copy2(module, Path(folder) / module.name)
                make_zip(str(out / f"python-{function}"), folder)


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:])
