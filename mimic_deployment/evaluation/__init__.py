"""Evaluation of trained policies.

- runs.py     which checkpoint a MODEL_PATH / RUN means; loss curves from run logs; eval reports
- robot.py    real robot: config/robot.yaml + env vars -> the exact lerobot-record command
- robot_config.py  the robot file (config/robot.yaml): type, ports, cameras, layout; its validation
- offline.py  offline: a checkpoint's actions against the recorded ones of held-out episodes
- plots.py    PNG plots (matplotlib, Agg backend)
- compare.py  several runs side by side: steps, loss, offline error

Only offline.py imports torch / lerobot, and only inside its functions; plots.py imports
matplotlib inside its functions.
"""
