-- One Postgres, two metadata databases: Airflow's and MLflow's.
CREATE DATABASE airflow;
CREATE DATABASE mlflow;
