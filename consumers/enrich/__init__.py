"""Enrich stage: carbon-intensity and PUE time series, their parsers, exact integration over
a job's run, and the ``enrich`` stage function that fills a ``JobFact``'s footprint."""
