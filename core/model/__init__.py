"""The 2D U-Net (:mod:`.unet`), its losses (:mod:`.losses`) and Keras training metrics (:mod:`.train_metrics`).

TensorFlow is imported lazily inside these modules (the window must appear before it loads)."""
