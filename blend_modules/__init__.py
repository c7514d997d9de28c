"""blend: blending a BLSTM teacher into a deep CNN student with SpeechBrain (Geras et al., 2016).

Subpackages, one concern each: ``training`` (Brains, losses, the teacher and its store,
checkpoints, the steps of the entry scripts), ``models`` (BLSTM, VGG CNN, ensemble, streaming),
``data`` (manifests, audio, frames, alignments, targets, metrics, hparams), ``hybrid`` (priors,
WFST decoding, scoring, graphs, language models, Kaldi formats), ``alignment`` (the pocketsphinx
forced aligner and senone labels), ``deploy`` (inference interface, ONNX export), ``analysis``
(results tables, the study)."""
