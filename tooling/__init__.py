"""Course-maintenance tooling: what instructors and maintainers run, outside the library students import.

Not part of the wheel (``pyproject.toml`` packages only ``refinenet_edu``).
"""
