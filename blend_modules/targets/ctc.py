"""CTC targets: SentencePiece units of the transcripts; hard loss: CTC; metrics: WER and CER
with SpeechBrain's CTC decoders. The soft term of blending is a cross-entropy to the teacher's
per-frame CTC posteriors, blank included (:mod:`blend_modules.targets.frame` has the targets'
common interface)."""

from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from speechbrain.core import Stage
from speechbrain.decoders import ctc_greedy_decode
from speechbrain.nnet.losses import ctc_loss
from speechbrain.utils.data_pipeline import provides, takes

from blend_modules.data.datasets import DatasetItems
from blend_modules.data.frames import num_frames
from blend_modules.targets.metrics import WordErrorRates


class CTCTargets:
    """SentencePiece units of the ``words`` transcripts; hard loss: CTC.

    The CTC blank takes the tokenizer's ``<unk>`` id (``blank_index``, 0 by default), so the
    model has ``vocab_size`` outputs; a transcript with characters the tokenizer does not know
    would need ``<unk>`` and is refused. Validation decodes greedily; test with ``test_search``
    (e.g. ``CTCBeamSearcher``), given the tokenizer's pieces as ``vocab_list``.

    Arguments
    ---------
    tokenizer : callable
        Builds (training on first use) a ``speechbrain.tokenizers.SentencePiece.SentencePiece``.
    blank_index : int
        Output index of the CTC blank.
    test_search : callable
        Partial of a ``speechbrain.decoders.ctc.CTCBaseSearcher`` subclass.
    scoring_filter : callable
        Maps a word list to the words scored, applied to hypotheses and references alike
        (e.g. a GLM normaliser for Switchboard); None scores the words as they are.
    """

    error_key = "WER"

    def __init__(
        self,
        tokenizer: Callable,
        blank_index: int = 0,
        test_search: Callable = None,
        scoring_filter: Callable[[List[str]], List[str]] = None,
    ):
        self.make_tokenizer = tokenizer
        self.blank_index = blank_index
        self.test_search = test_search
        self.scoring_filter = scoring_filter
        self.tokenizer = None

    def prepare_outputs(self) -> None:
        """What :meth:`outputs` needs: the tokenizer (see :meth:`prepare`)."""
        self.prepare()

    def prepare(self) -> None:
        """Train (first time) and load the SentencePiece model."""
        sentencepiece = self.make_tokenizer()
        self.tokenizer = sentencepiece.sp
        self.tokenizer_file = sentencepiece.prefix_model_file + ".model"
        if self.blank_index != self.tokenizer.unk_id():
            raise ValueError(
                f"blank_index {self.blank_index} must be the tokenizer's <unk> id "
                f"{self.tokenizer.unk_id()}, which no transcript may use."
            )
        vocab = [self.tokenizer.id_to_piece(i) for i in range(self.tokenizer.vocab_size())]
        self.searcher = (
            self.test_search(blank_index=self.blank_index, vocab_list=vocab)
            if self.test_search
            else None
        )

    @property
    def num_labels(self) -> int:
        """Model outputs: the tokenizer's vocabulary, whose ``<unk>`` serves as blank."""
        return self.tokenizer.vocab_size()

    def outputs(self) -> Dict:
        """What the model's outputs mean: the units in output order (blank included)."""
        units = [self.tokenizer.id_to_piece(i) for i in range(self.num_labels)]
        units[self.blank_index] = "<blank>"
        return {"kind": "ctc", "num_labels": self.num_labels, "units": units}

    def add_to_dataset(
        self, dataset, split: str, manifest: Path, num_samples: Dict[str, int], hop: int
    ) -> DatasetItems:
        """Tokenize every transcript now, refusing empty ones and unknown characters, and add
        the ``words`` and ``tokens`` items."""
        tokens = {}
        for utt_id in num_samples:
            words = dataset.data[utt_id].get("words")
            if words is None:
                raise ValueError(f"{manifest}: CTC targets need a 'words' column.")
            ids = self.tokenizer.encode_as_ids(words)
            if not words.strip() or not ids:
                raise ValueError(f"{manifest}: utterance '{utt_id}' has an empty transcript.")
            if self.blank_index in ids:
                unknown = sorted(
                    {
                        c
                        for c in words
                        if not c.isspace() and self.blank_index in self.tokenizer.encode_as_ids(c)
                    }
                )
                raise ValueError(
                    f"{manifest}: utterance '{utt_id}' has characters outside the tokenizer: {unknown}."
                )
            if len(ids) > num_frames(num_samples[utt_id], hop):
                raise ValueError(f"{manifest}: utterance '{utt_id}' has more units than frames.")
            tokens[utt_id] = torch.tensor(ids, dtype=torch.long)

        @takes("id")
        @provides("tokens")
        def token_pipeline(utt_id):
            return tokens[utt_id]

        dataset.add_dynamic_item(token_pipeline)
        return DatasetItems(["words", "tokens"], set(tokens))

    def hard_loss(self, logits: torch.Tensor, batch, lengths: torch.Tensor) -> torch.Tensor:
        """SpeechBrain's CTC loss (mean over utterances of the loss per target unit)."""
        tokens, token_lens = batch.tokens
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        return ctc_loss(log_probs, tokens, lengths / logits.shape[1], token_lens, self.blank_index)

    def decode(
        self, logits: torch.Tensor, lengths: torch.Tensor, search: Callable = None
    ) -> List[List[str]]:
        """Word sequences: greedy, or with ``search`` (a CTC searcher)."""
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        relative = lengths / logits.shape[1]
        if search is None:
            sequences = ctc_greedy_decode(log_probs, relative, blank_id=self.blank_index)
            return [self.tokenizer.decode_ids(ids).split() for ids in sequences]
        return [hyps[0].text.split() for hyps in search(log_probs, relative)]

    def metrics(self, stage, group_by: Optional[str] = None) -> "WordErrorRates":
        """WER/CER trackers, decoding greedily on valid and with the test searcher on test
        (also per value of the batch item ``group_by`` if given); None on training batches,
        which are not decoded."""
        if stage == Stage.TRAIN:
            return None
        search = self.searcher if stage == Stage.TEST else None
        decode = partial(self.decode, search=search)
        return WordErrorRates(decode, self.scoring_filter, group_by)
