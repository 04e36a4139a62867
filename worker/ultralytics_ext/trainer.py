"""Our DetectionTrainer subclass. With no stagerun options it trains exactly as Ultralytics does;
it only hands each results.csv row to callbacks as the epoch ends. Loss options install a
``StagerunDetectionLoss`` on this trainer's model only; ``llrd`` splits the optimizer's groups by layer.
Data options (thin boxes, weighted sampling, rare-class copy-paste) come from ``TrainingDataMixin``."""

from __future__ import annotations

import os
import shutil
import time

from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import LOGGER
from ultralytics.utils.torch_utils import unwrap_model

from shared.class_weights import class_indices, class_weights
from shared.datasets.profile import build_profile, classes_at_risk
from shared.datasets.validate import LabeledImage
from shared.errors import InvalidSpec
from shared.gates import stronger_weights
from shared.recipe import apply_choices, automatic_choices
from shared.stage_kinds.training_options import TrainingOptions
from worker.reporting import StageReporter
from worker.ultralytics_ext.assigner import ThinAwareAssigner
from worker.ultralytics_ext.llrd import layer_index, layer_lr_factors, split_by_layer
from worker.ultralytics_ext.loss import LossSettings, StagerunDetectionLoss
from worker.ultralytics_ext.starvation import StarvationCollector
from worker.ultralytics_ext.training_data import TrainingDataMixin
from worker.ultralytics_ext.training_profile import training_profile
from worker.ultralytics_ext.widening import (
    ATTRIBUTE,
    NarrowingValidator,
    box_weights,
    pads_of_long_side,
    stored_pad,
)


def _plain(value: object) -> float | int | str:
    if hasattr(value, "item"):
        value = value.item()
    return value if isinstance(value, int | str) else float(value)


class StagerunTrainer(TrainingDataMixin, DetectionTrainer):
    """``results_row`` holds the newest results.csv row (the same columns and values Ultralytics writes),
    so an ``on_fit_epoch_end`` callback can store it the moment the epoch ends.

    ``options`` (stagerun's own training options, a ``TrainingOptions``) and ``reporter`` (where to record
    what was used) are bound per stage by ``for_stage``, because Ultralytics builds the trainer itself from
    a class and its own arguments."""

    results_row: dict | None = None
    options: TrainingOptions | None = None
    reporter: StageReporter | None = None
    keep_resumable: bool = False  # set by a stage that stops early (cancel): last.pt must stay resumable
    partial_epoch: bool = False  # set with a stop between batches: the epoch in progress did not finish

    @classmethod
    def for_stage(cls, options: TrainingOptions | None, reporter: StageReporter | None) -> type[StagerunTrainer]:
        return type(cls.__name__, (cls,), {"options": options, "reporter": reporter})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.profile: dict | None = None
        self.box_pad: dict | None = None
        if self.options is not None and (self.options.auto_recipe or self.options.widen_thin is not None):
            self.profile = training_profile(self.data)
            self._apply_automatic_recipe()
        if self.options is not None and self.options.starvation_batches:
            names = self.data["names"]
            report = StarvationCollector(len(names), names, self.options.starvation_batches, self.record_starvation)
            report.attach(self)

    def _apply_automatic_recipe(self) -> None:
        """Options the stage did not name, chosen from its training labels at its imgsz (shared/recipe.py);
        the choices and their reasons are recorded as ``automatic_recipe``."""
        if not self.options.auto_recipe:
            return
        imgsz = int(self.args.imgsz)
        choices = automatic_choices(self.options, self.profile, imgsz)
        self.options = apply_choices(self.options, choices)
        at_risk = [entry["name"] for entry in classes_at_risk(self.profile, imgsz=imgsz)]
        self.record(
            "automatic_recipe",
            {"imgsz": imgsz, "classes_at_risk": at_risk, "choices": [choice.to_dict() for choice in choices]},
        )
        for choice in choices:
            LOGGER.info(f"stagerun recipe: {choice.option}={choice.to_dict()['value']} ({choice.reason})")

    def set_model_attributes(self):
        """Also where the model is first built: freeze indices it does not have (which Ultralytics ignores) fail
        the stage here; the API checks them at submit for model configs, this catches checkpoints."""
        super().set_model_attributes()
        freeze, layers = self.args.freeze, len(unwrap_model(self.model).model)
        if isinstance(freeze, int) and freeze > layers:
            raise ValueError(f"freeze {freeze} exceeds the model's {layers} layers")
        if isinstance(freeze, list) and (missing := [i for i in freeze if int(i) >= layers]):
            raise ValueError(f"freeze names layers {missing} the model does not have (it has 0..{layers - 1})")

    def widening_pads(self) -> list[tuple[float, float]] | None:
        """``widen_thin``'s per-class pads (share of the long side), from the training labels; None when off."""
        widen = self.options.widen_thin if self.options is not None else None
        if widen is None:
            return None
        imgsz = int(self.args.imgsz)
        if widen.classes is None:
            widen = widen.model_copy(
                update={"classes": [entry["name"] for entry in classes_at_risk(self.profile, imgsz=imgsz)]}
            )
        return pads_of_long_side(widen, self.profile, self.class_names(), imgsz)

    def get_validator(self):
        """Ultralytics' validator with predictions narrowed by the model's ``widen_thin`` pad, if it has one, so
        per-epoch metrics and best.pt's fitness measure the boxes stagerun reports."""
        from copy import copy

        return NarrowingValidator(self.test_loader, save_dir=self.save_dir, args=copy(self.args), _callbacks=self.callbacks)

    def record_starvation(self, report: dict) -> None:
        """A resumed stage's run starts at a later epoch: its report keeps the first epoch the stage measured."""
        info = getattr(self.reporter, "info", None)
        earlier = ((info() if callable(info) else info) or {}).get("starvation") if self.reporter is not None else None
        first = (earlier or {}).get("first_epoch")
        if first is not None and "first_epoch" in report and first["epoch"] < report["first_epoch"]["epoch"]:
            report = {**report, "first_epoch": first}
        self.record("starvation", report)

    def record(self, topic: str, value: object) -> None:
        """Store a fact about this run on the stage (``stage.info[topic]``), when running as a stage."""
        if self.reporter is not None:
            self.reporter.record(topic, value)

    def save_model(self):
        """Ultralytics writes last.pt and best.pt in place, so a worker killed mid-write would leave a
        truncated last.pt that cannot be resumed. Here they are written under temporary names, then
        renamed: a rename is atomic, so last.pt is always the previous or the new complete checkpoint.

        An epoch stopped between batches (a cancel) is not saved: Ultralytics would record it as complete and
        a resume would skip its remaining batches; last.pt stays the previous complete epoch's, and the
        resumed stage trains this epoch again from its start."""
        if self.partial_epoch:
            LOGGER.info(f"epoch {self.epoch + 1} stopped between batches: not saved as complete")
            return None
        last, best = self.last, self.best
        partials = {last: last.with_name(f".{last.name}.partial"), best: best.with_name(f".{best.name}.partial")}
        self.last, self.best = partials[last], partials[best]
        try:
            saved = super().save_model()
        finally:
            self.last, self.best = last, best
        for final, partial in partials.items():
            if partial.exists():
                os.replace(partial, final)
        return saved

    def final_eval(self):
        """Ultralytics strips the optimizer from last.pt and marks it finished (epoch -1) here; a stage
        stopped early keeps its resumable last.pt instead, so that resuming the job continues it."""
        if not (self.keep_resumable and self.last.exists()):
            return super().final_eval()
        resumable = self.last.with_name("last.resumable.pt")
        shutil.copy2(self.last, resumable)
        try:
            return super().final_eval()
        finally:
            resumable.replace(self.last)

    def loss_settings(self) -> LossSettings | None:
        """What the stage asks of the loss, or None when it asks nothing (Ultralytics' own loss is kept)."""
        options = self.options
        if options is None or (
            options.class_weights is None
            and options.focal is None
            and options.small_object_gain is None
            and options.thin_assigner is None
            and options.widen_thin is None
        ):
            return None
        weights = None
        if options.class_weights is not None:
            weights = class_weights(options.class_weights, self.class_names(), self.class_instances())
            if options.class_weight_power is not None:
                weights = stronger_weights(weights, options.class_weight_power)
        focal, small, widen = options.focal, options.small_object_gain, options.widen_thin
        return LossSettings(
            class_weights=weights,
            gamma=focal.gamma if focal else 0.0,
            alpha=focal.alpha if focal else None,
            small_gain=small.gain if small else 1.0,
            small_threshold=small.threshold if small else 0.0,
            small_measure=small.measure if small else "area",
            box_pad_px=self._pad_pixels(),
            box_class_weights=self._box_class_weights(),
            narrowed_iou=self.box_pad is not None and widen is not None and widen.box_iou == "narrowed",
            head_box_classes=self._head_box_classes(),
        )

    def _head_box_classes(self) -> tuple[int, ...]:
        widen = self.options.widen_thin
        if self.box_pad is None or widen is None or widen.box_gradient != "head":
            return ()
        return tuple(i for i, (w, h) in enumerate(self.box_pad["pad"]) if w > 0 or h > 0)

    def _box_class_weights(self) -> list[float] | None:
        widen = self.options.widen_thin
        if self.box_pad is None or widen is None or widen.box_weight == 1.0:
            return None
        return box_weights(self.box_pad, widen.box_weight)

    def _pad_pixels(self) -> list[tuple[float, float]] | None:
        if self.box_pad is None:
            return None
        imgsz = float(self.args.imgsz)  # the current size: out-of-memory recovery may have shrunk it
        return [(w * imgsz, h * imgsz) for w, h in self.box_pad["pad"]]

    def class_names(self) -> list[str]:
        return [self.data["names"][i] for i in range(self.data["nc"])]

    def class_instances(self) -> list[int]:
        """Instances per class in the training labels (what Ultralytics' cls_pw counts too)."""
        return [int(count) for count in self.get_class_counts()]

    def build_criterion(self, model, settings: LossSettings) -> StagerunDetectionLoss:
        """The one place the stage's loss is built (subclasses pass their own assigner here). A ``thin_assigner``
        replaces the loss's assigner with a ``ThinAwareAssigner`` of the same top-k, alpha, beta and strides."""
        criterion = StagerunDetectionLoss(model, settings)
        thin, widen = self.options.thin_assigner, self.options.widen_thin
        widened = frozenset()
        if widen is not None and settings.box_pad_px is not None:
            widened = frozenset(i for i, (w, h) in enumerate(settings.box_pad_px) if w > 0 or h > 0)
        yielding = widened if widen is not None and widen.yield_anchors else frozenset()
        finest = widened if widen is not None and widen.levels == "finest" else frozenset()
        few = widened if widen is not None and widen.topk is not None else frozenset()
        coarse = frozenset()
        if widen is not None and widen.coarse_classes:
            coarse = frozenset(class_indices(widen.coarse_classes, self.class_names(), "widen_thin.coarse_classes"))
            if coarse & widened:
                both = ", ".join(self.class_names()[i] for i in sorted(coarse & widened))
                raise InvalidSpec(
                    f"{both}: a widened class learns on the finest level, it cannot also be a coarse class",
                    field="widen_thin.coarse_classes",
                )
        if thin is not None or yielding or finest or few or coarse:
            criterion.task_assigner = ThinAwareAssigner.like(
                criterion.task_assigner, thin, yielding, finest, few, widen.topk if few else None, coarse
            )
        if thin is not None:
            self.record("thin_assigner", thin.model_dump())
        if yielding:
            self.record("widened_yield_anchors", [self.class_names()[i] for i in sorted(yielding)])
        if finest:
            self.record("widened_finest_level_only", [self.class_names()[i] for i in sorted(finest)])
        if coarse:
            self.record("coarse_level_classes", [self.class_names()[i] for i in sorted(coarse)])
        if few:
            self.record("widened_topk", {"classes": [self.class_names()[i] for i in sorted(few)], "topk": widen.topk})
        return criterion

    def set_class_weights(self) -> None:
        """Ultralytics computes its ``cls_pw`` weights here, once the training labels are loaded and before
        the EMA copy is made; the stage's loss is installed at the same point, on this model only.
        Ultralytics strips ``criterion`` from every checkpoint, so the loss never reaches best.pt."""
        super().set_class_weights()
        self._record_classes_at_risk()
        self._store_box_pad()
        settings = self.loss_settings()
        if settings is None:
            return
        model = unwrap_model(self.model)
        model = getattr(model, "student_model", model)  # distillation: the student builds the criterion
        if getattr(model.model[-1], "one2one_cv2", None) is not None:
            raise ValueError(
                "class_weights, focal, small_object_gain and thin_assigner need a YOLOv8-style detection head; "
                f"this model ({self.args.model}) has an end-to-end head (one-to-one branch)"
            )
        criterion = self.build_criterion(model, settings)
        model.criterion = criterion
        self._record_loss(criterion, settings)

    def _store_box_pad(self) -> None:
        """Put ``widen_thin``'s pads on the model before the EMA copy is made, so best.pt and last.pt carry them
        (a plain dict attribute); a model trained without widening carries none, even when it started from
        weights that did."""
        model = unwrap_model(self.model)
        model = getattr(model, "student_model", model)
        pads = self.widening_pads()
        if pads is None:
            self.box_pad = None
            if hasattr(model, ATTRIBUTE):
                delattr(model, ATTRIBUTE)
            return
        self.box_pad = stored_pad(self.class_names(), pads, self.options.widen_thin.target_px, int(self.args.imgsz))
        setattr(model, ATTRIBUTE, self.box_pad)
        names = self.class_names()
        self.record(
            "widen_thin",
            {
                "target_px": self.options.widen_thin.target_px,
                "pad_px_at_imgsz": {
                    names[i]: [round(w * self.args.imgsz, 3), round(h * self.args.imgsz, 3)]
                    for i, (w, h) in enumerate(pads)
                    if w or h
                },
            },
        )

    def _record_classes_at_risk(self) -> None:
        """The dataset profile's thin-class warning, from the labels this stage really trains on and at its
        imgsz, recorded before the first batch (only when some class is at risk)."""
        if self.reporter is None:
            return
        images = (
            LabeledImage(
                split="train",
                path=label["im_file"],
                width=int(label["shape"][1]),
                height=int(label["shape"][0]),
                boxes=[
                    (int(c), *map(float, box)) for c, box in zip(label["cls"].reshape(-1), label["bboxes"], strict=True)
                ],
            )
            for label in self.train_loader.dataset.labels
        )
        at_risk = classes_at_risk(build_profile(self.class_names(), images), imgsz=int(self.args.imgsz))
        if at_risk:
            self.record("classes_at_risk", at_risk)

    def _record_loss(self, criterion: StagerunDetectionLoss, settings: LossSettings) -> None:
        names = self.class_names()
        used = criterion.used_class_weights()
        if used is not None:
            self.record("class_weights", {name: round(weight, 6) for name, weight in zip(names, used, strict=True)})
            self.record("class_instances", dict(zip(names, self.class_instances(), strict=True)))
        if settings.box_class_weights is not None:
            self.record(
                "box_class_weights",
                {name: w for name, w in zip(names, settings.box_class_weights, strict=True) if w != 1.0},
            )
        if settings.narrowed_iou:
            self.record("box_iou", "narrowed")
        if settings.head_box_classes:
            self.record("widened_box_gradient", {"classes": [names[i] for i in settings.head_box_classes], "to": "head"})
        if self.options.focal is not None:
            self.record("focal", {"gamma": settings.gamma, "alpha": settings.alpha})
        if self.options.small_object_gain is not None:
            self.record(
                "small_object_gain",
                {"gain": settings.small_gain, "threshold": settings.small_threshold, "measure": settings.small_measure},
            )

    def build_optimizer(self, model, name="auto", lr=0.001, momentum=0.9, decay=1e-5, iterations=1e5):
        """Ultralytics' optimizer; with ``llrd`` each of its groups is split by layer, layer i of n at
        ``lr * llrd^(n-1-i)``. Ultralytics' scheduler and warmup scale each group's ``initial_lr``, which
        the scheduler takes from these per-layer learning rates."""
        optimizer = super().build_optimizer(model, name, lr, momentum, decay, iterations)
        rate = self.options.llrd if self.options is not None else None
        if rate is None:
            return optimizer
        network = unwrap_model(model)
        network = getattr(network, "student_model", network)  # distillation: the student's layers
        layers = len(network.model)
        layer_of = {id(param): layer_index(param_name) for param_name, param in network.named_parameters()}
        layer_of = {key: value for key, value in layer_of.items() if value is not None}
        factors = layer_lr_factors(layers, rate)
        groups = split_by_layer(optimizer.param_groups, layer_of, factors)
        optimizer.param_groups.clear()
        for group in groups:
            optimizer.add_param_group(group)
        chose_itself = str(name).lower() == "auto"
        base_lr = self.args.lr0 if chose_itself else lr  # 'auto' picks (and stores) its own lr0
        info = {
            "rate": rate,
            "layers": layers,
            "optimizer": self.args.optimizer,
            "lr0": base_lr,
            "lr_by_layer": [base_lr * factor for factor in factors],
        }
        if chose_itself:
            info["warning"] = (
                f"optimizer 'auto' chose {self.args.optimizer} with lr0={self.args.lr0} itself; "
                "name an optimizer and lr0 to control the rates llrd decays"
            )
            LOGGER.warning(info["warning"])
        self.record("llrd", info)
        return optimizer

    def save_metrics(self, metrics: dict) -> None:
        if self.partial_epoch:  # no results.csv row, no database row for an epoch that did not finish
            self.results_row = None
            return
        super().save_metrics(metrics)
        row = {"epoch": self.epoch + 1, "time": round(time.time() - self.train_time_start, 3)}
        row.update({key: _plain(value) for key, value in metrics.items()})
        self.results_row = row
