"""Quickstart: one decorator records a scikit-learn training run in MLflow.

Run it with `python examples/quickstart.py`. It writes to the embedded default store,
`mlflow.db` in the working directory (no server needed); browse it with `tracked ui`
or `mlflow ui --backend-store-uri sqlite:///mlflow.db`.
"""

from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

import tracked


@tracked.tracked_training(name="quickstart", tags={"team": "examples"})
def train(X_train, y_train, X_val, y_val, *, n_estimators=50, max_depth=4, seed=0):
    model = RandomForestClassifier(
        n_estimators=n_estimators, max_depth=max_depth, random_state=seed
    ).fit(X_train, y_train)
    for depth_seen, tree in enumerate(model.estimators_[:5]):
        tracked.log_metrics({"tree_depth": tree.get_depth()}, step=depth_seen)
    val_auc = roc_auc_score(y_val, model.predict_proba(X_val)[:, 1])
    return model, {"val_auc": val_auc}


if __name__ == "__main__":
    X, y = make_classification(n_samples=2_000, n_features=20, random_state=0)
    X_train, X_val, y_train, y_val = train_test_split(X, y, random_state=0)
    model, metrics = train(X_train, y_train, X_val, y_val, max_depth=6)
    run = tracked.last_run()
    print(f"val_auc={metrics['val_auc']:.3f}")
    print(f"run_id={run.run_id}")
    print(f"tracking_uri={run.settings.tracking_uri}")
