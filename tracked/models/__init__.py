"""Models: detect a trained object's flavor, save it as an MLflow model, load it back."""
