"""Energy and CO2 of training through codecarbon's ``OfflineEmissionsTracker`` (no network, no file written).

Why: the papers weigh pruning schedules by their CO2 as well as their FLOPs. Usage, once per round::

    meter = EnergyMeter("USA")
    meter.start(); train(); reading = meter.stop()      # EnergyReading(energy_kwh, co2_g, duration_s, method)

or one ``start()`` for a whole study with ``begin(name)`` / ``end()`` around each round (codecarbon tasks), then
``stop()`` for the whole span. CO2 is energy × the country's carbon intensity in codecarbon's offline data.

``method`` says how the energy was obtained, read from codecarbon's own hardware objects (never from its log
text): ``measured: ...`` where the machine exposes power counters (Intel RAPL, Windows EMI, Apple powermetrics,
NVIDIA/AMD GPU counters), ``estimated: ...`` where codecarbon falls back on a model (CPU load × the CPU's TDP from
its registry, or a constant share of it; RAM always from a size model) — an estimate is recorded as such, never
passed off as a measurement. Where codecarbon cannot run, readings are NaN with ``unavailable: <reason>`` and the
study goes on.

Cost: codecarbon's first tracker in a process loads its CPU/TDP registry (about 2 s on a small VM); later ones
start in a few hundredths of a second; ``stop()`` takes milliseconds. While running, codecarbon samples the CPU
load every second and integrates energy every ``measure_power_secs`` in background threads (and once more at
stop, so short spans are complete). ``tracking_mode='process'`` attributes to this process (and its children)
its share of the CPU, which is what a study on a shared machine should be charged; 'machine' charges everything.
"""
from __future__ import annotations

import logging as std_logging
import math
import tempfile
from dataclasses import dataclass
from typing import Iterable, Optional

#: codecarbon CPU modes that read power counters, and how to name them.
_CPU_COUNTERS = {"intel_rapl": "Intel RAPL", "intel_power_gadget": "Intel Power Gadget",
                 "windows_emi": "Windows EMI (RAPL)", "apple_powermetrics": "Apple powermetrics"}


@dataclass(frozen=True)
class EnergyReading:
    """Energy (kWh), CO2 (grams), duration (seconds) of one measured span, and how they were obtained."""

    energy_kwh: float
    co2_g: float
    duration_s: float
    method: str


def _nan(method: str) -> EnergyReading:
    return EnergyReading(math.nan, math.nan, math.nan, method)


def _reason(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".splitlines()[0][:160]


def carbon_intensity(country_iso_code: str) -> Optional[float]:
    """The grid carbon intensity (g CO2 / kWh) codecarbon's offline data gives the country; None when it has none
    (codecarbon then uses its world average) or codecarbon is missing."""
    try:
        from codecarbon.input import DataSource

        entry = DataSource().get_global_energy_mix_data().get(country_iso_code)
        return None if entry is None else float(entry["carbon_intensity"])
    except Exception:  # noqa: BLE001
        return None


def describe_method(hardware: Iterable) -> str:
    """How codecarbon obtains energy on this machine, from its hardware objects (``tracker._hardware``)."""
    measured, estimated = [], []
    for hw in hardware:
        kind = type(hw).__name__
        if kind == "CPU":
            mode = str(getattr(hw, "_mode", "unknown"))
            tdp = getattr(hw, "_tdp", None)
            tdp_text = f"TDP {tdp} W" + (" (generic)" if getattr(hw, "_is_generic_tdp", False) else "")
            if mode in _CPU_COUNTERS:
                measured.append(f"CPU {_CPU_COUNTERS[mode]}")
            elif mode == "cpu_load":
                estimated.append(f"CPU load × {tdp_text} ({getattr(hw, '_tracking_mode', 'machine')} share)")
            elif mode == "constant":
                estimated.append(f"CPU constant share of {tdp_text}")
            else:
                estimated.append(f"CPU {mode} model")
        elif kind == "GPU":
            measured.append("GPU power counters (NVML / AMD SMI)")
        elif kind == "AppleSiliconChip":
            measured.append(f"{getattr(hw, 'chip_part', 'Apple chip')} via powermetrics")
        elif kind == "RAM":
            forced = getattr(hw, "_force_ram_power", None)
            estimated.append(f"RAM fixed {forced} W" if forced is not None else "RAM size model")
        else:
            estimated.append(f"{kind} model")
    parts = []
    if measured:
        parts.append("measured: codecarbon " + ", ".join(measured))
    if estimated:
        parts.append(("estimated: " if measured else "estimated: codecarbon ") + ", ".join(estimated))
    return "; ".join(parts) if parts else "estimated: codecarbon (no hardware detected)"


class EnergyMeter:
    """Energy and CO2 of spans of this process's work: ``start()`` / ``stop() -> EnergyReading``, reusable (each
    ``start`` makes a fresh codecarbon tracker); optionally ``begin(name)`` / ``end()`` sub-spans in between.

    ``country_iso_code``: the 3-letter code whose grid carbon intensity converts energy to CO2.
    """

    def __init__(self, country_iso_code: str = "USA", measure_power_secs: float = 15.0,
                 tracking_mode: str = "process"):
        if tracking_mode not in ("process", "machine"):
            raise ValueError(f"tracking_mode must be 'process' or 'machine', got {tracking_mode!r}")
        self.country = country_iso_code
        self.measure_power_secs = float(measure_power_secs)
        self.tracking_mode = tracking_mode
        self.method = "unavailable: not started"
        self._tracker = None
        self._failed = False

    @property
    def running(self) -> bool:
        return self._tracker is not None

    def _fail(self, e: BaseException) -> None:
        self._tracker, self._failed, self.method = None, True, f"unavailable: {_reason(e)}"

    def start(self) -> None:
        """Starts measuring (a running measurement is discarded first). Never raises: on failure the meter is
        ``unavailable`` and its readings NaN."""
        if self._tracker is not None:
            self._discard()
        self._failed = False
        try:
            from codecarbon import OfflineEmissionsTracker

            std_logging.getLogger("codecarbon").setLevel(std_logging.ERROR)  # before init: it logs at init
            tracker = OfflineEmissionsTracker(
                country_iso_code=self.country, measure_power_secs=self.measure_power_secs,
                tracking_mode=self.tracking_mode, save_to_file=False, save_to_logger=False,
                output_dir=tempfile.gettempdir(),  # nothing is written; anything that would be is not in the cwd
                allow_multiple_runs=True,  # else a second study (or test) on the machine silently measures nothing
                log_level="error", project_name="keras_sdd")
            tracker.start()
            if getattr(tracker, "_start_time", None) is None:
                raise RuntimeError("codecarbon did not start")
            self._tracker = tracker
            self.method = describe_method(getattr(tracker, "_hardware", []))
            if carbon_intensity(self.country) is None:
                self.method += f"; CO2 at codecarbon's world-average intensity (no data for {self.country!r})"
        except Exception as e:  # noqa: BLE001  (an optional meter must never stop a study)
            self._fail(e)

    def stop(self) -> EnergyReading:
        """Ends the measurement; its reading since ``start()`` (NaN readings when unavailable or not started)."""
        tracker, self._tracker = self._tracker, None
        if tracker is None:
            return _nan(self.method)
        try:
            tracker.stop()
            data = tracker.final_emissions_data
            return EnergyReading(float(data.energy_consumed), 1000.0 * float(data.emissions), float(data.duration),
                                 self.method)
        except Exception as e:  # noqa: BLE001
            self._fail(e)
            return _nan(self.method)

    def begin(self, name: str) -> None:
        """Starts a named sub-span (a codecarbon task); starts the meter first if it is not running (and has not
        failed)."""
        if self._tracker is None and not self._failed:
            self.start()
        if self._tracker is not None:
            try:
                self._tracker.start_task(name)
            except Exception as e:  # noqa: BLE001
                self._discard()
                self._fail(e)

    def end(self) -> EnergyReading:
        """Ends the current sub-span; its reading (NaN readings when unavailable)."""
        if self._tracker is None:
            return _nan(self.method)
        try:
            d = self._tracker.stop_task()
            return EnergyReading(float(d.energy_consumed), 1000.0 * float(d.emissions), float(d.duration),
                                 self.method)
        except Exception as e:  # noqa: BLE001
            self._discard()
            self._fail(e)
            return _nan(self.method)

    def _discard(self) -> None:
        tracker, self._tracker = self._tracker, None
        try:
            if tracker is not None:
                tracker.stop()
        except Exception:  # noqa: BLE001
            pass


__all__ = ["EnergyMeter", "EnergyReading", "carbon_intensity", "describe_method"]
