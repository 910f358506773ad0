"""Pure domain code: no I/O. Ranking order, action catalogue and rules, domain errors."""
