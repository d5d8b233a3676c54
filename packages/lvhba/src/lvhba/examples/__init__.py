"""Example problems shipped with lvhba: the known-solution toys, SVM hyperparameter optimization
and data hyper-cleaning."""
