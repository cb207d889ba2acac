# One runtime image for every lookalike container: Airflow, Spark master/workers, MLflow,
# the recommendation service. Same lock file and set-up script as a local checkout.
FROM python:3.11-slim-bookworm

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOOKALIKE_HOME=/data/lookalike \
    LOOKALIKE_PYTHON=python3.11
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      openjdk-17-jre-headless dataset-fashion-mnist cmake g++ curl procps \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/lookalike
COPY requirements.lock pyproject.toml README.md ./
COPY scripts/ scripts/
COPY lookalike/ lookalike/
COPY serving/ serving/
COPY spark_jobs/ spark_jobs/
COPY dags/ dags/
COPY plugins/ plugins/
# the web page's browser test is not run in the image: skip chromium there
RUN sed -i 's/^command -v chromium .*$/true/' scripts/setup.sh && bash scripts/setup.sh
ENV PATH=/opt/lookalike/.venv/bin:$PATH \
    SPARK_HOME=/opt/lookalike/.venv/lib/python3.11/site-packages/pyspark \
    PYSPARK_PYTHON=/opt/lookalike/.venv/bin/python
EXPOSE 8000
CMD ["lookalike", "serve", "--host", "0.0.0.0"]
