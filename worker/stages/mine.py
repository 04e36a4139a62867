"""The mine stage: one validation-style inference pass over a split, every object matched and
given a kind, then the hard-example lists, stats, previews, error breakdown and the hard-example
dataset a following ``data: from_stage`` train stage uses."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from shared.class_weights import class_indices
from shared.datasets.files import split_images
from shared.stage_kinds.mine import KIND as MINE
from worker.mining.hard_dataset import build_hard_dataset
from worker.mining.matching import Thresholds
from worker.mining.report import class_file_name
from worker.stages.base import StageCancelled, StageRunner
from worker.tta import kinds_side_by_side


class MineRunner(StageRunner):
    kind = MINE

    def mining_data(self) -> tuple[Path, str]:
        """The data.yaml and split the inference pass reads; with ``max_images``, a list of the first ones."""
        context, spec = self.context, self.context.spec
        if spec.max_images is None:
            return context.data_yaml, spec.split
        images = split_images(context.dataset.splits[spec.split])[: spec.max_images]
        listing = context.stage_dir / "mined_images.txt"
        listing.write_text("".join(f"{p}\n" for p in images))
        data = {**yaml.safe_load(context.data_yaml.read_text()), "val": str(listing)}
        data_yaml = context.stage_dir / "mine_data.yaml"
        data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
        return data_yaml, "val"

    def run(self) -> dict:
        from worker.mining.inference import mine_split
        from worker.mining.preview import draw_preview

        context, spec, reporter = self.context, self.context.spec, self.context.reporter
        names = context.dataset.names
        thresholds = Thresholds(
            conf=spec.conf,
            iou=spec.iou,
            low_conf=spec.low_conf,
            min_conf=spec.min_conf,
            hard_negative_conf=spec.hard_negative_conf,
        )

        def before_image(done: int) -> None:
            if reporter.cancel_requested():
                raise StageCancelled(f"cancelled after mining {done} image(s)")

        weights = context.weights
        data_yaml, split = self.mining_data()
        val_args = {**self.ultralytics_args(), "data": str(data_yaml), "split": split, "augment": spec.augment}
        class_ids = None if spec.classes is None else class_indices(spec.classes, names, "classes")
        plain_stats = None
        if spec.augment:  # the same pass without TTA, for the side-by-side report
            plain_miner, _, _ = mine_split(
                weights,
                {**val_args, "augment": False},
                names,
                thresholds,
                spec.difficulty_reduction,
                class_ids,
                before_image,
            )
            plain_stats = plain_miner.stats(spec.min_difficulty)
        miner, breakdown, localization = mine_split(
            weights,
            val_args,
            names,
            thresholds,
            spec.difficulty_reduction,
            class_ids,
            before_image,
        )

        stage_dir = context.stage_dir
        hard = miner.hard_images(spec.min_difficulty)
        lists = {}
        used_names: set[str] = set()
        for class_id, images in miner.per_class_lists(spec.min_difficulty).items():
            file_name = class_file_name(names[class_id])
            if file_name in used_names:
                file_name = file_name.replace(".txt", f"_{class_id}.txt")
            used_names.add(file_name)
            (stage_dir / file_name).write_text("".join(f"{i.im_file}\n" for i in images))
            lists[names[class_id]] = context.relative(stage_dir / file_name)

        top = []
        for rank, image in enumerate(hard[: spec.preview], start=1):
            preview = draw_preview(image, stage_dir / "preview" / f"{rank:03d}_{Path(image.im_file).stem}.jpg")
            kinds = {kind: n for kind, n in image.kinds.items() if n and kind != "matched"}
            top.append(
                {
                    "rank": rank,
                    "image": context.shown(image.im_file),
                    "difficulty": image.difficulty,
                    "kinds": kinds,
                    "preview": context.relative(preview),
                }
            )

        negatives = [i for i in miner.images if i.has_hard_negative]
        dataset_root = stage_dir / "dataset"
        dataset_counts = build_hard_dataset(
            dataset_root,
            hard,
            negatives,
            split_images(context.dataset.splits["train"]),
            spec.replay,
            names,
            context.dataset.splits["val"],
        )
        stats = miner.stats(spec.min_difficulty)
        errors = breakdown.result(names)
        report = {
            "weights": context.shown(weights),
            "split": spec.split,
            "thresholds": {**thresholds.__dict__, "min_difficulty": spec.min_difficulty},
            "difficulty_reduction": spec.difficulty_reduction,
            "classes": [names[c] for c in sorted(miner.classes)],
            **stats,
            "dataset": dataset_counts,
            "error_breakdown": errors,
            "localization": localization.result(names),
        }
        if plain_stats is not None:
            report["tta"] = {
                **kinds_side_by_side(plain_stats["kinds"], stats["kinds"]),
                "hard_images": {"plain": plain_stats["hard_images"], "tta": stats["hard_images"]},
            }
        (stage_dir / "stats.json").write_text(json.dumps(report, indent=2))
        (stage_dir / "detailed.json").write_text(json.dumps(miner.detailed()))
        info = {"images": stats["images"], "hard_images": stats["hard_images"], "dataset": dataset_counts}
        if spec.split == "val" and dataset_counts["total"]:
            info["warning"] = "the hard-example dataset holds validation images; its val metrics are optimistic"
        reporter.record("mining", info)
        reporter.progress(1, None)
        return {
            "mined_weights": context.shown(weights),
            "split": spec.split,
            "images": stats["images"],
            "hard_images": stats["hard_images"],
            "kinds": stats["kinds"],
            **({"tta": report["tta"]} if plain_stats is not None else {}),
            "per_class": stats["per_class"],
            "top": top,
            "error_breakdown": {"mAP50": errors["mAP50"], "overall": errors["overall"]},
            "localization": report["localization"],
            "hard_example_lists": lists,
            "dataset": dataset_counts,
            "dataset_yaml": context.relative(dataset_root / "data.yaml"),
            "stats": context.relative(stage_dir / "stats.json"),
            "detailed": context.relative(stage_dir / "detailed.json"),
        }
