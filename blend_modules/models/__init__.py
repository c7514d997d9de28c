"""Acoustic models whose outputs do not depend on batching: the BLSTM teacher, the VGG CNN
student, their posterior-average ensemble, and the CNN streamed frame by frame."""
