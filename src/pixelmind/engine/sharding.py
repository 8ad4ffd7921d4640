"""Split a stream of inputs over the processes of ``torchrun`` / ``accelerate launch`` and merge their results.

Each process (rank) takes the items whose position ``i`` in the stream has ``i % world == rank``,
writes one JSON line per item carrying ``"index": i``, and rank 0 merges the per-rank files back
into stream order with a streaming k-way merge: nothing here holds more than one line per shard.

Example:
    >>> list(shard("abcdefg", rank=1, world=3))
    ['b', 'e']
"""

from __future__ import annotations

import heapq
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from pixelmind.errors import PixelmindError

T = TypeVar("T")


def dist_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from the launcher's environment; ``(0, 1, 0)`` outside one."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise PixelmindError(f"WORLD_SIZE / RANK / LOCAL_RANK must be integers ({err})") from None
    if world < 1 or not 0 <= rank < world:
        raise PixelmindError(f"RANK={rank} does not fit WORLD_SIZE={world}")
    return rank, world, local_rank


def shard(iterable: Iterable[T], rank: int, world: int) -> Iterator[T]:
    """The items at positions ``i % world == rank``, lazily (the stream is read once, never stored)."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} does not fit world size {world}")
    return islice(iterable, rank, None, world)


def _indexed_lines(path: Path) -> Iterator[tuple[int, str, dict[str, Any]]]:
    with path.open() as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                index = int(row["index"])
            except (ValueError, KeyError, TypeError) as err:
                raise PixelmindError(f"{path}:{number}: not a JSON line with an 'index' ({err})") from None
            yield index, line if line.endswith("\n") else line + "\n", row


def merge_shards(
    paths: Sequence[str | Path],
    out_path: str | Path,
    on_line: Callable[[str, dict[str, Any]], None] | None = None,
) -> int:
    """Merge per-rank JSON-lines files (each sorted by ``"index"``) into ``out_path`` in index order.

    A streaming k-way merge (:func:`heapq.merge` over the open files): memory holds one line per
    shard, whatever the number of lines. ``on_line(line, row)`` sees each merged line (e.g. to echo
    it to stdout). Returns the number of lines written; raises on a repeated or decreasing index.
    """
    last = None
    count = 0
    with Path(out_path).open("w") as out:
        streams = [_indexed_lines(Path(p)) for p in paths]
        for index, line, row in heapq.merge(*streams, key=lambda item: item[0]):
            if last is not None and index <= last:
                raise PixelmindError(
                    f"merge: index {index} after {last}; each shard must hold distinct, increasing indices"
                )
            last = index
            out.write(line)
            if on_line is not None:
                on_line(line, row)
            count += 1
    return count


@contextmanager
def process_group(world: int, timeout_s: float = 24 * 3600) -> Iterator[None]:
    """A gloo process group for ``world > 1`` (from the launcher's ``MASTER_ADDR``/``MASTER_PORT``), torn down after.

    The timeout is long on purpose: ranks that finish their shard early wait at the barrier for the
    slowest one, which on a huge folder can take hours. Outside a launcher (``world == 1``) it does nothing.
    """
    if world <= 1:
        yield
        return
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        raise PixelmindError(
            "this torch build has no torch.distributed gloo backend: run predict in one process"
        )
    if dist.is_initialized():
        yield
        return
    try:
        dist.init_process_group("gloo", init_method="env://", timeout=timedelta(seconds=timeout_s))
    except (ValueError, RuntimeError) as err:
        raise PixelmindError(
            f"could not join the process group (WORLD_SIZE={world}): {str(err).splitlines()[0]}"
        ) from None
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op outside a process group)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
