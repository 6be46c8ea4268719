"""The worker decides what runs, not the message (DESIGN section 11): hand-made messages sent
straight to ``python -m databacked.worker`` -- os:system, pickle, a forged command, a wrong
signature -- run nothing, are answered with one sentence, and the next message is served."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from databacked.errors import ExecutorError
from databacked.executors.remote import decode_answer, encode_call
from databacked.executors.signing import KEY_VARIABLE
from databacked.executors.subprocess import SubprocessExecutor
from databacked.executors.wire import CALL, OUTCOME, PROTOCOL, read_document, read_tar, write_tar
from databacked.testing.executor_contract import add

KEY = "k" * 32


def _message(
    function: Any,
    items: list[list[Any]],
    members: dict[str, bytes] | None = None,
    key: str | None = None,
) -> bytes:
    """A call tar written by hand, as an attacker with access to the broker would."""
    call = {"protocol": PROTOCOL, "function": function, "items": items, "allow_pickle": True}
    return write_tar(CALL, call, members or {}, key=key.encode() if key else None)


def _worker(
    payload: bytes, cwd: Path, *args: str, key: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != KEY_VARIABLE}
    env["PYTHONPATH"] = os.pathsep.join(p or os.getcwd() for p in sys.path)
    if key:
        env[KEY_VARIABLE] = key
    command = [sys.executable, "-m", "databacked.worker", *args]
    return subprocess.run(command, input=payload, cwd=cwd, env=env, capture_output=True,
                          timeout=120, check=False)  # fmt: skip


def _served(proc: subprocess.CompletedProcess[bytes]) -> list[dict[str, Any]]:
    assert proc.returncode == 0, proc.stderr.decode()
    return read_document(read_tar(io.BytesIO(proc.stdout)), OUTCOME)["results"]


def _refused(proc: subprocess.CompletedProcess[bytes]) -> str:
    assert proc.returncode == 2, proc.stderr.decode()
    line = proc.stderr.decode().strip().splitlines()[-1]
    assert line.startswith("databacked.worker: refused: "), line
    return line


def test_a_message_naming_os_system_runs_nothing_and_the_next_one_is_served(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    for function in ("os:system", "posix:system", "databacked.worker:os.system",
                     "subprocess:getoutput", "builtins:exec", "databacked.worker:__builtins__",
                     "databacked.worker.gate:importlib.import_module"):  # fmt: skip
        line = _refused(_worker(_message(function, [[f"touch {canary}"]]), tmp_path))
        assert "not a databacked step" in line or "may not import" in line or "dunder" in line
    assert not canary.exists()
    # The same worker command serves a legitimate call right after.
    call = encode_call(add, [[2, 3]])
    assert _served(_worker(call, tmp_path)) == [{"ok": True, "value": 5}]


def test_a_reference_value_naming_os_system_is_refused(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    sneaky = {"$type": "ref", "ref": "os:system"}
    line = _refused(_worker(_message("databacked.testing.executor_contract:echo", [[sneaky]]),
                            tmp_path))  # fmt: skip
    assert "'os:system'" in line
    forged_class = {"$type": "dataclass", "class": "subprocess:Popen", "fields": {"args": "x"}}
    line = _refused(_worker(_message("databacked.testing.executor_contract:echo",
                                     [[forged_class]]), tmp_path))  # fmt: skip
    assert "may not import 'subprocess'" in line
    # A dataclass of an allowed module that is not one, named as a dataclass: refused too.
    not_a_class = {"$type": "dataclass", "class": "databacked.worker.gate:Gate", "fields": {}}
    line = _refused(_worker(_message("databacked.testing.executor_contract:echo",
                                     [[not_a_class]]), tmp_path))  # fmt: skip
    assert "as a dataclass, which it is not" in line
    assert not canary.exists()


def test_a_plain_function_in_an_allowed_module_is_not_a_step(tmp_path: Path) -> None:
    (tmp_path / "helpers_mod.py").write_text(
        textwrap.dedent(
            f"""
            import databacked as db
            from pathlib import Path

            def wipe():
                Path({str(tmp_path / "canary")!r}).touch()

            @db.step
            def double(x):
                return 2 * x
            """
        )
    )
    line = _refused(_worker(_message("helpers_mod:wipe", [[]]), tmp_path))
    assert "not a databacked step" in line
    assert not (tmp_path / "canary").exists()
    # The project folder's own steps run.
    assert _served(_worker(_message("helpers_mod:double", [[21]]), tmp_path)) == [
        {"ok": True, "value": 42}
    ]


def test_a_step_outside_the_allowed_modules_is_refused_unless_imported(tmp_path: Path) -> None:
    elsewhere, project = tmp_path / "site", tmp_path / "project"
    elsewhere.mkdir()
    project.mkdir()
    source = "import databacked as db\n\n@db.step\ndef one():\n    return 1\n"
    (elsewhere / "labsteps_x.py").write_text(source)
    env_path = os.pathsep.join([str(elsewhere), *(p or os.getcwd() for p in sys.path)])
    message = _message("labsteps_x:one", [[]])

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        env = {k: v for k, v in os.environ.items() if k != KEY_VARIABLE}
        env["PYTHONPATH"] = env_path
        return subprocess.run([sys.executable, "-m", "databacked.worker", *args], input=message,
                              cwd=project, env=env, capture_output=True, timeout=120)  # fmt: skip

    assert "may not import 'labsteps_x'" in _refused(run())
    assert _served(run("--import", "labsteps_x")) == [{"ok": True, "value": 1}]


def test_a_pickle_member_is_refused_without_allow_pickle(tmp_path: Path) -> None:
    import cloudpickle

    canary = tmp_path / "canary"
    bomb = cloudpickle.dumps(_Bomb(str(canary)))
    members = {"params/0.pkl": bomb}
    value = {"$type": "pickle", "member": "params/0.pkl"}
    message = _message("databacked.testing.executor_contract:echo", [[value]], members)

    line = _refused(_worker(message, tmp_path))
    assert "--allow-pickle" in line
    assert not canary.exists()
    # The message's own "allow_pickle": true changed nothing; the worker's flag does.
    served = _served(_worker(message, tmp_path, "--allow-pickle"))
    assert served[0]["ok"] is True
    assert canary.exists()  # with --allow-pickle, whoever sends a message runs code


class _Bomb:
    """Unpickling it touches a file: what a pickle from a broker can do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (Path.touch, (Path(self.path),))


def test_a_forged_command_datum_is_refused(tmp_path: Path) -> None:
    from databacked.executors.wire import Encoder
    from databacked.specs.transform import DatumTask
    from databacked.store import Store

    canary = tmp_path / "canary"
    task = DatumTask("k", "evil", "d", (), cmd=("sh", "-c", f"touch {canary}"))
    encoder = Encoder("params")
    items = [[encoder.encode(task), encoder.encode(Store(tmp_path / "data"))]]
    message = _message("databacked.specs.runner:run_task", items, encoder.members)
    line = _refused(_worker(message, tmp_path))
    assert "not the transform of a spec" in line
    assert not canary.exists()


def test_a_text_function_in_a_call_spec_goes_through_the_gate(tmp_path: Path) -> None:
    from databacked.engine.worker import CallSpec
    from databacked.executors.wire import Encoder
    from databacked.store import Store

    canary = tmp_path / "canary"
    spec = CallSpec("k", "evil", "os:system", params={"command": f"touch {canary}"},
                    persist=False)  # fmt: skip
    encoder = Encoder("params")
    items = [[encoder.encode(spec), encoder.encode(Store(tmp_path / "data"))]]
    line = _refused(_worker(_message("databacked.engine.worker:run_call", items, encoder.members),
                            tmp_path))  # fmt: skip
    assert "'os:system'" in line
    assert not canary.exists()


def test_with_a_key_unsigned_and_mis_signed_messages_are_refused(tmp_path: Path) -> None:
    call = encode_call(add, [[1, 2]], key=KEY.encode())
    answer = _served(_worker(call, tmp_path, key=KEY))
    assert answer == [{"ok": True, "value": 3}]

    unsigned = encode_call(add, [[1, 2]])
    assert "not signed" in _refused(_worker(unsigned, tmp_path, key=KEY))
    wrong = encode_call(add, [[1, 2]], key=b"another key of 32 bytes........")
    assert "wrong signature" in _refused(_worker(wrong, tmp_path, key=KEY))
    # An altered member breaks the signature too.
    files = read_tar(io.BytesIO(call))
    altered = json.loads(files[CALL])
    altered["items"] = [[40, 2]]
    files[CALL] = json.dumps(altered).encode()
    buffer = io.BytesIO()
    import tarfile

    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert "wrong signature" in _refused(_worker(buffer.getvalue(), tmp_path, key=KEY))


def test_the_driver_refuses_an_unsigned_answer_when_it_has_a_key() -> None:
    answer = write_tar(OUTCOME, {"protocol": PROTOCOL, "results": [{"ok": True, "value": 1}]}, {})
    with pytest.raises(ExecutorError, match="not signed"):
        decode_answer(answer, limits=None, allow_pickle=False, executor="subprocess",
                      key=KEY.encode())  # fmt: skip


def test_subprocess_executor_with_a_key_signs_and_its_refusals_are_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SubprocessExecutor(workers=1, key=KEY) as ex:
        assert ex.submit(add, 2, 2).result(timeout=120) == 4
        future = ex.submit(os.system, f"touch {tmp_path / 'canary'}")
        with pytest.raises(ExecutorError, match=r"refused the call: .*not a databacked step"):
            future.result(timeout=120)
        assert ex.submit(add, 3, 3).result(timeout=120) == 6
    assert not (tmp_path / "canary").exists()


def test_celery_payload_is_gzip_base64_of_the_same_tar() -> None:
    # The celery worker serves the same tar: the tests in tests/executors/test_celery.py send
    # hand-made ones through the broker; here, only that packing keeps the bytes.
    from databacked.executors.celery import _pack

    tar = _message("os:system", [["true"]])
    assert gzip.decompress(base64.b64decode(_pack(tar))) == tar


def test_worker_key_in_databacked_toml_signs_the_subprocess_executors_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``[worker] key`` reaches the driver's executor and, through it, its workers."""
    from databacked.config import load_settings
    from databacked.engine.api import _executor_options
    from databacked.executors import get_executor

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(KEY_VARIABLE, raising=False)
    (tmp_path / "databacked.toml").write_text(f'[worker]\nkey = "{KEY}"\n')
    options = _executor_options("subprocess", load_settings())
    assert options == {"key": KEY}
    with get_executor("subprocess", workers=1, **options) as ex:
        assert ex.key == KEY.encode()
        call = ex.encode(add, [[1, 1]])
        # A worker started here reads the same [worker] key and serves it ...
        assert _served(_worker(call, tmp_path)) == [{"ok": True, "value": 2}]
        # ... one with another key refuses it.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        assert "wrong signature" in _refused(_worker(call, elsewhere, key="x" * 32))
        assert ex.submit(add, 1, 1).result(timeout=120) == 2


SPECS = """
pipeline: upper
input: {repo: texts, glob: "/(*).txt"}
transform:
  cmd: [sh, -c, "tr a-z A-Z < {input_dir}/texts/{1}.txt > {output_dir}/{1}.up"]
---
pipeline: count
input: {repo: texts, glob: "/(*).txt"}
transform:
  python: textsteps_trust:count
"""

TEXTSTEPS = """
def count(files, output_dir):
    for name, path in files.items():
        (output_dir / (path.stem + ".n")).write_text(str(len(path.read_text())))
"""


def test_spec_transforms_run_on_subprocess_workers_started_in_the_project(tmp_path: Path) -> None:
    """A worker runs a spec's cmd and python transforms because its project's specs name them."""
    from databacked.catalog import Catalog
    from databacked.specs.runner import run_specs
    from databacked.store import Store

    project = tmp_path / "project"
    (project / "pipelines").mkdir(parents=True)
    (project / "pipelines" / "texts.yml").write_text(SPECS)
    (project / "textsteps_trust.py").write_text(TEXTSTEPS)
    sys.path.insert(0, str(project))  # the driver imports the transform as the CLI would
    store = Store(tmp_path / "data")
    for name, text in {"a": "hello", "b": "world"}.items():
        store.put_bytes(f"texts/{name}.txt", text.encode())
    with (
        Catalog.open(f"sqlite:///{tmp_path / 'c.db'}") as catalog,
        SubprocessExecutor(workers=1, cwd=project) as ex,
    ):
        result = run_specs(project / "pipelines", store=store, catalog=catalog, executor=ex)
    assert result.ok, [r.error for r in result.rows if r.error]
    assert store.read_bytes("upper/b.up") == b"WORLD"
    assert store.read_bytes("count/a.n") == b"5"
