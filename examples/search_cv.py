"""An unchanged scikit-learn GridSearchCV inside `with tracked.run(...)`: one child run per
candidate with its cross-validated scores, the search's settings on the run, the best estimator
registered.

    python examples/search_cv.py
"""

import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV

import tracked

if __name__ == "__main__":
    tracked.configure(project="examples")
    X, y = make_classification(n_samples=600, n_features=10, random_state=0)
    grid = {"n_estimators": [20, 50], "max_depth": [3, 6, None]}
    search = GridSearchCV(RandomForestClassifier(random_state=0), grid, cv=3, n_jobs=2)

    with tracked.run("search-cv", model_name="{project}-{name}") as run:
        search.fit(X, y)  # exactly the call you had before

    loaded = tracked.load_model(run.model_name, run.model_version)
    same = np.array_equal(loaded.predict(X), search.best_estimator_.predict(X))
    print(f"{run.tags['tracked.children.total']} candidate runs under run {run.run_id}")
    print(f"best {search.best_params_}: {search.best_score_:.4f}")
    print(f"registered {run.model_name} version {run.model_version}; predictions match: {same}")
