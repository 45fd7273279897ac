"""Release hygiene: the sdist and the wheel build, the wheel holds every module and data
file, and installed alone in a fresh virtual environment it runs the demo outside the tree."""

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"gflownet": "gflownet", "gflownet/environments": "environments", "gflownet/objectives": "objectives"}


def run(*argv, **kw):
    done = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        **kw,
    )
    assert done.returncode == 0, (argv, done.stdout[-2000:], done.stderr[-3000:])
    return done.stdout


def expected_files() -> set[str]:
    """Every file the package must ship: modules, py.typed, vendored data."""
    out = set()
    for installed, folder in SOURCES.items():
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                out.add(f"{installed}/{path.relative_to(ROOT / folder).as_posix()}")
    return out


def test_wheel_installs_and_runs_the_demo(tmp_path):
    # --no-isolation: build with the installed setuptools (no download of a build environment)
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", tmp_path / "dist", ROOT)
    (wheel,) = (tmp_path / "dist").glob("gflownet-*.whl")
    (sdist,) = (tmp_path / "dist").glob("gflownet-*.tar.gz")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    assert expected_files() <= shipped, expected_files() - shipped
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"pyproject.toml", "README.md", "gflownet/py.typed", "environments/base.py"} <= names

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--quiet", wheel)
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = run(
        python, "-c", "import gflownet.environments as e, gflownet; print(e.__file__, gflownet.__version__)", cwd=work
    )
    assert where.startswith(str(venv)), where  # the wheel, not the source tree
    assert run(venv / "bin" / "gflownet", "--version", cwd=work).strip() == f"gflownet {where.split()[1]}"
    run(venv / "bin" / "gflownet", "demo", "--trajectories", "640", "--out", "demo", "--no-progress", cwd=work)
    assert (work / "demo" / "heatmap.png").read_bytes()[:4] == b"\x89PNG"
    assert 0 <= json.loads((work / "demo" / "evaluation.json").read_text())["l1"] <= 2
