"""Data, the bottom of the package (it imports no other subpackage): manifests and audio, frame
bookkeeping, Kaldi alignments, datasets and batching, speed perturbation, hparams loading,
atomic files and preparation that runs once."""
