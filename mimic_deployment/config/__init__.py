"""Declared configuration: YAML loading with located errors, and the policy, machine, lab, group and Slurm models (the YAML files live here too)."""
