"""Korean-correct evaluation: metrics, decoding sweeps, rating sheets, KoBEST."""
