"""An unchanged Optuna study inside `with tracked.run(...)`: the run is the study's run, each
trial a child run (params, pruning curve, value, state), the best trial's model registered.

    python examples/optuna_sweep.py
"""

import numpy as np
import optuna
from sklearn.datasets import make_classification
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split

import tracked

if __name__ == "__main__":
    tracked.configure(project="examples")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = make_classification(n_samples=2_000, n_features=20, random_state=0)
    X_train, X_val, y_train, y_val = train_test_split(X, y, random_state=0)
    models = {}

    def objective(trial: optuna.Trial) -> float:  # exactly the objective you had before
        alpha = trial.suggest_float("alpha", 1e-5, 1e-1, log=True)
        loss = trial.suggest_categorical("loss", ["hinge", "log_loss"])
        model = SGDClassifier(alpha=alpha, loss=loss, random_state=0)
        for epoch in range(10):
            model.partial_fit(X_train, y_train, classes=[0, 1])
            trial.report(model.score(X_val, y_val), epoch)  # the trial's curve, per epoch
            if trial.should_prune():
                raise optuna.TrialPruned()
        models[trial.number] = model
        tracked.log_model(model)  # logged in the trial's run; only the best one is registered
        return model.score(X_val, y_val)

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    with tracked.run("optuna-sweep", model_name="{project}-{name}") as run:
        study.optimize(objective, n_trials=12, n_jobs=2)

    best = study.best_trial
    loaded = tracked.load_model(run.model_name, run.model_version)
    same = np.array_equal(loaded.predict(X_val), models[best.number].predict(X_val))
    print(f"{run.tags['tracked.children.total']} trial runs under run {run.run_id}")
    print(f"best trial {best.number}: {best.value:.4f} with {best.params}")
    print(f"registered {run.model_name} version {run.model_version}; predictions match: {same}")
