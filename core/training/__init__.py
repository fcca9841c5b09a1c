"""Training the U-Net: :mod:`.config` (every default once), :mod:`.data` (slices -> tf.data, through
:mod:`core.preprocess`), :mod:`.augment` (the only albumentations user) and :mod:`.loop` (Keras fit)."""
