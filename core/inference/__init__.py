"""Inference: :class:`.predictor.Predictor` (slices -> probabilities -> masks) on an engine: OpenVINO
(:mod:`.openvino`, the default) or TensorFlow."""
