"""Declared configuration: YAML loading with located errors; policy, machine, lab, group, Slurm models."""
