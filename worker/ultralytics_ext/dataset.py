"""The training dataset when a stage sets any of stagerun's data options (``thin_boxes``, on by default,
``copy_paste_rare``, ``sampling``): Ultralytics' ``YOLODataset`` with its affine step swapped for ours and
rare-class copy-paste inserted, reporting with every sample what augmentation removed and pasted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ultralytics.data.augment import Compose, RandomPerspective
from ultralytics.data.dataset import YOLODataset
from ultralytics.data.utils import get_split_fraction
from ultralytics.utils import colorstr

from shared.stage_kinds.training_options import CopyPasteRare, ThinBoxes
from worker.ultralytics_ext.augment import RareCopyPaste
from worker.ultralytics_ext.thin_boxes import BoxTally, CountingPerspective, ThinBoxPerspective

TALLY_KEY = "stagerun_tally"  # per-sample counts; the trainer takes it out of the batch before Ultralytics sees it


@dataclass(frozen=True)
class DataOptions:
    """What the dataset needs from a stage's options, with class names already resolved to ids."""

    thin_boxes: ThinBoxes | None = None
    copy_paste: CopyPasteRare | None = None
    copy_paste_class_ids: tuple[int, ...] = ()


def _walk(transforms: Compose, visit: Callable[[list, int], None], seen: set[int]) -> None:
    """Call ``visit(list, index)`` for every transform in ``transforms`` and in any nested ``Compose`` or
    ``pre_transform`` (Mosaic, MixUp, CutMix and CopyPaste each may hold one), each list once."""
    if id(transforms) in seen:
        return
    seen.add(id(transforms))
    for index in range(len(transforms.transforms)):
        visit(transforms.transforms, index)
        item = transforms.transforms[index]
        for nested in (item, getattr(item, "pre_transform", None)):
            if isinstance(nested, Compose):
                _walk(nested, visit, seen)


def replace_perspectives(
    transforms: Compose, replace: Callable[[RandomPerspective], RandomPerspective]
) -> list[RandomPerspective]:
    """Swap every plain ``RandomPerspective`` for ``replace(it)``, the same replacement wherever one instance
    is shared (Ultralytics reuses its affine step inside CopyPaste's pre-transform). Returns the replacements."""
    replaced: dict[int, RandomPerspective] = {}

    def visit(items: list, index: int) -> None:
        item = items[index]
        if isinstance(item, RandomPerspective) and not isinstance(item, CountingPerspective):
            if id(item) not in replaced:
                replaced[id(item)] = replace(item)
            items[index] = replaced[id(item)]

    _walk(transforms, visit, set())
    return list(replaced.values())


def contains(transform: Any, kind: type) -> bool:
    found: list[bool] = []
    probe = transform if isinstance(transform, Compose) else Compose([transform])
    _walk(probe, lambda items, index: found.append(isinstance(items[index], kind)), set())
    return any(found)


class StagerunDataset(YOLODataset):
    """``YOLODataset`` plus ``DataOptions``. Built by ``TrainingDataMixin.build_dataset`` for training only."""

    def __init__(self, *args: Any, data_options: DataOptions, **kwargs: Any):
        self.data_options = data_options
        self.tally = BoxTally()
        super().__init__(*args, **kwargs)

    def make_perspective(self, plain: RandomPerspective) -> RandomPerspective:
        thin = self.data_options.thin_boxes
        if thin is None:
            return CountingPerspective.replacing(plain, self.tally)
        options = {"min_box_px": thin.min_box_px, "max_aspect_ratio": thin.max_aspect_ratio}
        return ThinBoxPerspective.replacing(plain, self.tally, **options)

    def build_transforms(self, hyp: Any) -> Compose:
        transforms = super().build_transforms(hyp)
        if not self.augment:
            return transforms
        replace_perspectives(transforms, self.make_perspective)
        paste = self.data_options.copy_paste
        if paste is not None:
            after = next(
                (i + 1 for i, item in enumerate(transforms.transforms) if contains(item, RandomPerspective)), 0
            )
            transforms.insert(
                after,
                RareCopyPaste(
                    self,
                    list(self.data_options.copy_paste_class_ids),
                    paste.p,
                    paste.max_pastes,
                    paste.max_overlap,
                    self.tally,
                ),
            )
        return transforms

    def __getitem__(self, index: int) -> dict[str, Any]:
        self.tally.take()  # drop anything counted outside a sample (e.g. a plotting call)
        sample = super().__getitem__(index)
        sample[TALLY_KEY] = self.tally.take()
        return sample


def training_dataset(
    args: Any, img_path: str, batch: int | None, data: dict, stride: int, data_options: DataOptions
) -> StagerunDataset:
    """A ``StagerunDataset`` built with the arguments ``ultralytics.data.build_yolo_dataset`` passes for a
    detection training set (``args`` are the trainer's arguments, ``data`` its dataset dict)."""
    return StagerunDataset(
        img_path=img_path,
        imgsz=args.imgsz,
        batch_size=batch,
        augment=True,
        hyp=args,
        rect=args.rect,
        cache=args.cache or None,
        single_cls=args.single_cls or False,
        stride=stride,
        pad=0.0,
        prefix=colorstr("train: "),
        task=args.task,
        classes=args.classes,
        data=data,
        fraction=1.0 if data.get("complete") else get_split_fraction(args.fraction, "train"),
        data_options=data_options,
    )
