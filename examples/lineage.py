"""Two trainings on data that differs in one row: lineage shows exactly which input changed.

python examples/lineage.py
"""

import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeRegressor

import tracked


@tracked.tracked_training(name="prices", model_name="{project}-prices")
def train(X_train, y_train, *, max_depth=4):
    model = DecisionTreeRegressor(max_depth=max_depth, random_state=0).fit(X_train, y_train)
    return model, {"train_r2": model.score(X_train, y_train)}


def side_by_side(a: tracked.Lineage, b: tracked.Lineage) -> None:
    print(f"{'':10} {'v' + a.version:>24} {'v' + b.version:>24}")
    print(f"{'commit':10} {str(a.git_commit)[:12]:>24} {str(b.git_commit)[:12]:>24}")
    for name in sorted({i.name for i in a.inputs} | {i.name for i in b.inputs}):
        da, db = a.input(name), b.input(name)
        left = da.digest.rsplit(":", 1)[-1][:16] if da else "-"
        right = db.digest.rsplit(":", 1)[-1][:16] if db else "-"
        mark = "  <- differs" if left != right else ""
        print(f"{name:10} {left:>24} {right:>24}{mark}")


if __name__ == "__main__":
    tracked.configure(project="examples")
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.rand(100_000, 5), columns=[f"f{i}" for i in range(5)])
    y = X.sum(axis=1) + rng.rand(100_000) * 0.1

    train(X, y)
    first = tracked.last_run()
    X_edited = X.copy()
    X_edited.loc[50_000, "f3"] += 0.001  # one value in one row
    train(X_edited, y)
    second = tracked.last_run()

    a = tracked.lineage(first.model_name, version=first.model_version)
    b = tracked.lineage(second.model_name, version=second.model_version)
    side_by_side(a, b)
    found = tracked.find_versions(digest=a.input("y_train").digest)
    print(f"versions trained on this exact y_train: {[m.version for m in found]}")
