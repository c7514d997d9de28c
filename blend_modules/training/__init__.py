"""Training: the Brains, the blending loss and its options, the teacher (loaded, online, or
dumped to a store), checkpoints that survive a kill, and the steps every entry script takes."""
