import sys

from gfm_ase.cli import main

sys.exit(main())
