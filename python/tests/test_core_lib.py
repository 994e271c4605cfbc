"""The C ABI library through ctypes, found the way consumers find it: ``ZENITH_CORE_LIB``."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import pytest
import zenith
from zenith._core_lib import ENV_VAR, find_core_lib

ROOT = Path(__file__).resolve().parents[2]

# Codes of include/zenith.h.
ZENITH_OK = 0
ZENITH_ERR_INVALID_ARG = 2
ZENITH_ERR_VALIDATION = 7
ZENITH_FFI_PANIC = 11


def built_library() -> Path:
    """``libzenith_core.so`` of the release build: ``cargo build --release -p zenith-ffi`` puts it
    in ``target/release``, the cargo tests leave it in ``target/release/deps``; the newer wins."""
    release = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
    built = [p for p in (release, release / "deps") if (p / "libzenith_core.so").is_file()]
    if not built:
        message = f"libzenith_core.so is not built in {release}: run `cargo build --release -p zenith-ffi`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return max((p / "libzenith_core.so" for p in built), key=lambda p: p.stat().st_mtime)


@pytest.fixture
def core(monkeypatch: pytest.MonkeyPatch) -> ctypes.CDLL:
    """The library named by ``ZENITH_CORE_LIB``, pointed at the build when the caller did not."""
    if find_core_lib() is None:
        monkeypatch.setenv(ENV_VAR, str(built_library()))
    path = find_core_lib()
    assert path is not None
    lib = ctypes.CDLL(path)
    lib.zenith_version.restype = ctypes.c_char_p
    lib.zenith_last_error.restype = ctypes.c_char_p
    lib.zenith_test_panic.restype = ctypes.c_int32
    for name in (
        "zenith_init",
        "zenith_validate_job_name",
        "zenith_validate_path",
        "zenith_validate_command",
    ):
        getattr(lib, name).argtypes = [ctypes.c_char_p]
        getattr(lib, name).restype = ctypes.c_int32
    return lib


def test_find_core_lib_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert find_core_lib() is None
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing.so"))
    assert find_core_lib() is None
    lib = tmp_path / "libzenith_core.so"
    lib.write_bytes(b"")
    monkeypatch.setenv(ENV_VAR, str(lib))
    assert find_core_lib() == str(lib)


def test_version_matches_the_package(core: ctypes.CDLL) -> None:
    version = core.zenith_version().decode()
    assert version == zenith.__version__


def test_validate_job_name(core: ctypes.CDLL) -> None:
    assert core.zenith_validate_job_name(b"train-resnet_50") == ZENITH_OK
    assert core.zenith_last_error() == b""
    assert core.zenith_validate_job_name(b"x" * 256) == ZENITH_OK
    for bad in (b"", b"x" * 257, b"train model", b"rm;ls", "caf\u00e9".encode()):
        assert core.zenith_validate_job_name(bad) == ZENITH_ERR_VALIDATION, bad
        assert b"name" in core.zenith_last_error()
    assert core.zenith_validate_job_name(None) == ZENITH_ERR_INVALID_ARG
    assert core.zenith_validate_job_name(b"\xff") == ZENITH_ERR_INVALID_ARG


def test_validate_path_and_command(core: ctypes.CDLL) -> None:
    assert core.zenith_validate_path(b"/data/train/shard-0.parquet") == ZENITH_OK
    assert core.zenith_validate_path(b"/data/../etc/passwd") == ZENITH_ERR_VALIDATION
    assert core.zenith_validate_command(b"python train.py --epochs 3") == ZENITH_OK
    for bad in (b"python train.py && rm -rf x", b"echo $(id)", b"a | b", b"cat < f", b""):
        assert core.zenith_validate_command(bad) == ZENITH_ERR_VALIDATION, bad


def test_errors_and_panics_come_back_as_codes(core: ctypes.CDLL) -> None:
    assert core.zenith_init(b'{"unknown": 1}') == ZENITH_ERR_INVALID_ARG
    assert b"unknown" in core.zenith_last_error()
    assert core.zenith_test_panic() == ZENITH_FFI_PANIC
    assert b"panic" in core.zenith_last_error()
    assert core.zenith_init(None) == ZENITH_OK


def test_info_reports_the_core_library(core: ctypes.CDLL, capsys: pytest.CaptureFixture[str]) -> None:
    path = find_core_lib()
    assert path is not None
    assert zenith.info()["core_lib"] == path
    assert f"core lib: {path}" in capsys.readouterr().out
