"""Targets: what a model learns to predict, frame labels (hybrid) or CTC units, with their
dataset pipeline, hard loss, metrics and decoding, and frame targets realigned by a trained
teacher. Above data/, hybrid/ and training/, which it uses; nothing below imports it."""
