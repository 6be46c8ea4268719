"""Property tests (hypothesis) of the wire tar reader, the spec parser and target templates:
whatever comes in, the result is right or a databacked error, never another exception."""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_report import Campaign

import databacked as db
from databacked.errors import DatabackedError, WireError
from databacked.executors.wire import Limits, read_tar, write_tar
from databacked.specs.loading import load_text

SOAK = os.environ.get("DATABACKED_SOAK") == "1"
EXAMPLES = 2000 if SOAK else 100
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
LIMITS = Limits(max_member=2**20, max_total=4 * 2**20, max_members=64)

name_part = st.text(
    st.characters(codec="utf-8", exclude_characters="/\\\0", exclude_categories=("Cs",)),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))
member_names = st.lists(name_part, min_size=1, max_size=3).map("/".join)


@SETTINGS
@given(
    members=st.dictionaries(member_names, st.binary(max_size=300), max_size=6),
    payload=st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4),
)
def test_wire_tar_round_trips(members: dict[str, bytes], payload: dict, campaign: Campaign) -> None:
    members.pop("call.json", None)
    # a name that is also a folder of another name cannot be both in a tar of files
    names = set(members)
    members = {n: b for n, b in members.items() if not any(o.startswith(n + "/") for o in names)}
    data = write_tar("call.json", payload, members)
    files = read_tar(io.BytesIO(data), LIMITS)
    assert {k: v for k, v in files.items() if k != "call.json"} == members
    campaign.examples["wire tar: write then read round-trips"] = (
        campaign.examples.get("wire tar: write then read round-trips", 0) + 1
    )


@SETTINGS
@given(
    members=st.dictionaries(member_names, st.binary(max_size=200), min_size=1, max_size=4),
    cuts=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    truncate=st.none() | st.integers(0, 10_000),
)
def test_wire_tar_reader_on_damaged_tars(
    members: dict[str, bytes],
    cuts: list[tuple[int, int]],
    truncate: int | None,
    campaign: Campaign,
) -> None:
    data = bytearray(write_tar("call.json", {}, members))
    for offset, value in cuts:
        data[offset % len(data)] = value
    if truncate is not None:
        data = data[: truncate % (len(data) + 1)]
    try:
        files = read_tar(io.BytesIO(bytes(data)), LIMITS)
    except WireError:
        files = None
    if files is not None:
        for name in files:  # whatever was accepted is a plain relative name
            assert not name.startswith("/") and ".." not in name.split("/")
    key = "wire tar: damaged tars give files or WireError"
    campaign.examples[key] = campaign.examples.get(key, 0) + 1


@SETTINGS
@given(data=st.binary(max_size=2000))
def test_wire_tar_reader_on_noise(data: bytes, campaign: Campaign) -> None:
    with contextlib.suppress(WireError):
        read_tar(io.BytesIO(data), LIMITS)
    key = "wire tar: random bytes give WireError"
    campaign.examples[key] = campaign.examples.get(key, 0) + 1


yaml_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "pipeline",
                    "input",
                    "transform",
                    "pfs",
                    "repo",
                    "glob",
                    "cross",
                    "union",
                    "join",
                    "group",
                    "group_by",
                    "join_on",
                    "python",
                    "cmd",
                    "stdin",
                    "output",
                    "names",
                    "key_by",
                    "complete",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@SETTINGS
@given(doc=yaml_values)
def test_spec_parser_on_structured_documents(doc: object, campaign: Campaign) -> None:
    import yaml

    text = yaml.safe_dump(doc)
    with contextlib.suppress(DatabackedError):
        load_text(text, "p.yml")
    key = "spec parser: random spec-shaped YAML gives specs or SpecError"
    campaign.examples[key] = campaign.examples.get(key, 0) + 1


@SETTINGS
@given(text=st.text(max_size=300))
def test_spec_parser_on_text(text: str, campaign: Campaign) -> None:
    with contextlib.suppress(DatabackedError):
        load_text(text, "p.yml")
    key = "spec parser: random text gives specs or SpecError"
    campaign.examples[key] = campaign.examples.get(key, 0) + 1


@pytest.fixture(scope="module")
def plan_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("targets")
    return str(folder / "data"), f"sqlite:///{folder}/catalog.db"


@db.step(target="out/{name}/{n}.json")
def _named(name: str, n: int) -> dict:
    return {"name": name}


@db.pipeline
def _one(name: str, n: int):
    return _named(name=name, n=n)


@pytest.mark.timeout(1800)
@SETTINGS
@given(name=st.text(max_size=40), n=st.integers())
def test_target_templates_stay_in_the_store(
    name: str, n: int, plan_env: tuple[str, str], campaign: Campaign
) -> None:
    store, catalog = plan_env
    try:
        planned = db.plan(_one, name, n, store=store, catalog=catalog)
    except DatabackedError:
        target = None
    else:
        target = planned.calls["target"].iloc[0]
    if target is not None:
        text = str(target)
        rel = text[len(store) + 1 :] if text.startswith(store) else text
        assert not rel.startswith("/") and ".." not in rel.split("/") and "\0" not in rel
        resolved = Path(store, rel).resolve()
        assert resolved.is_relative_to(Path(store).resolve())
    key = "target templates: rendered paths stay in the store"
    campaign.examples[key] = campaign.examples.get(key, 0) + 1


def test_tarfile_data_filter_exists() -> None:
    # requires-python >= 3.11.4: the reader relies on tarfile's data filter
    assert hasattr(tarfile, "data_filter")
