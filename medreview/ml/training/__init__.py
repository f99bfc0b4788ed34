"""Training: dataset from the store, patient split, architectures, the fit loop, metrics, the job.

Only ``fit``, ``architectures`` and ``job`` import TensorFlow (the worker process loads them);
what the UI needs, such as the list of architectures below, stays here, free of it.
"""

# name -> one-line description, shown on the Train page and accepted by `train --architecture`.
ARCHITECTURES: dict[str, str] = {
    "small_cnn": "Small CNN (3 conv blocks, 32/64/128 filters); trains on CPU in minutes, any size >= 8 px.",
    "mobilenet_v2": "MobileNetV2 (width 0.35) backbone; ImageNet weights only from a local file; >= 32 px.",
}
