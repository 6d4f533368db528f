"""napari-posetrack: multi-animal pose estimation and tracking for napari.

Importing this package imports nothing heavy (no torch, av, cv2 or Qt).
"""

__version__ = "0.1.0"
