"""Scoped capture of framework training calls inside a run block.

Inside `with tracked.run(...)` (or a `@tracked_training` function), `xgboost.train`, LightGBM's
`lightgbm.train` and their scikit-learn-API `fit` methods record their params, every eval metric
at every iteration, best iteration and score, and the trained model, with no change to the
user's calls. `scope` owns the patches; `xgboost` and `lightgbm` know each framework and are
imported only when that framework already is. Importing this package imports neither.
"""
