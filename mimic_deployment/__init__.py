"""Training fleet toolkit: plan, launch, track and evaluate LeRobot runs across a lab's machines."""

__version__ = "0.1.0"
