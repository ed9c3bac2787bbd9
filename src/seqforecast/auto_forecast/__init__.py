"""The automatic forecast (``scripts/forecast.py``, docs/forecast.md): a pool of candidates
(:mod:`.pool`) backtested on validation origins (:mod:`.validate`), the best combined
(:mod:`.combine`), refitted on all rows and written as long tables (:mod:`.tables`) by
the task (:mod:`.task`)."""
