"""The study's configuration: the variants compared and :class:`StudyConfig` (validated on creation)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import _checks
from ..errors import ArgumentError
from .data import parse_spec

#: name -> (conv kind, placement, description). ``convert`` starts from the trained ``standard`` run of each seed.
VARIANTS: dict[str, tuple[str, str, str]] = {
    "standard": ("standard", "all", "every conv standard"),
    "spatial": ("spatial", "all", "every stage conv spatially separable (k x 1 then 1 x k)"),
    "spatial-early": ("spatial", "early", "spatially separable in the first half of the stage convs"),
    "spatial-late": ("spatial", "late", "spatially separable in the second half of the stage convs"),
    "depthwise": ("depthwise", "all", "every stage conv depthwise separable (depthwise then 1x1)"),
    "depthwise-early": ("depthwise", "early", "depthwise separable in the first half of the stage convs"),
    "depthwise-late": ("depthwise", "late", "depthwise separable in the second half of the stage convs"),
    "convert": ("convert", "all", "the trained standard net converted by sepconv.convert(method='depthwise', "
                "budget=convert_budget), then fine-tuned with knowledge distillation from the original"),
}


#: what ``sepconv study`` and ``make demo`` run unless told otherwise.
DEFAULT_VARIANTS = ("standard", "spatial", "depthwise", "depthwise-early", "depthwise-late", "convert")


#: config fields that must match for ``resume`` to continue a run folder.
_SAME_ON_RESUME = ("data", "epochs", "batch_size", "lr", "weight_decay", "seed", "widths", "stem", "kernel_size",
                   "val_fraction", "test_fraction", "convert_budget", "finetune_epochs")


@dataclass
class StudyConfig:
    """Everything a study depends on (the ``sepconv study`` options).

    Attributes:
        data: data spec, see :func:`sepconv.data.load`.
        out: run folder.
        variants: names from :data:`VARIANTS`, in table order.
        epochs: training epochs per run.
        batch_size: global batch size (split across processes under torchrun).
        lr, weight_decay: AdamW learning rate (cosine decay to 0) and weight decay.
        seeds: runs per variant, with seeds ``seed, seed + 1, ...``.
        seed: first seed.
        widths, stem, kernel_size: network shape (:func:`sepconv.models.small_cnn`).
        latency_reps: interleaved timing rounds per variant (median reported).
        convert_budget: MAC budget of the ``convert`` variant, relative to the standard network, in (0, 1].
        finetune_epochs: distillation epochs of the ``convert`` variant after the conversion (same learning
            rate and cosine schedule as the training, over these epochs).
        val_fraction, test_fraction: data split (test only for sources without their own test split).
        plots: write the PNG plots.
        threads: torch CPU threads (``None``: torch's default). One by default: on small images each op is
            tiny and intra-op threads only add synchronisation (on this 2-core machine under load, one
            training step of the default network took 21 ms with 1 thread and 606 ms with 2).
        resume: continue the study already in ``out``; overwrite: delete it and start over.
    """

    data: str = "digits"
    out: str | Path = "runs/study"
    variants: Sequence[str] = DEFAULT_VARIANTS
    epochs: int = 15
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seeds: int = 3
    seed: int = 0
    widths: Sequence[int] = (32, 64)
    stem: int = 16
    kernel_size: int = 3
    latency_reps: int = 15
    convert_budget: float = 0.2
    finetune_epochs: int = 5
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    plots: bool = True
    resume: bool = False
    overwrite: bool = False
    threads: int | None = 1

    def check(self) -> StudyConfig:
        """Validate every field; raises :class:`~sepconv.errors.ArgumentError` naming the bad one."""
        parse_spec(self.data)
        for name in ("epochs", "batch_size", "seeds", "stem", "kernel_size", "latency_reps", "finetune_epochs"):
            _checks.positive_int(getattr(self, name), name)
        _checks.number(self.seed, "seed", low=0, integer=True)
        _checks.number(self.lr, "lr", low=0, low_open=True)
        _checks.number(self.weight_decay, "weight_decay", low=0)
        if isinstance(self.variants, str) or not self.variants:
            raise ArgumentError(f"variants must be a non-empty list of names from {sorted(VARIANTS)}, "
                                f"got {self.variants!r}")
        for name in self.variants:
            if name not in VARIANTS:
                raise ArgumentError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
        _checks.number(self.convert_budget, "convert_budget", low=0, high=1, low_open=True)
        if "convert" in self.variants and "standard" not in self.variants:
            raise ArgumentError("variant 'convert' starts from the trained 'standard' network: add 'standard' "
                                "to the variants")
        if len(set(self.variants)) != len(self.variants):
            raise ArgumentError(f"variants must not repeat, got {list(self.variants)}")
        if self.kernel_size % 2 == 0:
            raise ArgumentError(f"kernel_size must be odd (for 'same' padding), got {self.kernel_size}")
        if self.resume and self.overwrite:
            raise ArgumentError("resume and overwrite exclude each other: resume continues the run folder, "
                                "overwrite deletes it")
        if self.threads is not None:
            _checks.positive_int(self.threads, "threads")
        self.variants = tuple(self.variants)
        self.widths = tuple(_checks.positive_int(w, "widths") for w in self.widths)
        return self

    def as_dict(self) -> dict:
        d = asdict(self)
        d["out"], d["variants"], d["widths"] = str(self.out), list(self.variants), list(self.widths)
        return d
