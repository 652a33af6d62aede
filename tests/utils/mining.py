"""Hard-example mining on the test's own process, over the test's real stores."""

from __future__ import annotations

from pathlib import Path

from sentinel.api.deps import MiningServices, Services
from sentinel.config import DetectorSettings, MiningSettings
from sentinel.store.annotation_repo import AnnotationRepo
from sentinel.store.segment_repo import SegmentRepository
from sentinel.train.feedback import queued_hashes
from sentinel.train.mine_service import DetectorSpec, LocalMiningService, mining_params


def local_mining(
    services: Services,
    onnx_model: Path,
    mining: MiningSettings | None = None,
    *,
    max_span_h: float = 1.0,
    max_budget: int = 20,
) -> MiningServices:
    """``LocalMiningService`` over ``services``' database, segments and objects, with the real
    detector (one thread), queueing into the real annotation queue."""
    mining = mining or MiningSettings(sample_fps=1.0, labels=["person"])
    detector = DetectorSettings(model_path=onnx_model, threads=1)
    engine = services.engine
    service = LocalMiningService(
        engine=engine,
        segments=services.segments or SegmentRepository(engine),
        load=lambda chunk: services.objects.get(chunk.location),
        detector=DetectorSpec.of(detector, onnx_model, mining),
        params=mining_params(mining, detector),
        mining=mining,
        enqueue=AnnotationRepo(engine, services.objects).enqueue,
        queued=lambda camera: queued_hashes(engine, camera),
    )
    return MiningServices(service, max_span_h=max_span_h, max_budget=max_budget)
