"""Fingerprints: helpers are followed, comments and formatting are not code."""

from __future__ import annotations

import pytest

from databacked.engine.keys import call_key, params_hash
from databacked.errors import UnhashableValueError

BASE = """
import databacked as db

def helper(x):
    return x + {inc}

@db.step
def use(x: int) -> int:
    {comment}
    return helper(x)

@db.step
def other(x: int) -> int:
    return x * 2
"""


def test_helper_edit_changes_users_only(write_module) -> None:
    a = write_module("k", BASE.format(inc=1, comment="pass"))
    b = write_module("k", BASE.format(inc=2, comment="pass"))
    assert a.use.fingerprint != b.use.fingerprint
    assert a.other.fingerprint == b.other.fingerprint


def test_comment_and_docstring_do_not_count(write_module) -> None:
    a = write_module("k", BASE.format(inc=1, comment="# a comment"))
    b = write_module("k", BASE.format(inc=1, comment='"""A docstring."""  # and a comment'))
    c = write_module("k", BASE.format(inc=1, comment="").replace("x + 1", "(x   +   1)"))
    assert a.use.fingerprint == b.use.fingerprint == c.use.fingerprint


def test_version_pins_the_fingerprint(write_module) -> None:
    mod = write_module(
        "k", "import databacked as db\n@db.step(version=3)\ndef f(x):\n    return x\n"
    )
    assert mod.f.fingerprint == "f@3"


def test_unhashable_parameter_is_named() -> None:
    with pytest.raises(UnhashableValueError, match=r"'thing'.*'s'"):
        params_hash("s", {"thing": object()})


def test_key_depends_on_every_part() -> None:
    base = call_key("f@1", "p", {"a": ["h1"]})
    assert base == call_key("f@1", "p", {"a": ["h1"]})
    assert (
        len(
            {
                base,
                call_key("f@2", "p", {"a": ["h1"]}),
                call_key("f@1", "q", {"a": ["h1"]}),
                call_key("f@1", "p", {"a": ["h2"]}),
                call_key("f@1", "p", {"b": ["h1"]}),
            }
        )
        == 5
    )


def test_function_without_source_falls_back_to_bytecode_with_a_warning() -> None:
    import databacked as db

    namespace: dict = {"db": db}
    exec(compile("def f(x):\n    return x + 1\n", "<no file>", "exec"), namespace)
    step = db.step(namespace["f"])
    with pytest.warns(UserWarning, match="source of f is not available"):
        first = step.fingerprint
    exec(compile("def f(x):\n    return x + 2\n", "<no file>", "exec"), namespace)
    with pytest.warns(UserWarning):
        assert db.step(namespace["f"]).fingerprint != first


def test_script_run_as_main_works_under_processes(tmp_path) -> None:
    import subprocess
    import sys

    script = tmp_path / "script.py"
    script.write_text(
        "import databacked as db\n"
        "def helper(x):\n    return x * 3\n"
        "@db.step(target='t/{x}.json')\ndef triple(x: int) -> int:\n    return helper(x)\n"
        "@db.pipeline\ndef p():\n    return triple.map(x=[1, 2])\n"
        "if __name__ == '__main__':\n"
        f"    r = db.run(p, store={str(tmp_path / 'd')!r}, "
        f"catalog='sqlite:///{tmp_path / 'c.db'}', executor='processes', workers=2)\n"
        "    assert r.ok, r.summary()\n"
        "    print([a.load() for a in r.value])\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[3, 6]"


def test_module_constants_count(write_module) -> None:
    source = "import databacked as db\nLIMIT = {}\n@db.step\ndef f(x):\n    return min(x, LIMIT)\n"
    assert (
        write_module("k", source.format(3)).f.fingerprint
        != write_module("k", source.format(4)).f.fingerprint
    )
    assert (
        write_module("k", source.format(3)).f.fingerprint
        == write_module("k", source.format(3)).f.fingerprint
    )
