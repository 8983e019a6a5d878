"""A tiny in-tree PEP 517/660 build backend for boxer-sdk.

It exists so that ``pip install ./sdk/python`` works offline: the package
needs no build requirements at all (pip's isolated build environment stays
empty), since wheels are plain zip files written with the standard library.
"""

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(HERE, "src")
NAME = "boxer-sdk"
DIST = "boxer_sdk"
SUMMARY = "Python client for Boxer, a sandboxed container execution service backed by gVisor"


def _version():
    with open(os.path.join(SRC, "boxer", "_version.py"), encoding="utf-8") as f:
        m = re.search(r'__version__\s*=\s*"([^"]+)"', f.read())
    if not m:
        raise RuntimeError("no __version__ in src/boxer/_version.py")
    return m.group(1)


def _metadata():
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    return (
        "Metadata-Version: 2.1\n"
        "Name: %s\n"
        "Version: %s\n"
        "Summary: %s\n"
        "Requires-Python: >=3.9\n"
        "Requires-Dist: httpx>=0.23\n"
        "Provides-Extra: dev\n"
        'Requires-Dist: pytest>=7; extra == "dev"\n'
        'Requires-Dist: pytest-asyncio>=0.20; extra == "dev"\n'
        "Classifier: Programming Language :: Python :: 3\n"
        "Classifier: Typing :: Typed\n"
        "Description-Content-Type: text/markdown\n"
        "\n%s" % (NAME, _version(), SUMMARY, readme)
    )


def _package_files():
    root = os.path.join(SRC, "boxer")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith((".py", ".typed")):
                full = os.path.join(dirpath, name)
                yield full, os.path.relpath(full, SRC).replace(os.sep, "/")


def _record_hash(data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def _write_wheel(wheel_directory, entries):
    version = _version()
    info = "%s-%s.dist-info" % (DIST, version)
    filename = "%s-%s-py3-none-any.whl" % (DIST, version)
    entries = list(entries) + [
        (info + "/METADATA", _metadata().encode()),
        (info + "/WHEEL", b"Wheel-Version: 1.0\nGenerator: boxer_build\n"
                          b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
        (info + "/top_level.txt", b"boxer\n"),
    ]
    record = io.StringIO()
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w",
                         zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in entries:
            zf.writestr(zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0)), data)
            record.write("%s,%s,%d\n" % (arcname, _record_hash(data), len(data)))
        record.write("%s/RECORD,,\n" % info)
        zf.writestr(zipfile.ZipInfo(info + "/RECORD", date_time=(2020, 1, 1, 0, 0, 0)),
                    record.getvalue())
    return filename


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    entries = []
    for full, arcname in _package_files():
        with open(full, "rb") as f:
            entries.append((arcname, f.read()))
    return _write_wheel(wheel_directory, entries)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # A .pth file pointing at src/ makes the checkout importable as is.
    return _write_wheel(wheel_directory, [("boxer_sdk.pth", (SRC + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    base = "%s-%s" % (DIST, _version())
    filename = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as tf:
        for rel in ("pyproject.toml", "README.md", "_build/boxer_build.py"):
            tf.add(os.path.join(HERE, rel), arcname=base + "/" + rel)
        for full, arcname in _package_files():
            tf.add(full, arcname=base + "/src/" + arcname)
        pkg_info = tarfile.TarInfo(base + "/PKG-INFO")
        data = _metadata().encode()
        pkg_info.size = len(data)
        tf.addfile(pkg_info, io.BytesIO(data))
    return filename
