"""Evaluation of trained policies.

- runs.py     which checkpoint a MODEL_PATH / RUN means; loss and eval-loss curves from run logs; eval reports
- robot.py    real robot: config/robot.yaml + env vars -> the exact robot-eval command of the engine
- robot_engine.py  which LeRobot runs it: lerobot-rollout (0.6) or lerobot-record (0.4), its env, dialect, rules
- robot_check.py / robot_harness.py  that command's own parser, run in the engine's env (eval-robot --check)
- robot_config.py  the robot file (config/robot.yaml): type, ports, cameras, layout; its validation
- offline.py  offline: a checkpoint's actions against the recorded ones of held-out episodes
- plots.py    PNG plots (matplotlib, Agg backend)
- compare.py  several runs side by side: steps, loss, eval loss, offline error

Only offline.py imports torch / lerobot, and only inside its functions (robot_harness.py imports
LeRobot too, but runs in the engine's own interpreter, never in the toolkit's); plots.py imports
matplotlib inside its functions.
"""
