"""An unchanged XGBoost training inside `with tracked.run(...)`: every iteration's eval metrics,
the booster params, early stopping and the model are captured; the model is registered.

    python examples/xgboost_with_block.py
"""

import numpy as np
import xgboost as xgb
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split

import tracked

if __name__ == "__main__":
    tracked.configure(project="examples")
    X, y = make_classification(n_samples=5_000, n_features=20, random_state=0)
    X_train, X_val, y_train, y_val = train_test_split(X, y, random_state=0)
    dtrain = xgb.DMatrix(X_train, label=y_train)
    dval = xgb.DMatrix(X_val, label=y_val)
    params = {"objective": "binary:logistic", "eval_metric": ["auc", "logloss"], "max_depth": 4}

    with tracked.run("churn-xgb", model_name="{project}-{name}") as run:
        booster = xgb.train(  # exactly the call you had before
            params,
            dtrain,
            num_boost_round=200,
            evals=[(dtrain, "train"), (dval, "val")],
            early_stopping_rounds=20,
            verbose_eval=False,
        )

    history = tracked.load_model(f"{run.model_name}@latest")
    same = np.allclose(history.predict(dval), booster.predict(dval))
    print(f"best iteration {booster.best_iteration}, val-auc {run.metrics['val-auc']:.4f}")
    print(f"registered {run.model_name} version {run.model_version}; predictions match: {same}")
