"""Training: dataset from the store, patient split, the fit loop, metrics, the job.

Only ``fit`` and ``job`` import TensorFlow (the worker process loads them); the architectures
themselves are the configs in :mod:`medreview.ml.configs`.
"""
