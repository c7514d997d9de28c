"""Forced alignment to senones with pocketsphinx's en-us model: the aligner, its model
definition (mdef), CMU lexicons, the label inventory, and the stage that writes the targets
(realignment by a trained teacher is :mod:`blend_modules.targets.teacher_alignment`)."""
