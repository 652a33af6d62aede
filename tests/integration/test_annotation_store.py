"""The annotation queue and dataset versions in the store (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from sentinel.domain.annotation import LabeledBox
from sentinel.store.annotation_repo import (
    AnnotationRepo,
    InvalidTransition,
    ItemNotFound,
    StaleVersion,
    frame_key,
)
from sentinel.store.dataset_repo import DatasetLocked, DatasetNotFound, DatasetRepo
from sentinel.store.objects import LocalObjectStore
from sentinel.train.datasets import manifest_key
from tests.utils.annotation import candidate, jpeg

TABLES = (
    "annotation_items",
    "annotations",
    "annotation_reviews",
    "annotation_gold_scores",
    "datasets",
    "dataset_locks",
)
BOX = LabeledBox("person", 1, 2, 30, 40)


@pytest.fixture
def repo(store_engine: Engine, tmp_path: Path) -> AnnotationRepo:
    return AnnotationRepo(store_engine, LocalObjectStore(tmp_path / "objects"))


def test_the_tables_match_their_models(store_engine: Engine) -> None:
    with store_engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert [d for d in diffs if any(t in repr(d) for t in TABLES)] == []


def test_enqueue_stores_frames_skips_near_duplicates_and_ranks(
    repo: AnnotationRepo, tmp_path: Path
) -> None:
    base = 0x0F0F_F0F0_1234_5678
    ids = repo.enqueue(
        [
            candidate(1, phash=base, score=0.2),
            candidate(2, phash=base ^ 0b111111, score=0.9),  # 6 bits off: a near-duplicate
            candidate(3, phash=base ^ 0b1111111, score=0.7),  # 7 bits off: kept
            candidate(4, phash=base, camera="yard", score=0.5),  # another camera: kept
        ]
    )
    assert len(ids) == 3
    assert repo.enqueue([candidate(5, phash=base ^ 1)]) == []  # near an item already queued
    items = repo.list()
    assert [i.score for i in items] == [0.7, 0.5, 0.2]
    first = repo.get(ids[0])
    assert first is not None and first.status == "queued" and first.version == 0
    assert first.image_key == frame_key("gate", ids[0])
    objects = LocalObjectStore(tmp_path / "objects")
    assert objects.get(first.image_key) == jpeg(1)
    assert first.phash == base and first.reasons == ("near_threshold",)
    assert first.prelabels[0].score == pytest.approx(0.3)
    assert [i.camera_id for i in repo.list(cameras={"yard"})] == ["yard"]
    assert repo.list(cameras=set()) == []
    assert [i.score for i in repo.list(status="queued", limit=1, offset=1)] == [0.5]
    with pytest.raises(ValueError, match="status must be one of"):
        repo.list(status="done")


def test_item_state_machine_and_optimistic_versions(repo: AnnotationRepo) -> None:
    [item_id] = repo.enqueue([candidate(1)])
    first = repo.submit(item_id, [BOX], version=0, annotator="ann")
    assert first.version == 1
    with pytest.raises(StaleVersion, match="at version 1, not 0"):
        repo.submit(item_id, [BOX], version=0, annotator="ann")
    with pytest.raises(InvalidTransition, match="held by annotator ann"):
        repo.submit(item_id, [], version=1, annotator="other")
    repo.submit(item_id, [BOX, BOX], version=1, annotator="ann")  # edits before review
    with pytest.raises(StaleVersion):
        repo.review(item_id, decision="accept", reviewer="rev", version=1)
    returned = repo.review(item_id, decision="return", reviewer="rev", note="missed one")
    assert (returned.version, returned.annotator, returned.note) == (2, "ann", "missed one")
    item = repo.get(item_id)
    assert item is not None and (item.status, item.assignee) == ("returned", "ann")
    with pytest.raises(InvalidTransition, match="only a submitted item"):
        repo.review(item_id, decision="accept", reviewer="rev")
    repo.submit(item_id, [BOX], version=2, annotator="ann")  # back from the annotator
    repo.review(item_id, decision="accept", reviewer="rev")
    with pytest.raises(InvalidTransition, match="final"):
        repo.submit(item_id, [], version=3, annotator="ann", may_take_over=True)
    assert [a.version for a in repo.annotations(item_id)] == [3, 2, 1]
    assert [r.decision for r in repo.reviews(item_id)] == ["accept", "return"]
    [(acc_item, acc)] = repo.accepted()
    assert acc_item.id == item_id and acc.version == 3 and acc.boxes == (BOX,)
    with pytest.raises(ItemNotFound):
        repo.submit("nope", [], version=0, annotator="ann")
    with pytest.raises(ValueError, match="decision must be one of"):
        repo.review(item_id, decision="maybe", reviewer="rev")


def test_gold_items_score_each_annotator_and_stay_queued(repo: AnnotationRepo) -> None:
    [src] = repo.enqueue([candidate(1)])
    gold = repo.add_gold(src, [BOX])
    assert gold.is_gold and gold.gold_boxes == (BOX,) and gold.status == "queued"
    assert gold.image_key == repo.get(src).image_key  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="needs its gold score"):
        repo.submit(gold.id, [BOX], version=0, annotator="a")
    repo.submit(gold.id, [BOX], version=0, annotator="a", gold=(1.0, 1, 1, 1))
    repo.submit(gold.id, [], version=1, annotator="b", gold=(0.0, 0, 0, 1))
    repo.submit(gold.id, [BOX], version=2, annotator="b", gold=(1.0, 1, 1, 1))  # latest counts
    after = repo.get(gold.id)
    assert after is not None and after.status == "queued" and after.assignee is None
    assert repo.latest(gold.id, annotator="a").boxes == (BOX,)  # type: ignore[union-attr]
    with pytest.raises(InvalidTransition, match="scored, not reviewed"):
        repo.review(gold.id, decision="accept", reviewer="rev")
    assert [i.id for i in repo.list(hide_gold_done_by="a")] == [src]
    assert {i.id for i in repo.list(hide_gold_done_by="c")} == {src, gold.id}
    counts = {c.annotator: c for c in repo.annotator_counts()}
    assert counts["a"].gold_f1s == (1.0,) and counts["b"].gold_f1s == (1.0,)
    assert counts["b"].submitted == 2
    assert repo.annotator_counts(cameras={"elsewhere"}) == []
    assert repo.accepted() == []  # gold items never go to datasets


def test_annotator_counts_leave_out_self_reviews(repo: AnnotationRepo) -> None:
    ids = repo.enqueue([candidate(n) for n in range(4)])
    for item_id in ids:
        repo.submit(item_id, [BOX], version=0, annotator="ann")
    repo.review(ids[0], decision="accept", reviewer="rev")
    repo.review(ids[1], decision="accept", reviewer="rev")
    repo.review(ids[2], decision="return", reviewer="rev")
    repo.submit(ids[3], [BOX], version=1, annotator="rev", may_take_over=True)
    repo.review(ids[3], decision="accept", reviewer="rev")  # rev's own work: not counted
    counts = {c.annotator: c for c in repo.annotator_counts()}
    assert (counts["ann"].submitted, counts["ann"].accepted, counts["ann"].returned) == (4, 2, 1)
    assert (counts["rev"].submitted, counts["rev"].accepted) == (1, 0)


def test_dataset_versions_locks_and_immutability(store_engine: Engine) -> None:
    repo = DatasetRepo(store_engine)
    v1 = repo.reserve("site", manifest_key, labels=["person"], created_by="admin")
    v2 = repo.reserve("site", manifest_key, labels=["person"], created_by="admin")
    assert (v1.version, v2.version, v1.status) == (1, 2, "building")
    assert v2.manifest_key == "datasets/site/v2/manifest.json"
    repo.fail("site", 2)
    done = repo.finish("site", 1, manifest_sha256="a" * 64, items=3, boxes=5, camera_ids={"b", "a"})
    assert (done.status, done.items, done.camera_ids, done.locked) == (
        "ready",
        3,
        ("a", "b"),
        False,
    )
    assert repo.reserve("site", manifest_key, labels=[], created_by="x").version == 3  # no reuse
    with pytest.raises(DatasetNotFound):
        repo.lock("site", 2, "run-1")  # failed: not lockable
    locked = repo.lock("site", 1, "run-1")
    assert repo.lock("site", 1, "run-1").locked_by == locked.locked_by == ("run-1",)
    assert repo.lock("site", 1, "run-2").locked_by == ("run-1", "run-2")
    with pytest.raises(DatasetLocked, match="run-1, run-2"):
        repo.delete("site", 1)
    with pytest.raises(DatasetNotFound):
        repo.finish("site", 1, manifest_sha256="b" * 64, items=0, boxes=0, camera_ids=())
    assert [v.version for v in repo.list(name="site")] == [1]
    assert repo.latest("site") == repo.get("site", 1)
    repo.finish("site", 3, manifest_sha256="c" * 64, items=1, boxes=1, camera_ids={"a"})
    assert repo.delete("site", 3).version == 3
    assert repo.get("site", 3) is None and repo.latest("site").version == 1  # type: ignore[union-attr]
