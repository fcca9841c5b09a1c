"""Inference engines: one compiled model at a fixed input shape ``(batch_size, s, s, 3)`` float32 with
``run(batch) -> (batch_size, s, s)`` float32 probabilities, ``batch_size``, ``image_size``, ``precision`` and
``runtime``: :class:`.openvino.OpenVinoEngine` (a model file converted once to IR) and
:class:`.tensorflow.TensorFlowEngine` (an in-memory Keras model)."""
