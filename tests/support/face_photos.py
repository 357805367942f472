"""Real face photos for the face engine's tests, fetched into a cache and never committed.

They come out of two packages on PyPI, downloaded with pip (nothing gets installed):
- face_recognition 1.3.0's source archive, ``tests/test_images/``: three photos of Barack Obama
  and one of Joe Biden. Official White House photos (Pete Souza); their embedded notice limits
  their use, so they stay out of the repository.
- scikit-image 0.26.0's wheel, ``skimage/data/astronaut.png``: Eileen Collins, a NASA photo in
  the public domain; a third person.

docs/design/faces.md says more about each. Every file is checked against its SHA-256, so a test
never runs on anything else. ``python -m tests.support.face_photos [DIR]`` (scripts/test.sh
runs it through scripts/fetch-face-photos.sh) fills the cache; when every photo is there and
right it returns at once without touching the network.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

DEFAULT_DIR = Path("/var/cache/nvr-tests/faces")
FACE_RECOGNITION = "face_recognition==1.3.0"  # a source archive: its tests/ are not in a wheel
SCIKIT_IMAGE = "scikit-image==0.26.0"
_TEST_IMAGES = "face_recognition-1.3.0/tests/test_images/"

# cached name -> (SHA-256, package, path inside the package's archive)
PHOTOS: dict[str, tuple[str, str, str]] = {
    "obama.jpg": ("0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6",
                  FACE_RECOGNITION, _TEST_IMAGES + "obama.jpg"),
    "obama2.jpg": ("a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6",
                   FACE_RECOGNITION, _TEST_IMAGES + "obama2.jpg"),
    "obama3.jpg": ("76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3",
                   FACE_RECOGNITION, _TEST_IMAGES + "obama3.jpg"),
    "biden.jpg": ("3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c",
                  FACE_RECOGNITION, _TEST_IMAGES + "biden.jpg"),
    "astronaut.png": ("88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
                      SCIKIT_IMAGE, "skimage/data/astronaut.png"),
}
# how pip fetches each package: the source archive of one, any wheel of the other (the PNG
# inside is the same in every platform's wheel; its hash says so)
_PIP_FORMAT = {FACE_RECOGNITION: ["--no-binary", ":all:"],
               SCIKIT_IMAGE: ["--only-binary", ":all:"]}


def photos_dir() -> Path:
    """Where the photos are cached ($NVR_FACE_PHOTOS_DIR or /var/cache/nvr-tests/faces)."""
    return Path(os.environ.get("NVR_FACE_PHOTOS_DIR") or DEFAULT_DIR)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def missing_photos(directory: Path | None = None) -> list[str]:
    """The names of the photos that are absent from the cache or not the expected bytes."""
    directory = directory or photos_dir()
    return [name for name, (digest, _, _) in PHOTOS.items()
            if not (directory / name).is_file() or _sha256(directory / name) != digest]


def missing_reason() -> str | None:
    """Why the photos cannot be used (for tests/support/requirements.py ``require``), or None."""
    missing = missing_photos()
    if not missing:
        return None
    return f"face photos {', '.join(missing)} are missing from {photos_dir()}"


def _read_member(archive: Path, member: str) -> bytes:
    """One file out of a downloaded source archive (.tar.gz) or wheel (.whl)."""
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as wheel:
            return wheel.read(member)
    with tarfile.open(archive) as sdist:
        extracted = sdist.extractfile(member)
        if extracted is None:
            raise FileNotFoundError(f"{member} is not a file in {archive.name}")
        return extracted.read()


def _download(package: str, into: Path) -> Path:
    """Download one package's archive with pip (no dependencies, nothing installed)."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--disable-pip-version-check", *_PIP_FORMAT[package], "-d", str(into),
                    package], check=True, timeout=600)
    (archive,) = [path for path in into.iterdir() if path.suffix in (".whl", ".gz")]
    return archive


def fetch(directory: Path | None = None) -> list[str]:
    """Fill the cache with the missing photos; return the names written."""
    directory = directory or photos_dir()
    missing = missing_photos(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for package in sorted({PHOTOS[name][1] for name in missing}):
        with tempfile.TemporaryDirectory() as tmp:
            archive = _download(package, Path(tmp))
            for name in (n for n in missing if PHOTOS[n][1] == package):
                digest, _, member = PHOTOS[name]
                data = _read_member(archive, member)
                if hashlib.sha256(data).hexdigest() != digest:
                    raise RuntimeError(f"{member} in {archive.name} is not the expected photo")
                partial = directory / f".{name}.part"
                partial.write_bytes(data)
                partial.replace(directory / name)  # never a half-written photo under its name
    return missing


def as_camera_sends(name: str, width: int = 640) -> bytes:
    """A cached photo scaled to ``width`` pixels, JPEG quality 90: what face sign-in's page posts."""
    import cv2  # here: fetching the photos needs no OpenCV

    image = cv2.imread(str(photos_dir() / name))
    height = round(image.shape[0] * width / image.shape[1])
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok, name
    return encoded.tobytes()


def main(argv: list[str]) -> int:
    """Fetch the photos into argv[0] (or the default cache) and say what was done."""
    directory = Path(argv[0]) if argv else photos_dir()
    written = fetch(directory)
    what = f"fetched {', '.join(written)}" if written else "all photos there already"
    print(f"fetch-face-photos: {directory}: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
