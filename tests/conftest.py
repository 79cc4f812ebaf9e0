import sys
from pathlib import Path

# Test helpers (tests/_toy.py) importable from every test module and subprocess script.
sys.path.insert(0, str(Path(__file__).parent))
