"""Devices, mixed precision and distributed training.

CUDA when present (autocast to bfloat16 where the GPU supports it, else float16 with a
gradient scaler), else Apple MPS, else CPU. Multi-process training (one process per GPU, or
several CPU processes) is started by ``torchrun``, which sets RANK / WORLD_SIZE / LOCAL_RANK;
`init_distributed` reads them and joins the group (NCCL on CUDA, gloo on CPU).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pipeline.errors import ParameterError

log = logging.getLogger(__name__)

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str | None = "auto", *, local_rank: int = 0) -> torch.device:
    """The device to run on: ``"auto"`` prefers CUDA, then MPS, then CPU.

    ``local_rank`` picks the GPU of this process under torchrun. Asking for a device this
    machine lacks is a `ParameterError`.
    """
    name = name or "auto"
    if name not in DEVICE_CHOICES and not name.startswith("cuda:"):
        raise ParameterError(f"device must be one of {DEVICE_CHOICES} (or cuda:N), got {name!r}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError(f"device {name!r} asked for, but CUDA is not available on this machine")
    if name == "cuda":
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps" and not _mps_available():
        raise ParameterError("device 'mps' asked for, but Apple MPS is not available on this machine")
    return torch.device(name)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


@dataclass(frozen=True)
class Precision:
    """How to run the forward pass: autocast dtype (None: full float32) and whether to scale gradients."""

    dtype: torch.dtype | None
    use_scaler: bool

    @property
    def name(self) -> str:
        return "float32" if self.dtype is None else str(self.dtype).removeprefix("torch.")


def pick_precision(device: torch.device, mode: str = "auto") -> Precision:
    """Mixed precision for ``device``: ``"auto"`` is bf16 on CUDA GPUs that support it, else fp16
    with a gradient scaler on CUDA, else float32 (CPU and MPS, where autocast gains little).

    ``mode`` is ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``.
    """
    if mode not in ("auto", "fp32", "bf16", "fp16"):
        raise ParameterError(f"precision must be 'auto', 'fp32', 'bf16' or 'fp16', got {mode!r}")
    if mode == "fp32":
        return Precision(None, False)
    if device.type != "cuda":
        if mode == "auto":
            return Precision(None, False)
        if mode == "fp16":
            raise ParameterError(f"precision 'fp16' needs a CUDA device, got {device}")
        return Precision(torch.bfloat16, False)  # bf16 autocast works on CPU, no scaler needed
    if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
        return Precision(torch.bfloat16, False)
    return Precision(torch.float16, True)


@contextlib.contextmanager
def autocast(device: torch.device, precision: Precision) -> Iterator[None]:
    """Autocast context for the forward pass (a no-op in float32)."""
    if precision.dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=precision.dtype):
        yield


def make_scaler(device: torch.device, precision: Precision) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for float16 (it is a pass-through otherwise)."""
    return torch.amp.GradScaler(device.type, enabled=precision.use_scaler)


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a distributed run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and shows progress bars."""
        return self.rank == 0


def dist_env() -> DistInfo:
    """Read torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK); 0 of 1 when absent."""
    try:
        return DistInfo(rank=int(os.environ.get("RANK", 0)), world_size=int(os.environ.get("WORLD_SIZE", 1)),
                        local_rank=int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as exc:
        raise ParameterError(f"bad torchrun environment (RANK / WORLD_SIZE / LOCAL_RANK): {exc}") from exc


def init_distributed(device_name: str | None = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group when started by torchrun and pick this process's device.

    Returns the process's `DistInfo` and device. Without torchrun this just picks the device.
    """
    info = dist_env()
    device = pick_device(device_name, local_rank=info.local_rank)
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
        log.info("joined process group: rank %d of %d (%s, %s)", info.rank, info.world_size, backend, device)
    return info, device


def cleanup_distributed() -> None:
    """Leave the process group (if joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process (a no-op when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every process when ``flag`` is true on any (so all processes stop at the same step)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    box = torch.tensor([1.0 if flag else 0.0], device=device if device.type == "cuda" else "cpu")
    dist.all_reduce(box, op=dist.ReduceOp.MAX)
    return bool(box.item() > 0)


def broadcast_object(obj: object, src: int = 0) -> object:
    """Send a picklable object from rank ``src`` to every process (identity when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_arrays(array: torch.Tensor) -> torch.Tensor:
    """Concatenate each process's tensor (first dimension may differ) on every process."""
    if not (dist.is_available() and dist.is_initialized()):
        return array
    parts: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, array.cpu())
    return torch.cat([p for p in parts if isinstance(p, torch.Tensor)], dim=0)


def describe(device: torch.device, precision: Precision, info: DistInfo) -> dict[str, object]:
    """What the manifest records about where a run was trained."""
    out: dict[str, object] = {"type": device.type, "precision": precision.name, "world_size": info.world_size,
                              "torch": torch.__version__, "threads": torch.get_num_threads()}
    if device.type == "cuda":
        out["name"] = torch.cuda.get_device_name(device)
    return out
