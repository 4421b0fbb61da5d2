"""The study's configuration: the variants compared and :class:`StudyConfig` (validated on creation)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..choices import DEFAULT_STUDY_VARIANTS as DEFAULT_VARIANTS
from ..choices import STUDY_VARIANTS as VARIANTS
from ..errors import ArgumentError

# The checks and the automatic choices (which need torch) load in the methods that use them, so that the command
# line reads the defaults of a bare StudyConfig without importing torch.

#: config fields that must match for ``resume`` to continue a run folder (compared after the automatic choices).
_SAME_ON_RESUME = ("data", "epochs", "batch_size", "lr", "weight_decay", "seed", "widths", "stem", "kernel_size",
                   "val_fraction", "test_fraction", "convert_budget", "finetune_epochs", "amp")

#: the largest network the study builds: a wider one is a typo (``--widths 100000``), not a small CNN.
MAX_PARAMS = 100_000_000


@dataclass
class StudyConfig:
    """Everything a study depends on (the ``sepconv study`` options).

    Attributes:
        data: data spec, see :func:`sepconv.study.data.load`.
        out: run folder.
        variants: names from :data:`VARIANTS`, in table order.
        epochs: training epochs per run (``None``: chosen from the data size,
            :func:`~sepconv.study.budget.auto_epochs`).
        batch_size: global batch size (split across processes under torchrun).
        lr, weight_decay: AdamW learning rate (cosine decay to 0) and weight decay.
        seeds: runs per variant, with seeds ``seed, seed + 1, ...``.
        seed: first seed.
        widths, stem, kernel_size: network shape (:func:`sepconv.models.small_cnn`).
        latency_reps: interleaved timing rounds per variant (median reported).
        convert_budget: MAC budget of the ``convert`` variant, relative to the standard network, in (0, 1].
        finetune_epochs: distillation epochs of the ``convert`` variant after the conversion (same learning
            rate, cosine schedule over these epochs; ``None``: a third of ``epochs``, at least one).
        val_fraction, test_fraction: data split (test only for sources without their own test split).
        plots: write the PNG plots.
        threads: torch CPU threads (``None``: chosen from the image size and the machine,
            :func:`~sepconv.study.budget.auto_threads`).
        device: ``'auto'`` (a GPU when torch sees one), ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.
        amp: train with mixed precision (bfloat16 autocast; float16 with loss scaling on GPUs without bfloat16).
        resume: continue the study already in ``out``; overwrite: delete it and start over.
    """

    data: str = "digits"
    out: str | Path = "runs/study"
    variants: Sequence[str] = DEFAULT_VARIANTS
    epochs: int | None = None
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
    finetune_epochs: int | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    plots: bool = True
    resume: bool = False
    overwrite: bool = False
    threads: int | None = None
    device: str = "auto"
    amp: bool = False

    def check(self) -> StudyConfig:
        """Validate every field; raises :class:`~sepconv.errors.ArgumentError` naming the bad one."""
        from .. import _checks
        from .budget import available_cores, resolve_device
        from .data import parse_spec

        parse_spec(self.data)
        for name in ("batch_size", "seeds", "stem", "kernel_size", "latency_reps"):
            _checks.positive_int(getattr(self, name), name)
        for name in ("epochs", "finetune_epochs"):
            if getattr(self, name) is not None:
                _checks.positive_int(getattr(self, name), name)
        _checks.number(self.seed, "seed", low=0, integer=True)
        _checks.number(self.lr, "lr", low=0, low_open=True)
        _checks.number(self.weight_decay, "weight_decay", low=0)
        self._check_variants()
        _checks.number(self.convert_budget, "convert_budget", low=0, high=1, low_open=True)
        if self.kernel_size % 2 == 0:
            raise ArgumentError(f"kernel_size must be odd (for 'same' padding), got {self.kernel_size}")
        if self.resume and self.overwrite:
            raise ArgumentError("resume and overwrite exclude each other: resume continues the run folder, "
                                "overwrite deletes it")
        if self.threads is not None:
            _checks.number(self.threads, "threads", low=1, high=available_cores(), integer=True)
        if self.device != "auto":
            resolve_device(self.device)
        _checks.bool_arg(self.amp, "amp")
        self.variants = tuple(self.variants)
        self.widths = tuple(_checks.positive_int(w, "widths") for w in self.widths)
        self._check_size()
        return self

    def _check_variants(self) -> None:
        if isinstance(self.variants, str) or not self.variants:
            raise ArgumentError(f"variants must be a non-empty list of names from {sorted(VARIANTS)}, "
                                f"got {self.variants!r}")
        for name in self.variants:
            if name not in VARIANTS:
                raise ArgumentError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
        if "convert" in self.variants and "standard" not in self.variants:
            raise ArgumentError("variant 'convert' starts from the trained 'standard' network: add 'standard' "
                                "to the variants")
        if len(set(self.variants)) != len(self.variants):
            raise ArgumentError(f"variants must not repeat, got {list(self.variants)}")

    def _check_size(self) -> None:
        """Refuse networks far beyond a small CNN before any memory is allocated (upper bound of the standard one)."""
        k2 = self.kernel_size ** 2
        channels, params = self.stem, self.stem * k2
        for width in self.widths:
            params += channels * width * k2 + width * width * k2
            channels = width
        if params > MAX_PARAMS:
            raise ArgumentError(f"widths={list(self.widths)}, stem={self.stem}, kernel_size={self.kernel_size} "
                                f"give a network of about {params:,} parameters; the study trains small CNNs "
                                f"(at most {MAX_PARAMS:,})")

    def resolved(self, n_train: int, image_shape: Sequence[int]) -> StudyConfig:
        """A copy with every automatic choice made: epochs, fine-tune epochs, threads and device.

        Example:
            >>> c = StudyConfig(device="cpu").check().resolved(1295, (1, 8, 8))
            >>> c.epochs, c.finetune_epochs, c.threads, c.device
            (15, 5, 1, 'cpu')
        """
        from .budget import auto_epochs, auto_finetune_epochs, auto_threads, resolve_device

        epochs = self.epochs or auto_epochs(n_train)
        device = resolve_device(self.device)
        return replace(self, epochs=epochs, finetune_epochs=self.finetune_epochs or auto_finetune_epochs(epochs),
                       threads=self.threads or auto_threads(image_shape, device), device=device)

    def automatic(self) -> list[str]:
        """The fields left to the automatic choice (``None``, or ``'auto'`` for the device)."""
        chosen = [name for name in ("epochs", "finetune_epochs", "threads") if getattr(self, name) is None]
        return chosen + (["device"] if self.device == "auto" else [])

    def as_dict(self) -> dict:
        d = asdict(self)
        d["out"], d["variants"], d["widths"] = str(self.out), list(self.variants), list(self.widths)
        return d
