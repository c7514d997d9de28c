"""Data: manifests and audio, frame bookkeeping, Kaldi alignments, the targets a model learns
(frames or CTC units) and their metrics, hparams loading, and preparation that runs once."""
