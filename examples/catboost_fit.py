"""An unchanged CatBoost training inside `with tracked.run(...)`: its parameters, every eval
metric at every iteration, the best iteration, and the model in CatBoost's `.cbm` format,
registered.

    python examples/catboost_fit.py
"""

import numpy as np
from catboost import CatBoostClassifier
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split

import tracked

if __name__ == "__main__":
    tracked.configure(project="examples")
    X, y = make_classification(n_samples=3_000, n_features=12, random_state=0)
    X_train, X_val, y_train, y_val = train_test_split(X, y, random_state=0)
    model = CatBoostClassifier(iterations=200, depth=4, eval_metric="AUC", verbose=0,
                               thread_count=2, train_dir=None)  # fmt: skip

    with tracked.run("catboost-classifier", model_name="{project}-{name}") as run:
        model.fit(X_train, y_train, eval_set=(X_val, y_val), early_stopping_rounds=20)

    loaded = tracked.load_model(f"{run.model_name}@latest")
    same = np.allclose(loaded.predict_proba(X_val), model.predict_proba(X_val))
    print(
        f"best iteration {model.get_best_iteration()}, val AUC {run.metrics['validation-AUC']:.4f}"
    )
    print(f"registered {run.model_name} version {run.model_version}; predictions match: {same}")
