"""The baseline for bench/api_throughput.py: a bare FastAPI endpoint that returns a stored copy of the
same job document, with no database, no validation and no error handling."""

import json
import os

from fastapi import FastAPI

app = FastAPI()
DOCUMENT = json.loads(os.environ.get("BARE_DOCUMENT", "{}"))


@app.get("/v1/jobs/{job_id}")
def bare(job_id: str) -> dict:
    return DOCUMENT
