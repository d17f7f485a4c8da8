"""The attribute schema of every toxic and stressor: one table read by the
scenario loader, the Hypothesis strategies and the stressors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_INT = 2**31 - 1  # Toxiproxy stores attributes as Go ints; stay portable across builds


@dataclass(frozen=True)
class Attribute:
    """The schema of one fault attribute: the one definition the scenario loader, the
    Hypothesis strategies and the stressors (:func:`pytest_rafael.faults.stress.
    normalize_attributes`) all read.

    ``minimum``/``maximum`` hold on every machine, so a catalog valid on a laptop is valid
    in CI. ``default`` is what a stressor uses when the attribute is left out; ``cap``
    names a bound known only when a stressor starts (``cpu_count``, or a field of
    :class:`~pytest_rafael.faults.stress.StressLimits`), which lowers ``maximum`` then.
    """

    kind: str  # "int" | "number" | "bool"
    minimum: float = 0
    maximum: float = MAX_INT
    required: bool = False
    unit: str = ""
    default: Any = None
    cap: str = ""

    def describe(self) -> str:
        if self.kind == "bool":
            return "expected true or false"
        noun = "integer" if self.kind == "int" else "number"
        if self.minimum == 0 and self.maximum == MAX_INT:
            text = f"expected a non-negative {noun}"
        else:
            article = "an" if noun == "integer" else "a"
            text = f"expected {article} {noun} from {_num(self.minimum)} to {_num(self.maximum)}"
        return f"{text} ({self.unit})" if self.unit else text


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# Attribute names and units follow Toxiproxy's toxics so that a scenario maps 1:1 onto its
# REST API (and the real Toxiproxy works as the backend).
TOXIC_ATTRIBUTES: dict[str, dict[str, Attribute]] = {
    "latency": {
        "latency": Attribute("int", required=True, unit="ms"),
        "jitter": Attribute("int", unit="ms"),
    },
    # rate 0 means "unlimited" in Toxiproxy: refuse it, it would be a silent no-op.
    "bandwidth": {"rate": Attribute("int", minimum=1, required=True, unit="KB/s")},
    "slow_close": {"delay": Attribute("int", required=True, unit="ms")},
    "timeout": {"timeout": Attribute("int", unit="ms, 0 holds the connection until removed")},
    "reset_peer": {"timeout": Attribute("int", unit="ms")},
    "slicer": {
        "average_size": Attribute("int", minimum=1, required=True, unit="bytes"),
        "size_variation": Attribute("int", unit="bytes, less than average_size"),
        "delay": Attribute("int", unit="microseconds"),
    },
    "limit_data": {"bytes": Attribute("int", required=True, unit="bytes")},
}

# Stressor attributes, with the defaults a stressor fills in and the caps it applies when
# it starts (cores <= cpu_count, the disk limits); the memory share against what is
# available is checked at start as well.
STRESS_ATTRIBUTES: dict[str, dict[str, Attribute]] = {
    "cpu": {
        "percent": Attribute(
            "number", minimum=1, maximum=100, unit="percent of each core", default=100
        ),
        "cores": Attribute(
            "int", minimum=1, maximum=4096, unit="cores", default=1, cap="cpu_count"
        ),
        "period_ms": Attribute(
            "number", minimum=1, maximum=1000, unit="ms of each busy/idle cycle", default=10
        ),
    },
    "memory": {"mb": Attribute("number", minimum=1, maximum=1_048_576, required=True, unit="MB")},
    "disk": {
        "mb": Attribute(
            "number",
            minimum=0.0625,
            maximum=1_048_576,
            required=True,
            unit="MB",
            cap="max_disk_mb",
        ),
        "block_kb": Attribute(
            "int", minimum=1, maximum=65_536, unit="KB", default=64, cap="max_block_kb"
        ),
        "fsync": Attribute("bool", default=True),
    },
}
