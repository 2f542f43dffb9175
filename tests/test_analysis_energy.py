"""EnergyMeter: a reading of a short busy loop is positive and finite, its CO2 is energy × the country's carbon
intensity in codecarbon's data, its method is named from codecarbon's hardware objects, nothing is written to
the working directory, and a missing codecarbon gives NaN readings instead of an error."""
import math
import sys
import time
import types

import pytest

from keras_sdd.analysis import energy


def busy(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(1000))


def test_reading_of_a_busy_loop(tmp_path, monkeypatch):
    pytest.importorskip("codecarbon")
    monkeypatch.chdir(tmp_path)
    meter = energy.EnergyMeter("USA")
    meter.start()
    assert meter.running
    busy(1.0)
    r = meter.stop()
    assert not meter.running
    assert math.isfinite(r.energy_kwh) and r.energy_kwh > 0
    assert 0.9 < r.duration_s < 30
    assert r.method.startswith(("measured: codecarbon", "estimated: codecarbon")) and "unavailable" not in r.method
    intensity = energy.carbon_intensity("USA")                # g/kWh from codecarbon's offline energy-mix data
    assert intensity == pytest.approx(369.473, rel=0.2)       # codecarbon 3.3's figure for the USA
    assert r.co2_g == pytest.approx(r.energy_kwh * intensity, rel=1e-9)
    # reusable: a second start/stop pair is a fresh measurement; sub-spans through begin/end
    meter.start()
    meter.begin("round_000")
    busy(0.3)
    task = meter.end()
    whole = meter.stop()
    assert 0 < task.energy_kwh <= whole.energy_kwh and task.duration_s <= whole.duration_s
    assert task.co2_g == pytest.approx(task.energy_kwh * intensity, rel=1e-9)
    assert list(tmp_path.iterdir()) == []                    # nothing written to the cwd


def test_method_is_read_from_the_hardware_objects():
    def hw(kind, **attrs):
        return type(kind, (), attrs)()

    rapl = [hw("CPU", _mode="intel_rapl", _tdp=125), hw("RAM", _force_ram_power=None)]
    assert energy.describe_method(rapl) == "measured: codecarbon CPU Intel RAPL; estimated: RAM size model"
    vm = [hw("RAM", _force_ram_power=None), hw("CPU", _mode="cpu_load", _tdp=8, _tracking_mode="process")]
    assert energy.describe_method(vm) == "estimated: codecarbon RAM size model, CPU load × TDP 8 W (process share)"
    assert energy.describe_method([hw("CPU", _mode="constant", _tdp=85, _is_generic_tdp=True)]) == \
        "estimated: codecarbon CPU constant share of TDP 85 W (generic)"
    assert energy.describe_method([hw("GPU")]).startswith("measured: codecarbon GPU")


def test_unknown_country_is_named_in_the_method():
    pytest.importorskip("codecarbon")
    meter = energy.EnergyMeter("XXX")
    meter.start()
    r = meter.stop()
    assert "world-average" in r.method and math.isfinite(r.energy_kwh)


def test_without_codecarbon_readings_are_nan(monkeypatch):
    monkeypatch.setitem(sys.modules, "codecarbon", None)     # import codecarbon -> ModuleNotFoundError
    meter = energy.EnergyMeter()
    meter.start()
    meter.begin("round_000")
    for r in (meter.end(), meter.stop()):
        assert math.isnan(r.energy_kwh) and math.isnan(r.co2_g) and math.isnan(r.duration_s)
        assert r.method.startswith("unavailable: ModuleNotFoundError")
    assert not meter.running


def test_a_failing_tracker_does_not_raise(monkeypatch):
    class Broken:
        def __init__(self, **kwargs):
            raise RuntimeError("no power source\nsecond line")

    monkeypatch.setitem(sys.modules, "codecarbon", types.SimpleNamespace(OfflineEmissionsTracker=Broken))
    meter = energy.EnergyMeter()
    meter.start()
    assert meter.stop().method == "unavailable: RuntimeError: no power source"
    assert math.isnan(energy.EnergyMeter().stop().energy_kwh)   # never started
    with pytest.raises(ValueError):
        energy.EnergyMeter(tracking_mode="cluster")
