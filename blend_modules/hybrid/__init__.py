"""Hybrid decoding: label priors, the WFST decoder and its graph cache, WER scoring, HMM and
language-model graphs, the senone graph, and Kaldi model and output formats."""
