import sys

from mimic_deployment.cli import main

sys.exit(main())
