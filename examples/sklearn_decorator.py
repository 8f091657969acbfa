"""A scikit-learn pipeline trained in a decorated function: logged, registered, loaded back.

python examples/sklearn_decorator.py
"""

import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import tracked


@tracked.tracked_training(
    name="churn",
    model_name="{project}-{name}-{flavor}",  # e.g. "examples-churn-sklearn"
    tags={"team": "risk"},
)
def train(X_train, y_train, X_val, y_val, *, C=1.0, max_iter=200):
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    model.fit(X_train, y_train)
    return model, {"val_auc": roc_auc_score(y_val, model.predict_proba(X_val)[:, 1])}


if __name__ == "__main__":
    tracked.configure(project="examples")
    X, y = make_classification(n_samples=1_000, n_features=10, random_state=1)
    X_train, X_val, y_train, y_val = train_test_split(X, y, random_state=1)
    model, metrics = train(X_train, y_train, X_val, y_val, C=0.5)

    run = tracked.last_run()
    auc = metrics["val_auc"]
    print(f"registered {run.model_name} version {run.model_version} (val_auc={auc:.3f})")
    loaded = tracked.load_model(f"{run.model_name}@latest")
    assert np.array_equal(loaded.predict(X_val), model.predict(X_val))
    print(f"loaded {run.model_uri}: predictions match")
