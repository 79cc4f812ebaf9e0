"""Sub-commands of ``refinenet-edu`` that drive training and inference.

Each module defines ``add_arguments(parser)`` and ``run(args) -> int``.
"""
