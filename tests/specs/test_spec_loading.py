"""Spec files: both spellings, several documents, and errors that name file and line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from databacked.errors import SpecError
from databacked.specs import load_specs, load_text, match_datums, spec_json_schema, spec_order
from databacked.specs.model import Spec
from databacked.store import Store

DESIGN_EXAMPLE = textwrap.dedent(
    """\
    # pipelines/measure.yml
    pipeline: measure
    input:
      group:
        - repo: raw
          glob: "/(*)/(*)_s(*)_w(*).tif"   # plate, well, site, channel
          group_by: "$1/$2_s$3"
    transform:
      python: mypkg.steps:measure_site
    ---
    pipeline: plate_report
    input:
      group:
        - repo: measure
          glob: "/(*)/*.csv"
          group_by: "$1"
    transform:
      python: mypkg.steps:plate_plot
    """
)

PACHYDERM_EDGES = textwrap.dedent(
    """\
    pipeline:
      name: edges
    description: A pipeline that performs image edge detection by using the OpenCV library.
    input:
      pfs:
        glob: /*
        repo: images
    transform:
      cmd:
        - python3
        - /edges.py
      image: opencv
    """
)


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_several_documents_per_file_and_all_spec_suffixes(tmp_path: Path) -> None:
    pipes = tmp_path / "pipelines"
    write(pipes, "measure.yml", DESIGN_EXAMPLE)
    write(pipes, "edges.yaml", PACHYDERM_EDGES)
    edges_json = yaml.safe_load(PACHYDERM_EDGES) | {"pipeline": {"name": "edges2"}}
    write(pipes, "edges2.json", json.dumps(edges_json, indent=2))
    write(pipes, "notes.txt", "not a spec")
    write(pipes, "empty.yml", "# nothing yet\n---\n~\n---\n")

    specs = load_specs(pipes)
    assert sorted(s.pipeline for s in specs) == ["edges", "edges2", "measure", "plate_report"]
    # The project folder works too: its pipelines/ is used.
    assert [s.pipeline for s in load_specs(tmp_path)] == [s.pipeline for s in specs]
    measure = next(s for s in specs if s.pipeline == "measure")
    group = measure.input.group
    assert group is not None
    assert group[0].pfs is not None
    assert group[0].pfs.group_by == "$1/$2_s$3"
    assert measure.transform.python == "mypkg.steps:measure_site"
    assert measure.origin.endswith("measure.yml, line 2")  # line 1 is a comment
    report = next(s for s in specs if s.pipeline == "plate_report")
    assert report.origin.endswith("measure.yml, line 11")
    assert report.input_repos() == ["measure"]


def test_pachyderm_spelling_equals_the_shorthand() -> None:
    shorthand = load_text(
        textwrap.dedent(
            """\
            pipeline: measure
            input:
              group:
                - {repo: raw, glob: "/(*)/(*).tif", group_by: "$1"}
            transform: {cmd: [cp, -r, "{input_dir}", "{output_dir}"], stdin: [echo hi]}
            retries: 2
            resources: {cpu: 2, memory: 4G}
            """
        )
    )[0]
    pachyderm = load_text(
        textwrap.dedent(
            """\
            pipeline: {name: measure}
            input:
              group:
                - pfs: {repo: raw, glob: "/(*)/(*).tif", group_by: "$1"}
            transform: {cmd: [cp, -r, "{input_dir}", "{output_dir}"], stdin: [echo hi]}
            datum_tries: 3
            resource_requests: {cpu: 2, memory: 4G}
            """
        )
    )[0]
    assert shorthand.input == pachyderm.input
    assert shorthand.transform == pachyderm.transform
    assert shorthand.retries == pachyderm.retries == 2
    assert shorthand.resources == pachyderm.resources


def test_pachyderm_image_is_the_transform_image() -> None:
    spec = load_text(PACHYDERM_EDGES)[0]
    assert spec.pipeline == "edges"
    assert spec.transform.cmd == ["python3", "/edges.py"]
    assert spec.transform.image == "opencv"  # runs in it: tests/specs/test_containers.py
    assert not any("image" in note for note in spec.notes())


def test_unknown_field_names_file_line_and_suggestion(tmp_path: Path) -> None:
    pipes = tmp_path / "pipelines"
    write(
        pipes,
        "measure.yml",
        textwrap.dedent(
            """\
            pipeline: measure
            description: count cells
            input:
              pfs:
                repo: raw

                glb: "/*"
            transform:
              python: mypkg.steps:measure
            """
        ),
    )
    with pytest.raises(SpecError) as info:
        load_specs(pipes)
    message = str(info.value)
    assert "measure.yml, line 7: unknown field 'glb' in input.pfs (did you mean 'glob'?)" in (
        message
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "pipeline: m\ninput:\n  group:\n    - repo: raw\n      glob: /*\n      grop_by: $1\n"
            "transform: {python: a:b}\n",
            "line 6: unknown field 'grop_by' in input.group[0] (did you mean 'group_by'?)",
        ),
        (
            "pipeline: m\ninpt: {pfs: {repo: raw, glob: /*}}\ntransform: {python: a:b}\n",
            "line 2: unknown field 'inpt' in the spec (did you mean 'input'?)",
        ),
        (
            "pipeline: m\ninput: {pfs: {repo: raw}}\ntransform: {python: a:b}\n",
            "line 2: missing field 'glob' in input.pfs",
        ),
        (
            "pipeline: m\ninput: {pfs: {repo: raw, glob: /*}}\ntransform: {python: nocolon}\n",
            "line 3: transform: transform.python must look like 'package.module:function'",
        ),
        (
            "pipeline: m\ninput: {pfs: {repo: raw, glob: /*}}\n"
            "transform: {python: a:b, cmd: [ls]}\n",
            "a transform needs exactly one of 'python' or 'cmd'",
        ),
        (
            "pipeline: m\ninput:\n  group:\n    - repo: raw\n      glob: /(*)\n"
            "      group_by: $2\ntransform: {python: a:b}\n",
            "line 5: group_by '$2' refers to $2 but glob '/(*)' captures 1 group(s)",
        ),
        (
            "pipeline: m\ninput:\n  join:\n    - {repo: a, glob: /(*)}\ntransform: {python: a:b}\n",
            "line 4: each member of a join needs 'join_on'",
        ),
        (
            "pipeline: m\ninput: {repo: raw, glob: /*, group_by: $1}\ntransform: {python: a:b}\n",
            "group_by applies only to the members of a group",
        ),
        (
            "pipeline: m\ninput:\n  group:\n    - repo: r\n      glob: /(*)\n"
            "      group_by: $1\n      complete: {manifest: {repo: x, pth: y}}\n"
            "transform: {python: a:b}\n",
            "line 7: unknown field 'pth' in input.group[0].complete.manifest "
            "(did you mean 'path'?).",
        ),
        (
            "pipeline: m\ninput: {pfs: {repo: r, glob: /*}}\ntransform: {python: a:b}\n"
            "output:\n  format: cvs\n",
            "line 5: Unknown format 'cvs'; known formats are ",
        ),
        (
            "pipeline: m\ninput:\n  cross:\n    - {repo: r, glob: /*}\n"
            "    - {repo: r, glob: /*}\ntransform: {python: a:b}\n",
            "line 5: members 0 and 1 of this cross are both named 'r'",
        ),
        ("- just\n- a list\n", "line 1: a spec document must be a mapping"),
        (
            "pipeline: m\ninput: {pfs: {repo: r, glob: /*}}\ntransform: {python: a:b}\n"
            "queue: ' gpu'\n",
            "queue ' gpu' is not a queue name; give the name of a Celery queue",
        ),
        (
            "pipeline: m\ninput: {pfs: {repo: raw, glob: /*}, cross: []}\n"
            "transform: {python: a:b}\n",
            "exactly one of pfs, cross, union, join or group",
        ),
    ],
)
def test_bad_specs_are_one_sentence_with_a_line(text: str, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        load_text(text, "pipelines/x.yml")
    assert expected in str(info.value)
    assert str(info.value).startswith("pipelines/x.yml, line ")


def test_invalid_yaml_gives_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "bad.yml", "pipeline: m\ninput:\n  pfs: {repo: raw, glob: /*\ntransform: x\n")
    with pytest.raises(SpecError, match=r"bad\.yml, line \d+: invalid YAML"):
        load_specs(tmp_path / "bad.yml")


def test_invalid_json_gives_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "bad.json", '{\n\t"pipeline": "m",\n\t"input": }\n')
    with pytest.raises(SpecError, match=r"bad\.json, line 3: invalid JSON"):
        load_specs(tmp_path)


def test_duplicate_pipeline_names_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.yml", PACHYDERM_EDGES)
    write(tmp_path, "b.yml", PACHYDERM_EDGES)
    with pytest.raises(SpecError, match=r"pipeline 'edges' is already defined at .*a\.yml, line 1"):
        load_specs(tmp_path)


def test_missing_folder_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no spec file or folder"):
        load_specs(tmp_path / "nope")


def test_json_schema_validates_the_examples_and_rejects_typos() -> None:
    schema = spec_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for doc in [*yaml.safe_load_all(DESIGN_EXAMPLE), yaml.safe_load(PACHYDERM_EDGES)]:
        validator.validate(doc)
        Spec.model_validate(doc)  # what the schema accepts, the loader accepts
    typo = yaml.safe_load(PACHYDERM_EDGES)
    typo["input"]["pfs"]["glb"] = typo["input"]["pfs"].pop("glob")
    assert not validator.is_valid(typo)
    assert set(schema["properties"]) >= {
        "pipeline",
        "description",
        "input",
        "transform",
        "output",
        "resources",
        "retries",
        "key_by",
    }


def test_pachyderm_opencv_example_loads_orders_and_matches(tmp_path: Path) -> None:
    """Pachyderm's own edges + montage specs, as JSON, need no change beyond the image."""
    pipes = tmp_path / "pipelines"
    edges = {
        "pipeline": {"name": "edges"},
        "description": "A pipeline that performs image edge detection.",
        "transform": {"cmd": ["python3", "/edges.py"], "image": "pachyderm/opencv:0.0.1"},
        "input": {"pfs": {"repo": "images", "glob": "/*", "branch": "master"}},
        "parallelism_spec": {"constant": 1},
        "datum_tries": 2,
    }
    montage = {
        "pipeline": {"name": "montage"},
        "input": {
            "cross": [
                {"pfs": {"glob": "/", "repo": "images"}},
                {"pfs": {"glob": "/", "repo": "edges"}},
            ]
        },
        "transform": {
            "cmd": ["sh"],
            "image": "dpokidov/imagemagick:7.1.0-23",
            "stdin": ["montage -shadow $(find -L /pfs/images /pfs/edges -type f | sort) out.png"],
        },
    }
    write(pipes, "montage.json", json.dumps(montage, indent=2))
    write(pipes, "edges.json", json.dumps(edges, indent=2))
    store = Store(tmp_path / "data")
    for name in ("a.png", "b.png"):
        store.put_bytes(f"images/{name}", name.encode())
        store.put_bytes(f"edges/{name}", b"edge " + name.encode())

    ordered = spec_order(load_specs(pipes), store)
    assert [s.pipeline for s in ordered] == ["edges", "montage"]
    first, second = ordered
    assert first.retries == 1
    assert any("parallelism_spec, pfs.branch accepted" in note for note in first.notes())
    assert [[f.layout_path for f in d.files] for d in match_datums(first, store)] == [
        ["images/a.png"],
        ["images/b.png"],
    ]
    (whole,) = match_datums(second, store)
    assert whole.paths == ("edges/a.png", "edges/b.png", "images/a.png", "images/b.png")
