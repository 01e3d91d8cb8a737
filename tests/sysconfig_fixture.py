"""Real interpreter archives carrying python-build-standalone's build-machine paths.

:mod:`realpython` packages an interpreter installed here; its ``_sysconfigdata_*.py``
then names this machine's prefix and ``gcc``, both of which exist, so a fix-up would
have nothing to prove. :func:`pbs_style_archive` rewrites that data the way PBS ships
it -- prefix ``/install``, ``clang`` (or ``/tools/...`` toolchain paths), ``llvm-ar``,
macOS ``-isysroot`` flags, ``/tools/deps`` search paths -- adds PBS-style
``lib/pkgconfig/*.pc`` files with ``prefix=/install``, and repacks under the PBS name.
The result runs from anywhere, but building a C extension with it fails until the
build paths are fixed.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import io
import pprint
import re
import tarfile
from collections.abc import Mapping
from pathlib import Path

import attrs

from tests.realpython import PBS_MTIME, RealArchive, pbs_filename

#: Where PBS builds install to, recorded in every path key.
PBS_PREFIX = "/install"
#: The macOS SDK PBS passes as ``-isysroot`` (absent on any machine running the tests).
SDK = (
    "/Applications/Xcode.app/Contents/Developer/Platforms/MacOSX.platform/Developer/SDKs/MacOSX.sdk"
)
#: Toolchain spellings seen in PBS ``_sysconfigdata``: bare names, or absolute ``/tools`` paths.
TOOLCHAINS: Mapping[str, Mapping[str, str]] = {
    "bare": {"cc": "clang", "cxx": "clang++", "ar": "llvm-ar"},
    "tools": {
        "cc": "/tools/clang-linux64/bin/clang",
        "cxx": "/tools/clang-linux64/bin/clang++",
        "ar": "/tools/llvm/bin/llvm-ar",
    },
}

_SYSCONFIGDATA = re.compile(r"^python/lib/python3\.\d+t?/_sysconfigdata_[^/]*\.py$")


def _swap_prefix(value: str, old: str) -> str:
    pattern = re.compile(re.escape(old.rstrip("/")) + r"(?=/|\s|$|['\":;,])")
    return pattern.sub(PBS_PREFIX, value)


def pbs_build_vars(variables: Mapping[str, object], *, toolchain: str) -> dict[str, object]:
    """``build_time_vars`` as PBS would record them for this interpreter."""
    tools = TOOLCHAINS[toolchain]
    source = str(variables["prefix"])
    out: dict[str, object] = {}
    for key, value in variables.items():
        out[key] = _swap_prefix(value, source) if isinstance(value, str) else value
    minor = str(variables["VERSION"])
    abiflags = str(variables.get("ABIFLAGS", ""))
    stdlib = f"{PBS_PREFIX}/lib/python{minor}{'t' if 't' in abiflags else ''}"
    out.update(
        {
            "prefix": PBS_PREFIX,
            "exec_prefix": PBS_PREFIX,
            "BINDIR": f"{PBS_PREFIX}/bin",
            "LIBDIR": f"{PBS_PREFIX}/lib",
            "LIBPC": f"{PBS_PREFIX}/lib/pkgconfig",
            "INCLUDEDIR": f"{PBS_PREFIX}/include",
            "INCLUDEPY": f"{PBS_PREFIX}/include/python{minor}{abiflags}",
            "CONFINCLUDEPY": f"{PBS_PREFIX}/include/python{minor}{abiflags}",
            "LIBDEST": stdlib,
            "BINLIBDEST": stdlib,
            "DESTSHARED": f"{stdlib}/lib-dynload",
            "CC": f"{tools['cc']} -pthread",
            "CXX": f"{tools['cxx']} -pthread",
            "LINKCC": tools["cc"],
            "AR": tools["ar"],
            "CFLAGS": f"-Wsign-compare -DNDEBUG -g -fwrapv -O3 -Wall -isysroot {SDK} "
            "-I/tools/deps/include -I/tools/deps/include/ncursesw",
            "CPPFLAGS": f"-I. -I./Include -isysroot {SDK} -I/tools/deps/include",
            "LDFLAGS": f"-isysroot {SDK} -L/tools/deps/lib -Wl,--exclude-libs,ALL",
            "LDSHARED": f"{tools['cc']} -pthread -shared -isysroot {SDK} -L/tools/deps/lib "
            f"-L{PBS_PREFIX}/lib",
            "BLDSHARED": f"{tools['cc']} -pthread -shared -isysroot {SDK} -L/tools/deps/lib "
            f"-L{PBS_PREFIX}/lib",
            "LDCXXSHARED": f"{tools['cxx']} -pthread -shared -isysroot {SDK}",
            "CONFIG_ARGS": f"'--prefix={PBS_PREFIX}' '--enable-shared' '--with-lto' "
            f"'CC={tools['cc']}'",
        }
    )
    return out


def rewrite_sysconfigdata(source: str, *, toolchain: str) -> str:
    """Rewrite a ``_sysconfigdata_*.py`` module's ``build_time_vars`` PBS-style."""
    tree = ast.parse(source)
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "build_time_vars"
            and node.end_lineno is not None
        ):
            variables = ast.literal_eval(node.value)
            lines = source.splitlines(keepends=True)
            body = "build_time_vars = " + pprint.pformat(
                pbs_build_vars(variables, toolchain=toolchain), width=100
            )
            return (
                "".join(lines[: node.lineno - 1]) + body + "\n" + "".join(lines[node.end_lineno :])
            )
    raise ValueError("no build_time_vars assignment")


def pkgconfig_files(minor: str, abiflags: str = "") -> dict[str, str]:
    """PBS's ``lib/pkgconfig`` files: name -> text (``python3*.pc`` are symlinks there)."""

    def pc(description: str, libs: str) -> str:
        return (
            "# See: man pkg-config\n"
            f"prefix={PBS_PREFIX}\n"
            "exec_prefix=${prefix}\n"
            "libdir=${exec_prefix}/lib\n"
            "includedir=${prefix}/include\n"
            "\n"
            "Name: Python\n"
            f"Description: {description}\n"
            "Requires:\n"
            f"Version: {minor}\n"
            f"Libs.private: -ldl -lpthread -L/tools/deps/lib -L{PBS_PREFIX}/lib\n"
            f"Libs: {libs}\n"
            f"Cflags: -I${{includedir}}/python{minor}{abiflags}\n"
        )

    return {
        f"python-{minor}.pc": pc("Build a C extension for Python", ""),
        f"python-{minor}-embed.pc": pc(
            "Embed Python into an application", f"-L${{libdir}} -lpython{minor}{abiflags}"
        ),
    }


def _entry(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, PBS_MTIME
    return info, io.BytesIO(data)


def pbs_style_archive(
    archive: RealArchive, out_dir: Path, *, tag: str, toolchain: str = "bare"
) -> RealArchive:
    """Repack ``archive`` (an ``install_only`` tar.gz) with PBS's build-machine paths.

    The copy gets build tag ``tag`` so that several variants can share a mirror tree.
    """
    if archive.flavor == "full" or not archive.filename.endswith(".tar.gz"):
        raise ValueError("only install_only .tar.gz archives are supported")
    filename = pbs_filename(archive.version, tag, archive.triple, archive.flavor, "gz")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / filename
    planted = 0
    minor, abiflags = archive.minor, ""
    with (
        tarfile.open(archive.path, "r:gz") as source,
        target.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0) as stream,
        tarfile.open(fileobj=stream, mode="w|", format=tarfile.GNU_FORMAT) as out,
    ):
        for member in source:
            data = source.extractfile(member) if member.isfile() else None
            if data is not None and _SYSCONFIGDATA.match(member.name):
                text = rewrite_sysconfigdata(data.read().decode(), toolchain=toolchain)
                abiflags = "t" if member.name.split("/")[2].endswith("t") else ""
                info, body = _entry(member.name, text.encode(), member.mode)
                out.addfile(info, body)
                planted += 1
                continue
            out.addfile(member, data)
        for name, text in pkgconfig_files(minor, abiflags).items():
            out.addfile(*_entry(f"python/lib/pkgconfig/{name}", text.encode()))
        for link, to in ((f"python3{abiflags}", ""), (f"python3{abiflags}-embed", "-embed")):
            info = tarfile.TarInfo(f"python/lib/pkgconfig/{link}.pc")
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, f"python-{minor}{to}.pc", 0
            out.addfile(info)
    if planted == 0:
        raise ValueError(f"{archive.path}: no _sysconfigdata module found")
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    return attrs.evolve(
        archive, path=target, filename=filename, tag=tag, sha256=digest, size=target.stat().st_size
    )


# -- a tiny sdist with a C extension ---------------------------------------------------------

_EXTENSION_C = r"""
#include <Python.h>

static PyObject *add(PyObject *self, PyObject *args) {
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
    return PyLong_FromLong(a + b);
}

static PyMethodDef methods[] = {
    {"add", add, METH_VARARGS, "Add two integers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "hello_ext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_hello_ext(void) { return PyModule_Create(&module); }
"""

# An in-tree PEP 517 backend. It compiles with setuptools' build_ext when setuptools is
# importable (the code path of every setuptools C extension, driven by sysconfig's CC,
# CFLAGS, LDSHARED and INCLUDEPY), else straight from those sysconfig variables. It packs
# the wheel itself, because ensurepip's setuptools predates its own bdist_wheel and no
# `wheel` package can be installed offline.
_BACKEND_PY = r"""
import base64, hashlib, os, shlex, subprocess, sys, sysconfig, zipfile

NAME, VERSION, MODULE = "hello-ext", "0.1", "hello_ext"
DIST = NAME.replace("-", "_")


def _compile(build):
    try:
        from setuptools import Distribution, Extension
    except ImportError:
        return _compile_from_sysconfig(build), "sysconfig"
    dist = Distribution({"name": NAME, "ext_modules": [Extension(MODULE, ["hello.c"])]})
    command = dist.get_command_obj("build_ext")
    command.build_lib = build
    command.build_temp = os.path.join(build, "tmp")
    command.ensure_finalized()
    command.run()
    return command.get_ext_fullpath(MODULE), "setuptools"


def _compile_from_sysconfig(build):
    var = sysconfig.get_config_var
    obj = os.path.join(build, "hello.o")
    target = os.path.join(build, MODULE + var("EXT_SUFFIX"))
    cc = shlex.split(var("CC")) + shlex.split(var("CFLAGS")) + shlex.split(var("CCSHARED"))
    subprocess.run(cc + ["-I" + var("INCLUDEPY"), "-c", "hello.c", "-o", obj], check=True)
    subprocess.run(shlex.split(var("LDSHARED")) + [obj, "-o", target], check=True)
    return target


def _tag():
    interpreter = "cp%d%d" % sys.version_info[:2]
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return "%s-%s%s-%s" % (interpreter, interpreter, sys.abiflags, platform)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    build = os.path.abspath("build-wheel")
    os.makedirs(build, exist_ok=True)
    built, how = _compile(build)
    wheel_name = "%s-%s-%s.whl" % (DIST, VERSION, _tag())
    info = "%s-%s.dist-info" % (DIST, VERSION)
    files = {
        os.path.basename(built): open(built, "rb").read(),
        info + "/METADATA": (
            "Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: built with %s\n"
            % (NAME, VERSION, how)
        ).encode(),
        info + "/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: backend\nRoot-Is-Purelib: false\nTag: %s\n" % _tag()
        ).encode(),
    }
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel_name), "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append("%s,sha256=%s,%d" % (name, digest.decode(), len(data)))
        record.append(info + "/RECORD,,")
        wheel.writestr(info + "/RECORD", "\n".join(record) + "\n")
    return wheel_name
"""

_PYPROJECT = """\
[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]

[project]
name = "hello-ext"
version = "0.1"
"""

#: The module the sdist builds, and a call that proves the compiled code runs.
EXTENSION_MODULE = "hello_ext"
EXTENSION_PROBE = "import hello_ext; print(hello_ext.add(40, 2), hello_ext.__file__)"


def write_extension_sdist(out_dir: Path) -> Path:
    """Write ``hello_ext-0.1.tar.gz``: an sdist whose only module is written in C."""
    files = {
        "pyproject.toml": _PYPROJECT,
        "backend.py": _BACKEND_PY,
        "hello.c": _EXTENSION_C,
        "PKG-INFO": "Metadata-Version: 2.1\nName: hello-ext\nVersion: 0.1\n",
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "hello_ext-0.1.tar.gz"
    with tarfile.open(target, "w:gz") as tar:
        for name, text in files.items():
            tar.addfile(*_entry(f"hello_ext-0.1/{name}", text.encode()))
    return target
