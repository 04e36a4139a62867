"""The automatic recipe for thin and rare classes: which stagerun training options a train stage gets when it
does not name them, chosen from the dataset profile of its training labels at its imgsz. Pure functions.

- **Thin classes** (the profile's ``classes_at_risk``: thin side under 3 px at imgsz, extreme aspect ratio)
  get thin-box keeping through augmentation; those whose thin side is under ``widen_thin``'s target at imgsz
  are trained widened and narrowed back at predict time. The thin-aware assigner is chosen only for thin
  classes left narrow: a widened box is no longer thin, and the assigner's plain-IoU alignment applies to every
  class (measured: without it beside widening, test barline 0.890 where it gave 0.781). A class whose boxes
  the widened boxes cross (``COARSE_CROSSED_SHARE`` of them or more, as stems cross beams) learns on the
  coarser levels and the widened classes on the finest: an anchor predicts one box, and sharing the finest
  level with the widened stems cost omr-bench's beams 0.18 mAP50 (val beam 0.934 with the levels apart,
  0.733 without; plain 0.917).
- **Rare classes** (some class with ``RARE_RATIO`` times fewer training instances than the most frequent one)
  get ``sqrt_inverse`` class weights raised to at least 1 (no class weighs less than in an unweighted loss:
  the plain weights put frequent thin classes such as barline at 0.33) and weighted sampling; the rarest of
  them (``PASTE_RATIO`` times fewer) also get rare-class copy-paste, which gave the rare barlines of
  omr-bench their largest gain (test barline_double 0.643 to 0.817, barline_final 0.615 to 0.772).

These are the options the omr-bench measurements chose (docs/benchmarks.md). A dataset with neither trains
exactly as plain Ultralytics. An option the stage names, even as null, is never touched, and
``auto_recipe: false`` turns the whole recipe off. Each choice is returned with its reason, for ``stage.info``."""

from __future__ import annotations

from dataclasses import dataclass

from shared.datasets.profile import classes_at_risk
from shared.stage_kinds.training_options import (
    AutoClassWeights,
    CopyPasteRare,
    Sampling,
    ThinAssigner,
    ThinBoxes,
    TrainingOptions,
    WidenThin,
)

RARE_RATIO = 10.0
RARE_WEIGHTS = "sqrt_inverse"
RARE_CLASS_WEIGHTS = AutoClassWeights(strategy="sqrt_inverse", min_weight=1.0)
# The measured run pasted omr-bench's three rarest classes (26, 83 and 155 instances, 65-390x below notehead);
# 60x is the ratio that picks exactly those (time_signature, 57x, was not pasted in it).
PASTE_RATIO = 60.0
COARSE_CROSSED_SHARE = 0.25  # omr-bench: 46% of beams are crossed by a stem; no other class by any thin class


@dataclass(frozen=True)
class Choice:
    option: str
    value: object
    reason: str

    def to_dict(self) -> dict:
        value = self.value.model_dump() if hasattr(self.value, "model_dump") else self.value
        return {"option": self.option, "value": value, "reason": self.reason}


def rare_classes(profile: dict, ratio: float = RARE_RATIO) -> tuple[list[dict], dict | None]:
    """Classes with at least ``ratio`` times fewer instances than the most frequent class (empty classes are
    left out: a class with no labels cannot be sampled more), and that most frequent class."""
    present = [entry for entry in profile["classes"] if entry["instances"] > 0]
    if len(present) < 2:
        return [], None
    top = max(present, key=lambda entry: entry["instances"])
    return [e for e in present if e["instances"] * ratio <= top["instances"]], top


def _thin_side_at(entry: dict, imgsz: int) -> float:
    return entry["median_thin_side_px_at_imgsz"].get(str(imgsz), entry["median_thin_side_px"])


def _thin_reason(at_risk: list[dict], imgsz: int) -> str:
    parts = [f"{entry['name']} ({_thin_side_at(entry, imgsz):.2f} px)" for entry in at_risk[:6]]
    more = f" and {len(at_risk) - 6} more" if len(at_risk) > 6 else ""
    return f"thin classes at imgsz {imgsz}: median thin side " + ", ".join(parts) + more


def crossed_classes(profile: dict, widened: list[str]) -> list[tuple[str, str, float]]:
    """(class, the widened class crossing it most, share of its boxes crossed) for each class not widened
    whose boxes the widened classes' boxes cross at least ``COARSE_CROSSED_SHARE`` of the time."""
    found = []
    for entry in profile["classes"]:
        if entry["name"] in widened or not entry["instances"]:
            continue
        by_widened = {name: share for name, share in entry.get("crossed_by", {}).items() if name in widened}
        if by_widened:
            crosser, share = max(by_widened.items(), key=lambda item: item[1])
            if share >= COARSE_CROSSED_SHARE:
                found.append((entry["name"], crosser, share))
    return found


def _coarse_reason(coarse: list[tuple[str, str, float]]) -> str:
    crossed = ", ".join(f"{name} ({share:.0%} of its boxes crossed by {crosser})" for name, crosser, share in coarse)
    return (
        f"; classes the widened boxes cross: {crossed}: an anchor predicts one box, so these learn on the coarser "
        "levels and the widened classes on the finest"
    )


def _rare_reason(rare: list[dict], top: dict) -> str:
    rarest = sorted(rare, key=lambda entry: entry["instances"])[:6]
    listed = ", ".join(f"{e['name']} ({e['instances']})" for e in rarest)
    more = f" and {len(rare) - 6} more" if len(rare) > 6 else ""
    return (
        f"rare classes, {RARE_RATIO:g}x or more below {top['name']} ({top['instances']} training instances): "
        f"{listed}{more}"
    )


def automatic_choices(options: TrainingOptions, profile: dict, imgsz: int) -> list[Choice]:
    """The options the recipe sets on a stage with ``options``, given the profile of its training labels."""
    if not options.auto_recipe:
        return []
    named = options.named_options()
    choices: list[Choice] = []
    at_risk = classes_at_risk(profile, imgsz=imgsz)
    if at_risk:
        reason = _thin_reason(at_risk, imgsz)
        widen = WidenThin()
        narrow = [entry["name"] for entry in at_risk if _thin_side_at(entry, imgsz) < widen.target_px]
        widened = bool(narrow) and "widen_thin" not in named
        thin: list[tuple[str, object]] = [("thin_boxes", ThinBoxes())]
        if not widened or len(narrow) < len(at_risk):
            thin.append(("thin_assigner", ThinAssigner()))
        coarse = crossed_classes(profile, narrow) if widened else []
        if narrow:
            update = {"classes": narrow}
            if coarse:
                update |= {"levels": "finest", "coarse_classes": [name for name, _, _ in coarse]}
            thin.append(("widen_thin", widen.model_copy(update=update)))
        choices += [
            Choice(option, value, reason + (_coarse_reason(coarse) if option == "widen_thin" and coarse else ""))
            for option, value in thin
            if option not in named
        ]
    rare, top = rare_classes(profile)
    if rare:
        reason = _rare_reason(rare, top)
        rare_options: list[tuple[str, object]] = [
            ("class_weights", RARE_CLASS_WEIGHTS),
            ("sampling", Sampling(weights=RARE_WEIGHTS)),
        ]
        rarest, _ = rare_classes(profile, PASTE_RATIO)
        if rarest:  # box-only copy-paste; a dataset with segments keeps its images as they are (augment.py)
            rare_options.append(("copy_paste_rare", CopyPasteRare(classes=[e["name"] for e in rarest], p=0.5)))
        for option, value in rare_options:
            if option not in named:
                choices.append(
                    Choice(option, value, reason if option != "copy_paste_rare" else _paste_reason(rarest, top))
                )
    return choices


def _paste_reason(rarest: list[dict], top: dict) -> str:
    listed = ", ".join(f"{e['name']} ({e['instances']})" for e in sorted(rarest, key=lambda e: e["instances"])[:6])
    return f"rarest classes, {PASTE_RATIO:g}x or more below {top['name']} ({top['instances']}): {listed}"


def apply_choices(options: TrainingOptions, choices: list[Choice]) -> TrainingOptions:
    """``options`` with the chosen values set (a copy; the stage's spec is not changed)."""
    if not choices:
        return options
    return options.model_copy(update={choice.option: choice.value for choice in choices})
