"""One module per provider or file format; each turns a payload into ``Parsed`` points (or
``AnnualFactor`` rows) with the provider's provenance kept."""
