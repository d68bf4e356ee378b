"""One module per evaluation task (zero-shot, KNN, linear probe, alignment)."""
