"""Machine learning: the only package that imports TensorFlow/Keras.

Modules the Streamlit server uses (``training.service``, ``training.metrics``, ``prediction``,
``registry``) import TensorFlow lazily or not at all; the worker loads ``runners``, which pulls in
the rest.
"""
