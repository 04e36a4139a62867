"""The client side: the ``stagerun`` CLI, its API client, the local stack it starts (``stagerun up``), the
one-shot runner (``stagerun run``), pipeline files, progress display and synthetic datasets. Neither the API
nor the worker imports it."""
