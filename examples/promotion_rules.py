"""Three versions with different scores; a policy in code decides which becomes champion.

python examples/promotion_rules.py
"""

import numpy as np
from sklearn.dummy import DummyClassifier

import tracked
from tracked import PromotionPolicy, metric

policy = PromotionPolicy(
    to="champion",
    when=[
        metric("val_auc") >= 0.80,
        metric("val_auc").beats("champion", by=0.005),
        metric("latency_ms") <= 20,
    ],
)


@tracked.tracked_training(name="churn", model_name="{project}-churn", promote=policy)
def train(X, y, *, variant):
    # Stand-in scores: a real training would compute these on validation data.
    scores = {"a": (0.84, 12.0), "b": (0.842, 11.0), "c": (0.87, 15.0)}[variant]
    model = DummyClassifier(strategy="most_frequent").fit(X, y)
    return model, {"val_auc": scores[0], "latency_ms": scores[1]}


if __name__ == "__main__":
    tracked.configure(project="examples")
    X, y = np.random.RandomState(0).rand(50, 3), np.arange(50) % 2
    for variant in ("a", "b", "c"):
        train(X, y, variant=variant)
        print(tracked.last_run().promotion.summary())
    champion = tracked.lineage(f"{tracked.last_run().model_name}@champion")
    print(f"champion: version {champion.version} (val_auc={champion.metrics['val_auc']})")
