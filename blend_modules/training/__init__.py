"""Training: the Brains, the blending loss and its options, the teacher (loaded, online, or
dumped to a store), checkpoints that survive a kill, and the run's device and precisions. The
steps every entry script takes around its Brain are :mod:`blend_modules.experiment`."""
