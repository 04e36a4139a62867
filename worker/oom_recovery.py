"""What to shrink after a CUDA out-of-memory error: pure rules, no torch.

The order (T5): halve the batch down to 1, then shrink imgsz by a quarter in multiples of 32 down to
half the size asked for (never under 64), then drop the dataset cache, then halve the dataloader
workers down to 0. Each call gives the next single step, or None when nothing is left to shrink."""

from __future__ import annotations

from dataclasses import dataclass, replace

MIN_IMGSZ = 64  # under it, batch 1 leaves BatchNorm one value per channel (Ultralytics refuses)


@dataclass(frozen=True)
class MemoryKnobs:
    """The training arguments that decide memory use, as the trainer actually used them."""

    batch: int
    imgsz: int
    cache: bool | str
    workers: int


@dataclass(frozen=True)
class OomStep:
    knob: str
    old: object
    new: object
    knobs: MemoryKnobs


def imgsz_floor(requested_imgsz: int) -> int:
    return max(MIN_IMGSZ, -(-requested_imgsz // 2 // 32) * 32)


def smaller_imgsz(imgsz: int, floor: int) -> int:
    return max(floor, int(imgsz * 0.75) // 32 * 32)


def next_oom_step(knobs: MemoryKnobs, requested_imgsz: int) -> OomStep | None:
    if knobs.batch > 1:
        return OomStep("batch", knobs.batch, knobs.batch // 2, replace(knobs, batch=knobs.batch // 2))
    floor = imgsz_floor(requested_imgsz)
    if knobs.imgsz > floor:
        new = smaller_imgsz(knobs.imgsz, floor)
        return OomStep("imgsz", knobs.imgsz, new, replace(knobs, imgsz=new))
    if knobs.cache not in (False, None, "False", "false", ""):
        return OomStep("cache", knobs.cache, False, replace(knobs, cache=False))
    if knobs.workers > 0:
        return OomStep("workers", knobs.workers, knobs.workers // 2, replace(knobs, workers=knobs.workers // 2))
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, or the RuntimeError text CUDA and cuBLAS use for the same thing."""
    text = str(exc)
    return type(exc).__name__ == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and ("out of memory" in text.lower() or "CUBLAS_STATUS_ALLOC_FAILED" in text)
    )
