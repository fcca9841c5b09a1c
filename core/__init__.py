"""heartseg core: the Qt-free library (reading scans, the U-Net, training, inference, mask editing)."""

__version__ = "0.1.0"
