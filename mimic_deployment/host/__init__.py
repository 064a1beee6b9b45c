"""This host: where things live, its GPUs (NVML), process identity, and the facts a plan is made from."""
