"""Writers send a RunRecord somewhere: to MLflow (mlflow.py) or, when that fails, to the spool."""
