"""An unchanged Keras 3 training (torch backend: TensorFlow is not needed) inside
`with tracked.run(...)`: the compile settings, History at every epoch, and the model saved in the
`.keras` format and registered.

    python examples/keras_fit.py
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import keras
import numpy as np

import tracked

if __name__ == "__main__":
    tracked.configure(project="examples")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1_000, 8)).astype("float32")
    y = (X[:, :2].sum(axis=1) > 0).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy",
                  metrics=["accuracy"])  # fmt: skip

    with tracked.run("keras-classifier", model_name="{project}-{name}") as run:
        history = model.fit(X, y, epochs=5, batch_size=64, validation_split=0.2, verbose=0)

    loaded = tracked.load_model(f"{run.model_name}@latest")
    same = np.allclose(loaded.predict(X[:10], verbose=0), model.predict(X[:10], verbose=0))
    print(f"val_accuracy by epoch: {[round(v, 3) for v in history.history['val_accuracy']]}")
    print(f"registered {run.model_name} version {run.model_version}; predictions match: {same}")
