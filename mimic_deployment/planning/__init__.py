"""Flags, env vars and config become a fully resolved RunPlan (pure code), and its dry-run text."""
