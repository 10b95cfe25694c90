"""Validation reports: Slurm job energy against machine-room meters.

Pure parts: ``meters`` (meter series in, cleaned, with data-quality issues), ``mapping``
(node -> rack -> room), ``jobs`` (job energies from normalized records or the warehouse),
``attribution`` (jobs' energy over nodes and intervals), ``stats`` (comparisons and roll-ups),
``html`` (one self-contained HTML file). ``report.build_validation_report`` ties them together
and writes the HTML, CSV tables and a JSON summary. ``machine_room`` builds a synthetic
machine room with known truth for the demo and the tests.
"""
