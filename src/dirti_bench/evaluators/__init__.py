"""One module per evaluation task (zero-shot, KNN, linear probe, alignment); ``registry`` maps
evaluator names to them."""
