import sys
from pathlib import Path

# Test helpers (tests/_toy.py) importable from every test module and subprocess script.
sys.path.insert(0, str(Path(__file__).parent))
# The course's tooling (tooling/, not installed) importable too, from the checkout.
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
