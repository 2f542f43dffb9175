"""Energy and CO2 of training through codecarbon's ``OfflineEmissionsTracker`` (no network, nothing written).

One tracker runs for a whole study; each round is a codecarbon *task* (``begin`` / ``end``), which costs a few
hundredths of a second. ``method`` says how the number was obtained, read from codecarbon's own hardware
objects: ``measured: ...`` where the machine exposes power counters (Intel RAPL, NVIDIA NVML), ``estimated:
...`` where codecarbon falls back on a model (e.g. TDP × CPU load on a VM without counters) — an estimate is
recorded as such, never passed off as a measurement. If codecarbon cannot run, readings are NaN with method
``unavailable: <reason>`` and the study goes on.
"""
from __future__ import annotations

import logging as std_logging
import math
from dataclasses import dataclass
from typing import Optional

#: codecarbon CPU modes that read real power counters.
_MEASURED_CPU = {"intel_rapl": "Intel RAPL", "intel_power_gadget": "Intel Power Gadget",
                 "apple_powermetrics": "Apple powermetrics", "amd_rapl": "AMD RAPL"}


@dataclass(frozen=True)
class EnergyReading:
    energy_kwh: float
    co2_g: float
    duration_s: float
    method: str


def _method(tracker) -> str:
    parts_measured, parts_estimated = [], []
    for hw in getattr(tracker, "_hardware", []):
        kind = type(hw).__name__
        if kind == "CPU":
            mode = str(getattr(hw, "_mode", "unknown"))
            (parts_measured if mode in _MEASURED_CPU else parts_estimated).append(
                f"CPU {_MEASURED_CPU.get(mode, mode + ' model')}")
        elif kind == "GPU":
            parts_measured.append("GPU NVML")
        elif kind == "RAM":
            parts_estimated.append("RAM size model")
    if parts_estimated and not parts_measured:
        return "estimated: codecarbon " + ", ".join(parts_estimated)
    if parts_estimated:
        return "measured: " + ", ".join(parts_measured) + "; estimated: " + ", ".join(parts_estimated)
    return "measured: " + ", ".join(parts_measured) if parts_measured else "estimated: codecarbon"


class EnergyMeter:
    """Energy and CO2 per round of one study: ``start()``, then ``begin(name)`` / ``end()`` per round, ``stop()``."""

    def __init__(self, country_iso_code: str = "USA", measure_power_secs: float = 15.0):
        self.country = country_iso_code
        self.measure_power_secs = measure_power_secs
        self._tracker = None
        self._error: Optional[str] = None
        self.method = "unavailable: not started"

    def start(self) -> None:
        try:
            from codecarbon import OfflineEmissionsTracker

            std_logging.getLogger("codecarbon").setLevel(std_logging.ERROR)
            self._tracker = OfflineEmissionsTracker(
                country_iso_code=self.country, save_to_file=False, log_level="error", tracking_mode="process",
                measure_power_secs=self.measure_power_secs)
            self._tracker.start()
            self.method = _method(self._tracker)
        except Exception as e:  # noqa: BLE001  (any failure of an optional meter must not stop a study)
            self._tracker, self._error = None, f"{type(e).__name__}: {e}".splitlines()[0][:160]
            self.method = f"unavailable: {self._error}"

    def begin(self, name: str) -> None:
        if self._tracker is not None:
            try:
                self._tracker.start_task(name)
            except Exception as e:  # noqa: BLE001
                self._error = f"{type(e).__name__}: {e}".splitlines()[0][:160]
                self._tracker, self.method = None, f"unavailable: {self._error}"

    def end(self) -> EnergyReading:
        if self._tracker is None:
            return EnergyReading(math.nan, math.nan, math.nan, self.method)
        try:
            d = self._tracker.stop_task()
            return EnergyReading(float(d.energy_consumed), 1000.0 * float(d.emissions), float(d.duration),
                                 self.method)
        except Exception as e:  # noqa: BLE001
            self._error = f"{type(e).__name__}: {e}".splitlines()[0][:160]
            self._tracker, self.method = None, f"unavailable: {self._error}"
            return EnergyReading(math.nan, math.nan, math.nan, self.method)

    def stop(self) -> None:
        if self._tracker is not None:
            try:
                self._tracker.stop()
            except Exception:  # noqa: BLE001
                pass
            self._tracker = None
