"""Face prints: sealing, keyed buckets, and matching real photos (no Ray, no database)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from sentinel.config import FaceSettings
from sentinel.models.faces import FACE_MODEL_SHA256, FaceAnalyzer, face_model_paths
from sentinel.models.files import sha256_file
from sentinel.retention.face_index import FaceQueryError, decode_photo
from sentinel.retention.faces import (
    BUCKET_BITS,
    FaceSealError,
    FaceVault,
    best_per_event,
    face_distance,
    open_many,
)
from tests.utils.faces import LENA, MESSI, NO_FACE, SAME_A, SAME_B, TWO_FACES, photo

KEY = bytes(range(32))
ROW = {"print_id": "p1", "event_id": "e1", "camera_id": "gate"}


def vector(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, 128).astype(np.float32)


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer()


def embed(analyzer: FaceAnalyzer, path: object) -> np.ndarray:
    faces = analyzer.analyze(decode_photo(photo(path), 1600))  # type: ignore[arg-type]
    assert len(faces) == 1, (path, len(faces))
    return faces[0].embedding


def test_a_sealed_print_opens_only_with_its_key_and_row() -> None:
    vault = FaceVault(KEY)
    emb = vector(1)
    sealed = vault.seal(emb, **ROW)
    assert emb.tobytes() not in sealed.sealed and len(sealed.nonce) == 12
    assert sealed.key_version == 1 and sealed.bucket == vault.bucket(emb)
    opened = vault.unseal(sealed.sealed, sealed.nonce, key_version=1, **ROW)
    assert np.array_equal(opened, emb)
    other = FaceVault(os.urandom(32))
    with pytest.raises(FaceSealError):
        other.unseal(sealed.sealed, sealed.nonce, key_version=1, **ROW)
    for field, value in (("print_id", "p2"), ("event_id", "e2"), ("camera_id", "yard")):
        with pytest.raises(FaceSealError):
            vault.unseal(sealed.sealed, sealed.nonce, key_version=1, **{**ROW, field: value})
    tampered = bytes([sealed.sealed[0] ^ 1]) + sealed.sealed[1:]
    with pytest.raises(FaceSealError):
        vault.unseal(tampered, sealed.nonce, key_version=1, **ROW)
    with pytest.raises(FaceSealError):
        vault.unseal(sealed.sealed, sealed.nonce, key_version=2, **ROW)
    # The same embedding sealed twice gives different bytes (random nonce).
    assert vault.seal(emb, **ROW).sealed != sealed.sealed


def test_buckets_are_keyed_stable_and_coarse() -> None:
    vault, again, other = FaceVault(KEY), FaceVault(KEY), FaceVault(os.urandom(32))
    embs = [vector(i) for i in range(400)]
    assert [vault.bucket(e) for e in embs] == [again.bucket(e) for e in embs]
    assert [vault.bucket(e) for e in embs] != [other.bucket(e) for e in embs]
    assert len({vault.bucket(e) for e in embs}) <= 2**BUCKET_BITS
    assert all(len(vault.bucket(e)) == 32 for e in embs[:5])
    probes = vault.probe_buckets(embs[0], 2)
    assert probes[0] == vault.bucket(embs[0]) and len(probes) == len(set(probes)) == 37
    assert len(vault.probe_buckets(embs[0], 1)) == 9
    assert "keys hidden" in repr(vault) and KEY.hex() not in repr(vault)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"master": b"short"}, "32 bytes"),
        ({"master": KEY, "bits": 0}, "bits"),
        ({"master": KEY, "version": 0}, "version"),
    ],
)
def test_bad_vault_settings_are_refused(args: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        FaceVault(**args)  # type: ignore[arg-type]


def test_bad_embeddings_are_refused() -> None:
    vault = FaceVault(KEY)
    for bad in (np.zeros(127, np.float32), np.full(128, np.nan, np.float32)):
        with pytest.raises(ValueError, match="128 finite floats"):
            vault.seal(bad, **ROW)


def test_best_per_event_keeps_the_nearest() -> None:
    assert best_per_event([("a", 0.5), ("b", 0.4), ("a", 0.3)]) == {"a": 0.3, "b": 0.4}


def test_model_files_are_checked_by_sha256() -> None:
    paths = face_model_paths()
    assert {p.name for p in paths.values()} == set(FACE_MODEL_SHA256)
    for name, path in paths.items():
        assert sha256_file(path) == FACE_MODEL_SHA256[name]


def test_same_person_matches_across_two_photos_and_others_do_not(
    analyzer: FaceAnalyzer,
) -> None:
    a, b = embed(analyzer, SAME_A), embed(analyzer, SAME_B)
    messi, lena = embed(analyzer, MESSI), embed(analyzer, LENA)
    tolerance = FaceSettings().tolerance
    assert face_distance(a, b) < tolerance
    for x, y in ((a, messi), (a, lena), (b, messi), (b, lena), (messi, lena)):
        assert face_distance(x, y) > tolerance
    # The two photos of one person fall in probed buckets of each other for most keys (the
    # radius trades recall for reads; see sentinel.retention.faces).
    radius = FaceSettings().probe_radius
    found = [
        vault.bucket(b) in vault.probe_buckets(a, radius)
        for vault in (FaceVault(os.urandom(32)) for _ in range(200))
    ]
    assert sum(found) >= 0.85 * len(found)


def test_buckets_fill_evenly_around_where_faces_lie() -> None:
    from sentinel.retention.face_centre import FACE_CENTRE

    rng = np.random.default_rng(7)
    faces = np.asarray(FACE_CENTRE, np.float32) + rng.normal(0, 0.05, (5000, 128))
    vault = FaceVault(KEY)
    counts: dict[str, int] = {}
    for emb in faces.astype(np.float32):
        bucket = vault.bucket(emb)
        counts[bucket] = counts.get(bucket, 0) + 1
    assert len(counts) > 200 and max(counts.values()) < 0.03 * len(faces)


def test_photos_with_no_face_or_two_faces_and_non_images(analyzer: FaceAnalyzer) -> None:
    assert analyzer.analyze(decode_photo(photo(NO_FACE), 1600)) == []
    two = analyzer.analyze(decode_photo(photo(TWO_FACES), 1600))
    assert len(two) == 2 and two[0].box[0] < two[1].box[0]
    for bad in (b"", b"GIF89a....", b"\xff\xd8\xff\xe0 truncated jpeg"):
        with pytest.raises(FaceQueryError):
            decode_photo(bad, 1600)
    with pytest.raises(ValueError, match="RGB uint8"):
        analyzer.analyze(np.zeros((10, 10), np.uint8))


def test_open_many_opens_a_batch_and_leaves_out_what_does_not_open() -> None:
    vault, other = FaceVault(KEY), FaceVault(os.urandom(32))
    embs = [vector(i) for i in range(3)]
    rows = []
    for i, (emb, box) in enumerate(zip(embs, (vault, other, vault), strict=True)):
        s = box.seal(emb, print_id=f"p{i}", event_id="e", camera_id="c")
        rows.append((f"p{i}", "e", "c", s.nonce, s.sealed, s.key_version))
    rows.append(("p3", "e", "c", b"short", rows[0][4], 1))  # a broken nonce
    opened, matrix = open_many(vault, rows)
    assert opened == [0, 2] and matrix.shape == (2, 128)
    assert np.array_equal(matrix[1], embs[2])
    assert open_many(vault, [])[1].shape == (0, 128)


def test_a_model_file_with_another_sha256_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import sentinel.models.faces as faces_models
    from sentinel.models.files import ModelFileError

    name = next(iter(FACE_MODEL_SHA256))
    monkeypatch.setitem(faces_models.FACE_MODEL_SHA256, name, "0" * 64)
    with pytest.raises(ModelFileError, match=f"refusing .*{name}: its sha256 is"):
        face_model_paths()
