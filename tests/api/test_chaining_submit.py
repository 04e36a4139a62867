"""Stages name their inputs (``weights: stage:<n>``, ``data: from_stage``); what no earlier stage produces is a 422
naming the field, before anything is queued."""

import pytest

TRAIN = {"type": "train", "epochs": 1, "imgsz": 64}
MINE = {"type": "mine", "imgsz": 64}


@pytest.mark.parametrize(
    ("stages", "field", "message"),
    [
        ([TRAIN, MINE, {"type": "evaluate", "weights": "stage:1"}], "stages.2.weights",
         "stage 1 is a mine stage; it produces dataset, hard_examples, not weights"),
        ([TRAIN, {"type": "evaluate", "weights": "stage:2"}, TRAIN], "stages.1.weights", "only use what an earlier stage"),
        ([TRAIN, {**TRAIN, "data": "from_stage"}], "stages.1.data", "needs a mine stage before this train stage"),
        ([TRAIN, {**TRAIN, "data": "stage:0"}], "stages.1.data", "it produces metrics, weights, not dataset"),
        ([{"type": "export"}], "stages.0.weights", "export needs weights"),
        ([TRAIN, {"type": "evaluate", "gate": {"metric": "mAP50", "class": "nope", "min": 0.1}}], "stages.1.gate.class",
         "unknown class"),
        ([{**TRAIN, "gate": {"metric": "mAP50", "better_than_previous": True}}], "stages.0.gate.better_than_previous",
         "earlier train or evaluate stage"),
        ([TRAIN, {"type": "evaluate", "gate": {"metric": "mAP50", "min": 0.5, "on_fail": "retry"}}],
         "stages.1.gate", "put the gate on the train stage"),
        ([TRAIN, {"type": "evaluate", "gate": {"metric": "mAP50"}}], "stages.1.gate", "needs min, better_than_previous"),
    ],
)
def test_inputs_nothing_earlier_produces_are_refused(client, tiny_dataset, stages, field, message):
    response = client.post("/v1/jobs", json={"dataset": tiny_dataset, "stages": stages})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field and message in error["message"], error


def test_named_inputs_are_accepted_and_stored(client, tiny_dataset):
    stages = [TRAIN, {**TRAIN, "weights": "model"}, MINE, {**TRAIN, "start_from": "stage:0", "data": "stage:2"},
              {"type": "evaluate", "weights": "stage:1", "gate": {"metric": "recall", "class": "0", "min": 0.1}},
              {"type": "export", "weights": "stage:3", "imgsz": 64}]
    response = client.post("/v1/jobs", json={"dataset": tiny_dataset, "stages": stages})
    assert response.status_code == 202, response.text
    stored = [s["spec"] for s in response.json()["stages"]]
    assert stored[1]["start_from"] == "model" and stored[3]["data"] == "stage:2"
    assert stored[4]["gate"]["class"] == "0" and stored[5]["type"] == "export"
