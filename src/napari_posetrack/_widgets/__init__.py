"""Dock widgets (thin): they collect inputs, call ``core`` and run heavy work off the GUI thread.

Importing this package marks Triton unavailable in napari's process, before anything imports torch's
compiler stack. torchvision imports ``torch._dynamo``, which loads Triton when it is installed (CUDA
builds of torch ship it); Triton's bundled LLVM and the LLVM inside Mesa's OpenGL drivers cannot live
in one process, and napari segfaults as soon as a torchvision backbone is built after the canvas
exists. Nothing in napari's process compiles kernels (training runs in a child process), so torch
simply sees no Triton. A Triton that something else already imported is left alone.
"""

import sys

sys.modules.setdefault("triton", None)
