"""The learning loop's Ray-free pieces: datasets, curation, augmentation, the model and its
train step, evaluation, the gate, MLflow tracking and the registry.

- ``datasets``, ``dataset_store``, ``frames``: the dataset format; building, finding and
  locking a version; reading an item (JPEG or a frame of a recorded segment), sha256-checked.
- ``curation``: dedupe, split by time with a gap, class balancing.
- ``augment``, ``batching``: flip/colour/affine with boxes; samples and ultralytics' batch dict.
- ``model``: YOLOv8n with a head for the labels, frozen backbone, AdamW, checkpoints.
- ``evaluate``, ``judging``, ``gate``: mAP@0.5 and per-class P/R, scoring ONNX files, the gate.
- ``tracking``, ``registry``: MLflow runs and the model registry.

The Ray wiring is ``sentinel.actors.training`` (Ray Data + Ray Train).
"""
