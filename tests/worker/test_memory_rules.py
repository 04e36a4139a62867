"""OOM recovery steps and GPU tiers: pure rules, hand-computed numbers."""

import pytest

from worker.gpu_tiers import pick_tier, scaled_model
from worker.oom_recovery import MemoryKnobs, imgsz_floor, is_out_of_memory, next_oom_step, smaller_imgsz


def walk(knobs: MemoryKnobs, requested_imgsz: int) -> list[tuple[str, object, object]]:
    steps = []
    while (step := next_oom_step(knobs, requested_imgsz)) is not None:
        steps.append((step.knob, step.old, step.new))
        knobs = step.knobs
    return steps


def test_order_batch_then_imgsz_then_cache_then_workers():
    steps = walk(MemoryKnobs(batch=16, imgsz=640, cache="ram", workers=8), requested_imgsz=640)
    assert steps == [
        ("batch", 16, 8),
        ("batch", 8, 4),
        ("batch", 4, 2),
        ("batch", 2, 1),
        ("imgsz", 640, 480),  # 640 * 0.75 = 480
        ("imgsz", 480, 352),  # 360 -> 352, a multiple of 32
        ("imgsz", 352, 320),  # 264 -> 256, held at the floor: half of 640
        ("cache", "ram", False),
        ("workers", 8, 4),
        ("workers", 4, 2),
        ("workers", 2, 1),
        ("workers", 1, 0),
    ]


def test_small_run_has_four_steps_then_nothing_fits():
    assert walk(MemoryKnobs(batch=4, imgsz=128, cache=False, workers=0), 128) == [
        ("batch", 4, 2),
        ("batch", 2, 1),
        ("imgsz", 128, 96),
        ("imgsz", 96, 64),  # 72 -> 64, the floor
    ]
    assert next_oom_step(MemoryKnobs(batch=1, imgsz=64, cache=False, workers=0), 64) is None


@pytest.mark.parametrize(("requested", "floor"), [(640, 320), (64, 64), (32, 64), (416, 224), (200, 128)])
def test_imgsz_floor_is_half_rounded_up_to_32_never_under_64(requested, floor):
    assert imgsz_floor(requested) == floor


def test_smaller_imgsz_is_a_multiple_of_32_never_below_floor():
    assert smaller_imgsz(1024, 512) == 768
    assert smaller_imgsz(800, 320) == 576  # 600 -> 576
    assert smaller_imgsz(352, 320) == 320


def test_out_of_memory_recognised_by_type_or_cuda_text():
    import torch

    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert is_out_of_memory(RuntimeError("CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


@pytest.mark.parametrize(
    ("free_gb", "tier", "scale", "batch", "imgsz"),
    [
        (None, "cpu", "n", 4, 320),
        (0.5, "low", "n", 8, 512),
        (5.99, "low", "n", 8, 512),
        (6.0, "medium", "s", 16, 640),
        (11.9, "medium", "s", 16, 640),
        (12.0, "high", "m", 16, 640),
        (24.0, "high", "m", 16, 640),
        (24.1, "workstation", "l", 32, 640),
        (79.0, "workstation", "l", 32, 640),
    ],
)
def test_gpu_tier_boundaries(free_gb, tier, scale, batch, imgsz):
    picked = pick_tier(free_gb)
    assert (picked.name, picked.model_scale, picked.batch, picked.imgsz) == (tier, scale, batch, imgsz)


def test_tier_scales_only_an_unscaled_family_config():
    assert scaled_model("yolov8.yaml", "s") == "yolov8s.yaml"
    assert scaled_model("yolo11.yaml", "m") == "yolo11m.yaml"
    assert scaled_model("yolov8n.yaml", "l") is None  # the user pinned a size
    assert scaled_model("/artifacts/jobs/x/01-train/weights/best.pt", "s") is None


def test_a_rerun_stage_starts_with_what_recovery_already_shrank():
    from worker.stages.train import TrainRunner

    args = {"batch": 16, "imgsz": 640, "workers": 8}
    steps = [
        {"epoch": 3, "knob": "batch", "old": 16, "new": 8},
        {"epoch": 3, "knob": "batch", "old": 8, "new": 4},
        {"epoch": 5, "knob": "imgsz", "old": 640, "new": 480},
        {"epoch": 5, "action": "gave up: nothing left to shrink"},
    ]
    TrainRunner._reapply_oom_steps(steps, args)
    assert args == {"batch": 4, "imgsz": 480, "workers": 8}
