import sys

from refinenet_edu.cli import main

sys.exit(main())
