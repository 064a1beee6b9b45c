"""`python -m mimic_deployment`: the command line (what train_manager.sh runs)."""
import sys

from mimic_deployment.cli import main

sys.exit(main())
