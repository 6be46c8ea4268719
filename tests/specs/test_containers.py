"""``transform.image``: spec commands run inside a container image pinned to its digest.

No container runtime is installed here, so the runtime is a stand-in program: it answers
``image inspect`` from a table of digests, records every argument list it gets, and runs
``run``/``exec`` commands on the host with the container's mount points mapped back to the
host folders -- so the whole path (digest in the key, mounts, environment, outputs) is real
except for the isolation itself.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from databacked.catalog import Catalog
from databacked.errors import ConfigError, SpecError
from databacked.specs.containers import INPUT_DIR, OUTPUT_DIR, resolve
from databacked.specs.runner import run_specs
from databacked.store import Store

STAND_IN = f"""\
#!{sys.executable}
import json, os, subprocess, sys
here = os.path.dirname(os.path.abspath(__file__))
args = sys.argv[1:]
with open(os.path.join(here, "calls.jsonl"), "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:2] == ["image", "inspect"]:
    digests = json.load(open(os.path.join(here, "images.json")))
    if args[-1] not in digests:
        sys.exit(1)
    print(digests[args[-1]])
    sys.exit(0)
if args[0] == "pull":
    print("manifest unknown: " + args[1], file=sys.stderr)
    sys.exit(1)
mounts, cwd, i = [], None, 1
with_value = {{"-v", "--bind", "-w", "--pwd", "-e", "--user"}}
while args[i].startswith("-"):
    if args[i] in ("-v", "--bind"):
        host, inside, mode = args[i + 1].split(":")
        mounts.append((inside, host))
    if args[i] in ("-w", "--pwd"):
        cwd = args[i + 1]
    i += 2 if args[i] in with_value else 1
command = args[i + 1:]
def host(text):
    for inside, path in sorted(mounts, key=lambda m: -len(m[0])):
        text = text.replace(inside, path)
    return text
env = dict(os.environ)
for name, value in list(env.items()):
    if name.startswith("APPTAINERENV_"):
        env[name[len("APPTAINERENV_"):]] = value
env = {{k: host(v) for k, v in env.items()}}
done = subprocess.run([host(a) for a in command], cwd=host(cwd) if cwd else None, env=env)
sys.exit(done.returncode)
"""

SPEC = """\
pipeline: up
input:
  pfs:
    repo: texts
    glob: "/(*).txt"
transform:
  image: {image}
  cmd:
    - sh
    - -c
    - >-
      tr a-z A-Z < {{input_dir}}/texts/{{1}}.txt > {{output_dir}}/{{1}}.up;
      echo $GREETING > {{output_dir}}/{{1}}.env
  env:
    GREETING: hello from {{1}}
"""

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    program = runtime / "fake-docker"
    program.write_text(STAND_IN)
    program.chmod(0o755)
    (runtime / "images.json").write_text(json.dumps({"example/tools:1.0": DIGEST_A}))
    monkeypatch.setenv("DATABACKED_CONTAINERS__RUNTIME", "docker")
    monkeypatch.setenv("DATABACKED_CONTAINERS__EXECUTABLE", str(program))
    monkeypatch.setenv("DATABACKED_CANARY_SECRET", "never-in-a-container")
    pipes = tmp_path / "pipelines"
    pipes.mkdir()
    (pipes / "up.yml").write_text(SPEC.format(image="example/tools:1.0"))
    store = Store(tmp_path / "data")
    store.put_bytes("texts/a.txt", b"abc\n")
    store.put_bytes("texts/b.txt", b"xyz\n")
    return {
        "pipes": pipes,
        "store": store,
        "catalog": f"sqlite:///{tmp_path / 'catalog.db'}",
        "runtime": runtime,
    }


def _calls(runtime: Path) -> list[list[str]]:
    lines = (runtime / "calls.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _run(project: dict[str, Any]) -> Any:
    return run_specs(
        project["pipes"], store=project["store"], catalog=project["catalog"], executor="inline"
    )


def test_cmd_runs_in_the_image_with_mounts_and_only_its_own_environment(
    project: dict[str, Any],
) -> None:
    result = _run(project)
    assert result.ok
    store = project["store"]
    assert store.read_bytes("up/a.up") == b"ABC\n"
    assert store.read_bytes("up/b.env") == b"hello from b\n"
    runs = [c for c in _calls(project["runtime"]) if c[0] == "run"]
    assert len(runs) == 2
    argv = runs[0]
    assert argv[:3] == ["run", "--rm", "-i"]
    mounts = [argv[i + 1] for i, a in enumerate(argv) if a == "-v"]
    assert any(m.endswith(f":{INPUT_DIR}:ro") for m in mounts)
    assert any(m.endswith(f":{OUTPUT_DIR}:rw") for m in mounts)
    image = argv.index(DIGEST_A)  # runs the pinned image, not the mutable tag
    assert argv[image + 1 : image + 3] == ["sh", "-c"]
    assert f"{INPUT_DIR}/texts/" in argv[image + 3] and f"> {OUTPUT_DIR}/" in argv[image + 3]
    passed = {argv[i + 1] for i, a in enumerate(argv) if a == "-e"}
    assert "GREETING" in passed and "DATABACKED_DATUM" in passed
    assert not any("CANARY" in name or "TEST" in name for name in passed)


def test_image_digest_is_part_of_the_key_and_the_catalog(project: dict[str, Any]) -> None:
    assert _run(project).ok
    again = _run(project)
    assert {r.status for r in again.rows} == {"cached"}

    # the tag now points at another image: every datum runs again
    (project["runtime"] / "images.json").write_text(json.dumps({"example/tools:1.0": DIGEST_B}))
    third = _run(project)
    assert {r.status for r in third.rows} == {"ran"}
    with Catalog.open(project["catalog"]) as catalog:
        calls = catalog.calls_of_run(third.run_id)
    assert {c.params["container"]["digest"] for c in calls} == {DIGEST_B}
    assert {c.params["container"]["image"] for c in calls} == {"example/tools:1.0"}


def test_the_crate_names_the_image_each_call_ran_in(
    project: dict[str, Any], tmp_path: Path
) -> None:
    from databacked.integrations.rocrate import export_rocrate

    result = _run(project)
    with Catalog.open(project["catalog"]) as catalog:
        crate = export_rocrate(
            tmp_path / "crate", catalog, store=project["store"], run_id=result.run_id
        ).path
    graph = {
        e["@id"]: e for e in json.loads((crate / "ro-crate-metadata.json").read_text())["@graph"]
    }
    actions = [e for i, e in graph.items() if i.startswith("#call/")]
    assert len(actions) == 2
    image = graph[actions[0]["containerImage"]["@id"]]
    assert image["@type"] == "ContainerImage"
    assert image["name"] == "example/tools" and image["tag"] == "1.0"
    assert image["sha256"] == "a" * 64


def test_an_image_the_runtime_does_not_have_is_pulled_then_pinned(
    project: dict[str, Any],
) -> None:
    program = os.environ["DATABACKED_CONTAINERS__EXECUTABLE"]
    with pytest.raises(ConfigError, match=r"Cannot pull the image 'nowhere/none:0': manifest"):
        resolve("nowhere/none:0", "docker", program)
    assert ["pull", "nowhere/none:0"] in _calls(project["runtime"])
    pinned = resolve("example/tools@" + DIGEST_B, "docker", program)
    assert pinned.digest == DIGEST_B  # a digest reference needs no runtime at all


def test_apptainer_runs_a_sif_file_named_by_its_sha256(
    project: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sif = tmp_path / "tools.sif"
    sif.write_bytes(b"not really a SIF image, but bytes with a sha256")
    program = project["runtime"] / "fake-docker"
    monkeypatch.setenv("DATABACKED_CONTAINERS__RUNTIME", "apptainer")
    (project["pipes"] / "up.yml").write_text(SPEC.format(image=str(sif)))
    assert _run(project).ok
    assert project["store"].read_bytes("up/a.env") == b"hello from a\n"
    argv = next(c for c in _calls(project["runtime"]) if c[0] == "exec")
    assert argv[:3] == ["exec", "--containall", "--no-home"]
    assert f"{OUTPUT_DIR}:rw" in " ".join(argv) and str(sif) in argv
    first = resolve(str(sif), "apptainer", str(program)).digest
    sif.write_bytes(b"another image")
    assert resolve(str(sif), "apptainer", str(program)).digest != first


def test_image_on_a_python_transform_is_a_spec_error(project: dict[str, Any]) -> None:
    (project["pipes"] / "up.yml").write_text(
        textwrap.dedent(
            """\
            pipeline: up
            input: {pfs: {repo: texts, glob: "/*"}}
            transform: {python: "json:dumps", image: "example/tools:1.0"}
            """
        )
    )
    with pytest.raises(SpecError, match=r"transform\.image runs a 'cmd' transform"):
        _run(project)


def test_the_datalad_run_record_names_the_image(
    project: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    import subprocess

    from databacked.testing import services

    bin_dir = Path(sys.executable).parent
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    for who in ("AUTHOR", "COMMITTER"):  # commits need an identity, even on a bare CI box
        monkeypatch.setenv(f"GIT_{who}_NAME", os.environ.get(f"GIT_{who}_NAME", "databacked tests"))
        monkeypatch.setenv(f"GIT_{who}_EMAIL", os.environ.get(f"GIT_{who}_EMAIL", "t@db.invalid"))
    if shutil.which("git-annex") is None:
        services.unavailable("git-annex is not installed: pip install 'databacked[datalad]'")
    from databacked.integrations.datalad import run_specs_saved

    ds = tmp_path / "ds"
    subprocess.run(
        [str(bin_dir / "datalad"), "create", "-c", "text2git", str(ds)],
        check=True, capture_output=True,
    )  # fmt: skip
    shutil.copytree(project["pipes"], ds / "pipelines")
    store = Store(ds)
    store.put_bytes("texts/a.txt", b"abc\n")
    monkeypatch.chdir(ds)
    with Catalog.open(project["catalog"]) as catalog:
        result, commit = run_specs_saved(
            "pipelines", store=store, catalog=catalog, cmd=["databacked", "run", "pipelines"],
            executor="inline",
        )  # fmt: skip
    assert result.ok and commit
    message = subprocess.run(
        ["git", "log", "-1", "--format=%B"], capture_output=True, text=True, check=True
    ).stdout
    record = json.loads(message.split("=== Do not change lines below ===\n")[1].split("^^^")[0])
    assert record["databacked"]["containers"]["up"]["digest"] == DIGEST_A
    assert record["outputs"] == ["up"]
