"""Datums: a spec's input tree matched against the store's repos (Pachyderm's semantics).

``pfs`` yields one datum per glob match (a matched folder brings all its files), ``cross``
the product of its members' datums, ``union`` their concatenation, ``join`` the product of
the members' datums sharing a ``join_on`` key (inner; a member with ``outer_join: true`` keeps
its unpartnered datums), and ``group`` one datum per ``group_by`` key holding every member
match with that key. Matching uses listings only; content hashes come from a callable so the
caller can answer from the catalog's stat cache instead of reading files.

Example::

    for datum in match_datums(spec, Store("data")):
        print(datum.id, datum.attributes, [f.path for f in datum.files])
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from databacked.errors import ArtifactNotFound, SpecError
from databacked.hashing import combine
from databacked.specs.globs import (
    CompiledGlob,
    check_references,
    compile_glob,
    key_formatter,
)
from databacked.specs.model import Input, PfsInput, Spec
from databacked.store import STAGING_PREFIX, FileInfo, Store

log = logging.getLogger("databacked.specs.datums")
Hashes = Callable[[Sequence[FileInfo]], Mapping[str, str]]
"""Content hashes of files given their listings: store-relative path -> hash."""


@dataclass(frozen=True, slots=True)
class DatumFile:
    """One input file of a datum."""

    repo: str
    path: str
    """Path inside the repo (``plate1/A01_s1_w1.tif``)."""
    hash: str
    """Content hash (plain blake3, as ``db.hash_file``)."""
    stamp: str
    """Listing stamp (mtime+inode or ETag) the hash belongs to."""
    size: int
    input: str = ""
    """The input's name (``pfs.name``, default the repo): the folder it is laid out under."""

    @property
    def store_path(self) -> str:
        """Path relative to the store root."""
        return f"{self.repo}/{self.path}"

    @property
    def layout_path(self) -> str:
        """Where a transform sees this file under its input folder: ``<input>/<path>``."""
        return f"{self.input or self.repo}/{self.path}"


@dataclass(frozen=True, slots=True)
class Datum:
    """One unit of work: the files a transform call receives, and their captured attributes."""

    id: str
    """Short stable id shown to users, derived from the sorted layout paths of the files."""
    files: tuple[DatumFile, ...]
    attributes: dict[str, str] = field(default_factory=dict, hash=False)
    """Named captures shared by all of the datum's matches (plate, well, site...)."""
    group: str | None = None
    """The ``group_by``/``join_on`` key that formed this datum, if any."""

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(f.layout_path for f in self.files)


def datum_key(fingerprint: str, datum: Datum, key_by: str = "path") -> str:
    """The datum's cache key: transform fingerprint + its files' (path, content hash).

    With ``key_by="content"`` file names are left out (the input name stays), so datums whose
    files are byte-identical under other names share one key.
    """
    if key_by == "path":
        parts = sorted(f"{f.layout_path}\0{f.hash}" for f in datum.files)
        return combine("databacked-datum", fingerprint, *parts)
    if key_by == "content":
        parts = sorted(f"{f.input or f.repo}\0{f.hash}" for f in datum.files)
        return combine("databacked-datum-content", fingerprint, *parts)
    raise SpecError(f"key_by must be 'path' or 'content', not '{key_by}'; fix the spec.")


def match_datums(spec: Spec, store: Store, *, hashes: Hashes | None = None) -> list[Datum]:
    """Every datum of ``spec`` in ``store``, sorted by their files' paths.

    A glob that matches nothing is a logged warning and contributes no datums.
    """
    return match_input(spec.input, store, hashes=hashes, pipeline=spec.pipeline)


def match_input(
    inp: Input, store: Store, *, hashes: Hashes | None = None, pipeline: str = ""
) -> list[Datum]:
    """The datums of an input tree (``match_datums`` without a whole spec)."""
    matcher = _Matcher(store, pipeline)
    raws = matcher.input(inp)
    infos = {ref.info.path: ref.info for raw in raws for ref in raw.refs}
    if hashes is None:
        known: Mapping[str, str] = _hash_each(store, sorted(infos))
    else:
        known = hashes(sorted(infos.values(), key=lambda i: i.path))
    vanished = sorted(set(infos) - set(known))
    if vanished:
        # A file removed between listing and hashing: its datums wait for the next listing,
        # which groups what is really there; every other datum goes ahead.
        log.warning(
            "%d input file(s) disappeared while planning (first: %s); their datums are left "
            "for the next run.",
            len(vanished),
            vanished[0],
        )
    datums = {}
    for raw in raws:
        if vanished and any(ref.info.path not in known for ref in raw.refs):
            continue
        datum = _build(raw, known)
        datums.setdefault(datum.id, datum)
    return sorted(datums.values(), key=lambda d: d.paths)


def _hash_each(store: Store, paths: Iterable[str]) -> dict[str, str]:
    out = {}
    for path in paths:
        with contextlib.suppress(ArtifactNotFound):
            out[path] = store.hash(path)
    return out


# --- matching ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ref:
    repo: str
    input: str
    path: str
    info: FileInfo


@dataclass(slots=True)
class _Raw:
    refs: tuple[_Ref, ...]
    attributes: dict[str, str]
    key: str | None = None


class _Matcher:
    """Matches an input tree; lists each repo once per call."""

    def __init__(self, store: Store, pipeline: str) -> None:
        self.store = store
        self.pipeline = pipeline
        self._listings: dict[str, list[tuple[str, FileInfo]]] = {}

    def input(self, inp: Input) -> list[_Raw]:
        if inp.pfs is not None:
            return self.pfs(inp.pfs, None)
        kids = inp.children
        if inp.cross is not None:
            return [_merge(combo) for combo in itertools.product(*(self.input(k) for k in kids))]
        if inp.union is not None:
            return [raw for k in kids for raw in self.input(k)]
        if inp.join is not None:
            return self._join([self._keyed(k, "join_on") for k in kids])
        return self._group([self._keyed(k, "group_by") for k in kids])

    def pfs(self, p: PfsInput, key_field: str | None) -> list[_Raw]:
        compiled = compile_glob(p.glob, p.names)
        template = None
        if key_field is not None:
            key_template = getattr(p, key_field)
            check_references(key_template, compiled, key_field)
            template = key_formatter(key_template, compiled)
        listing = self._listing(p.repo)
        out = []
        repo, name = p.repo, p.input_name
        for match, files in _glob_matches(compiled, listing):
            refs = tuple(_Ref(repo, name, rel, info) for rel, info in files)
            key = template.format(*match.groups("")) if template is not None else None
            out.append(_Raw(refs, compiled.attributes(match), key))
        if not out:
            where = f" of pipeline '{self.pipeline}'" if self.pipeline else ""
            log.warning(
                "glob '%s' matched nothing in repo '%s'%s; it has no datums until matching "
                "files arrive.",
                p.glob,
                p.repo,
                where,
            )
        return out

    def _keyed(self, inp: Input, key_field: str) -> tuple[PfsInput, list[_Raw]]:
        if inp.pfs is None or getattr(inp.pfs, key_field) is None:
            kind = "join" if key_field == "join_on" else "group"
            raise SpecError(
                f"each member of a {kind} in pipeline '{self.pipeline}' must be a pfs input "
                f"with '{key_field}'; fix the spec."
            )
        return inp.pfs, self.pfs(inp.pfs, key_field)

    def _join(self, members: list[tuple[PfsInput, list[_Raw]]]) -> list[_Raw]:
        by_key = [_by_key(raws) for _p, raws in members]
        out = []
        for key in sorted(set().union(*by_key)):
            present = [i for i, table in enumerate(by_key) if key in table]
            if len(present) < len(members) and not any(members[i][0].outer_join for i in present):
                continue  # inner join: a key needs a partner in every member
            for combo in itertools.product(*(by_key[i][key] for i in present)):
                out.append(_merge(combo, key))
        return out

    def _group(self, members: list[tuple[PfsInput, list[_Raw]]]) -> list[_Raw]:
        grouped: dict[str, list[_Raw]] = {}
        for _p, raws in members:
            for raw in raws:
                grouped.setdefault(raw.key or "", []).append(raw)
        return [_merge(grouped[key], key, common=True) for key in sorted(grouped)]

    def _listing(self, repo: str) -> list[tuple[str, FileInfo]]:
        if repo not in self._listings:
            prefix = repo.strip("/") + "/"
            found = []
            for info in self.store.list(repo):
                rel = info.path[len(prefix) :] if info.path.startswith(prefix) else info.path
                # Writes in progress and databacked's own object area are not repo content.
                if ".databacked" in rel and any(
                    seg.startswith((STAGING_PREFIX, ".databacked")) for seg in rel.split("/")
                ):
                    continue
                found.append((rel, info))
            self._listings[repo] = sorted(found, key=lambda pair: pair[0])
        return self._listings[repo]


def _glob_matches(
    compiled: CompiledGlob, listing: list[tuple[str, FileInfo]]
) -> Iterator[tuple[re.Match[str], list[tuple[str, FileInfo]]]]:
    """(match, files under it) per matched path; a match inside a matched folder is its."""
    if not listing:
        return
    if compiled.glob == "/":  # the whole repo is one datum
        match = compiled.regex.match("/")
        assert match is not None
        yield match, listing
        return
    depth = compiled.depth
    under: dict[str, list[tuple[str, FileInfo]]] = {}
    for rel, info in listing:
        parts = rel.split("/")
        if depth is not None:
            # Without '**' only entries at the glob's depth can match: skip the others early,
            # which is most of the work on 100,000-file repos.
            if len(parts) >= depth:
                under.setdefault("/" + "/".join(parts[:depth]), []).append((rel, info))
            continue
        for d in range(1, len(parts) + 1):
            under.setdefault("/" + "/".join(parts[:d]), []).append((rel, info))
    matched: set[str] = set()
    for candidate in sorted(under, key=lambda c: (c.count("/"), c)):
        match = compiled.regex.match(candidate)
        if match is None:
            continue
        if depth is None and _ancestor_matched(candidate, matched):
            continue
        matched.add(candidate)
        yield match, under[candidate]


def _ancestor_matched(candidate: str, matched: set[str]) -> bool:
    parts = candidate.split("/")
    return any("/".join(parts[:depth]) in matched for depth in range(2, len(parts)))


def _by_key(raws: list[_Raw]) -> dict[str, list[_Raw]]:
    table: dict[str, list[_Raw]] = {}
    for raw in raws:
        table.setdefault(raw.key or "", []).append(raw)
    return table


def _merge(raws: Iterable[_Raw], key: str | None = None, *, common: bool = False) -> _Raw:
    raws = list(raws)
    refs = tuple(dict.fromkeys(ref for raw in raws for ref in raw.refs))
    if common:
        # A group's attributes are those all its members agree on (plate, well, site -- not
        # the channel that differs between them).
        attrs = dict(raws[0].attributes) if raws else {}
        for raw in raws[1:]:
            attrs = {k: v for k, v in attrs.items() if raw.attributes.get(k) == v}
    else:
        attrs = {}
        for raw in raws:
            attrs.update(raw.attributes)
    return _Raw(refs, attrs, key)


def _build(raw: _Raw, hashes: Mapping[str, str]) -> Datum:
    files = []
    for ref in raw.refs:
        digest = hashes[ref.info.path]
        files.append(
            DatumFile(ref.repo, ref.path, digest, ref.info.stamp, ref.info.size, ref.input)
        )
    files.sort(key=lambda f: (f.layout_path, f.repo))
    return Datum(datum_id(files), tuple(files), raw.attributes, raw.key)


def datum_id(files: Iterable[DatumFile]) -> str:
    """A short id from the sorted layout paths: the same files always give the same id."""
    return combine("databacked-datum-id", *sorted(f.layout_path for f in files))[:16]


__all__ = ["Datum", "DatumFile", "Hashes", "datum_id", "datum_key", "match_datums", "match_input"]
