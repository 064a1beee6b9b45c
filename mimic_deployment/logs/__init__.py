"""Reading training logs: LeRobot's log format and progress from bounded reads of a log."""
