"""train: the learning loop's Ray-free logic.

- ``datasets``: the dataset format (YOLO labels, ``manifest.json`` with sha256, object keys).
- ``dataset_store``: building a dataset version from accepted annotations, reading it verified.
- ``annotations``: queue candidates and the checks on an annotator's boxes.
- ``quality``: annotator quality (agreement with reviewers and with hidden gold items).
"""
