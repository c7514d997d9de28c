"""Studies: the paper's studies declared as data (``plans``) and the resumable runner
(``runner``)."""
