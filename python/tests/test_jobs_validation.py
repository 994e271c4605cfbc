"""The Validator seen from Python: every rule on both sides of its limit, rejected before storing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import zenith
from hypothesis import given
from hypothesis import strategies as st
from jobs_support import zhome  # noqa: F401  (fixture)
from zenith import _zenith
from zenith.jobs import store


def rejected(field: str, fn, *args, **kwargs) -> zenith.ValidationError:
    with pytest.raises(zenith.ValidationError) as info:
        fn(*args, **kwargs)
    assert info.value.field == field, str(info.value)
    assert str(info.value).startswith(f"invalid {field}: ")
    return info.value


def nothing_stored(root: Path) -> None:
    assert store(root).list(None, None) == []
    assert not (root / "runner.pid").exists()


def test_exception_tree() -> None:
    assert issubclass(zenith.ValidationError, zenith.ZenithError)
    assert issubclass(zenith.JobError, zenith.ZenithError)
    assert zenith.ValidationError.__module__ == "zenith._zenith"


def test_name_limits(zhome: Path) -> None:  # noqa: F811
    zenith.job(name="a")(len)
    zenith.job(name="a" * 256)(len)
    err = rejected("name", zenith.job, name="a" * 257)
    assert err.rule == "must be at most 256 characters, got 257"
    rejected("name", zenith.job, name="")
    rejected("name", zenith.job, name="has space")
    rejected("name", zenith.job, name="dot.name")
    rejected("name", zenith.job, name="é")
    nothing_stored(zhome)


def test_command_rules_reject_before_storing(zhome: Path) -> None:  # noqa: F811
    for argv, seq in [
        (["echo", "$(id)"], "$("),
        (["echo", "`id`"], "`"),
        (["a", "&&", "b"], "&&"),
        (["a", "||", "b"], "||"),
        (["a;b"], ";"),
        (["a", "|", "b"], "|"),
        (["a", ">", "f"], ">"),
        (["a", "<", "f"], "<"),
        (["cat", "../etc/passwd"], ".."),
    ]:
        err = rejected("command", zenith.submit, argv)
        assert err.rule.startswith(f"must not contain {seq!r}".replace("'", '"')), err.rule
    rejected("command", zenith.submit, [])
    rejected("command", zenith.submit, "echo hi")
    rejected("command", zenith.submit, ["a" * 65537])
    nothing_stored(zhome)


def test_command_length_limit_accepts_65536_bytes() -> None:
    _zenith.validate_command(["a" * 65536])
    _zenith.validate_command(["a" * 32767, "b" * 32767])
    with pytest.raises(zenith.ValidationError, match="at most 65536 bytes, got 65537"):
        _zenith.validate_command(["a" * 32768, "b" * 32768])


def test_path_rules() -> None:
    _zenith.validate_path("a" * 4096)
    _zenith.validate_path("a..b/..c")
    with pytest.raises(zenith.ValidationError, match="at most 4096 bytes, got 4097"):
        _zenith.validate_path("a" * 4097)
    with pytest.raises(zenith.ValidationError, match="NUL"):
        _zenith.validate_path("a\0b")
    with pytest.raises(zenith.ValidationError, match=r"'\.\.' component"):
        _zenith.validate_path("/data/../etc")


@pytest.mark.parametrize(
    ("field", "ok", "bad"),
    [("gpus", [0, 1024], [-1, 1025]), ("priority", [-1000, 1000], [-1001, 1001]), ("cpus", [1, 4096], [0, 4097])],
)
def test_numeric_limits(zhome: Path, field: str, ok: list[int], bad: list[int]) -> None:  # noqa: F811
    for value in ok:
        zenith.job(**{field: value})(len)
    for value in bad:
        job_fn = zenith.job(**{field: value})(len)
        rejected(field, zenith.submit, job_fn)
    rejected(field, zenith.job, **{field: "1"})
    rejected(field, zenith.job, **{field: True})
    nothing_stored(zhome)


def test_memory_strings_are_exact() -> None:
    assert _zenith.parse_memory("512MB") == 512_000_000
    assert _zenith.parse_memory("8GB") == 8_000_000_000
    assert _zenith.parse_memory("1.5GiB") == 1_610_612_736
    assert _zenith.parse_memory("1B") == 1
    assert _zenith.parse_memory("9223372036854775807B") == 2**63 - 1
    for bad in ["8", "8 GB", "8gb", "-1GB", "1.5B", "0MB", "1e3MB", "9223372036854775808B", "GB"]:
        with pytest.raises(zenith.ValidationError) as info:
            _zenith.parse_memory(bad)
        assert info.value.field == "memory"


def test_memory_in_decorator_and_as_bytes(zhome: Path) -> None:  # noqa: F811
    assert zenith.job(memory="1.5GiB")(len).options.memory == 1_610_612_736
    assert zenith.job(memory=1)(len).options.memory == 1
    rejected("memory", zenith.job, memory="1.5B")
    rejected("memory", zenith.job, memory=1.5)
    rejected("memory", zenith.submit, zenith.job(memory=0)(len))
    rejected("backend", zenith.job, backend="kubernetes")
    nothing_stored(zhome)


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["B", "KB", "MB", "GB", "KiB", "MiB", "GiB"]))
def test_memory_integer_units(n: int, unit: str) -> None:
    factor = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
    assert _zenith.parse_memory(f"{n}{unit}") == n * factor[unit]


@given(st.text(alphabet=st.characters(codec="ascii"), min_size=1, max_size=300))
def test_names_match_the_rule(name: str) -> None:
    ok = len(name) <= 256 and all(c.isalnum() or c in "-_" for c in name)
    if ok:
        _zenith.validate_name(name)
    else:
        with pytest.raises(zenith.ValidationError):
            _zenith.validate_name(name)


def test_unknown_job_id_is_a_job_error(zhome: Path) -> None:  # noqa: F811
    for call in (zenith.status, zenith.wait, zenith.result, zenith.cancel, zenith.logs):
        with pytest.raises(zenith.JobError, match=r"no job with id 12345 in .*jobs\.db"):
            call(12345)


def test_unpicklable_function_says_so(zhome: Path) -> None:  # noqa: F811
    lock = threading.Lock()

    def uses_lock() -> bool:
        return lock.locked()

    with pytest.raises(zenith.JobError, match="cannot be pickled with cloudpickle"):
        zenith.submit(uses_lock)
    nothing_stored(zhome)
    assert list(zhome.glob("payloads/*")) == []
