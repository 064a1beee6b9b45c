"""Shim for processes started before the package was laid out by layer: forwards to _entry."""
import sys

if __name__ == "__main__":
    from mimic_deployment._entry import main

    sys.exit(main(["queue", *sys.argv[1:]]))
