"""Analysis: results tables from run summaries, and the study's CSV, tables and plots."""
