"""Where and when: the facility, regions, intensity profiles (three formats, time zones, DST), the
cleanest start of a one-time job, and serving carbon weighted by traffic, checked by hand."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from rightsize import carbon
from rightsize import footprint as F
from rightsize.errors import RightsizeError

UTC = timezone.utc
KWH = F.JOULES_PER_KWH


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def hour_of_day(tmp_path, values, name="hours.csv"):
    return write(tmp_path, name, "hour,g_per_kwh\n" + "".join(f"{h},{v}\n" for h, v in enumerate(values)))


# ------------------------------------------------------------------------------------ facility, regions


def test_facility_pue_1_1_with_30_percent_heat_reuse_by_hand():
    e = F.Facility(pue=1.1, heat_reuse=0.3).energy(2 * KWH)
    assert e["it_kwh"] == pytest.approx(2.0) and e["facility_kwh"] == pytest.approx(2.2)
    assert e["reused_heat_kwh"] == pytest.approx(0.66)
    assert e["ere"] == pytest.approx((2.2 - 0.66) / 2.0) == pytest.approx(0.77)
    assert F.Facility(pue=1.1, heat_reuse=0.3).grams(2 * KWH, 100.0) == pytest.approx(220.0)  # reuse not credited


@pytest.mark.parametrize("kwargs, fragment", [
    ({"heat_reuse": 1.0}, "--heat-reuse 1.0"), ({"heat_reuse": -0.1}, "--heat-reuse -0.1"),
    ({"pue": 0.9}, "--pue 0.9"),
])
def test_facility_refuses_impossible_values(kwargs, fragment):
    with pytest.raises(RightsizeError, match=fragment):
        F.Facility(**kwargs)


def test_three_regions_side_by_side_cleanest_first():
    regions = F.parse_regions("pl,fr,de,fr")
    assert [g.region for g in regions] == ["pl", "fr", "de"]  # each once, in the order given
    rows = F.region_comparison({"chosen": 1 * KWH, "largest": 10 * KWH}, regions, F.Facility(pue=1.2))
    assert [r["region"] for r in rows] == sorted(["pl", "fr", "de"], key=lambda c: carbon.intensity(c).g_per_kwh)
    fr = next(r for r in rows if r["region"] == "fr")
    g = carbon.intensity("fr").g_per_kwh
    assert fr["grams"] == {"chosen": pytest.approx(1.2 * g), "largest": pytest.approx(12 * g)}
    assert len(F.parse_regions("all")) == len(carbon.regions())


def test_an_unknown_region_in_the_list_is_named():
    with pytest.raises(RightsizeError, match="--regions: 'xx' is not an ISO 3166 country code"):
        F.parse_regions("de,xx")


# ------------------------------------------------------------------------------------ profiles


def test_a_timestamped_series_with_offsets_is_read_in_utc(tmp_path):
    path = write(tmp_path, "series.csv", "timestamp,g_per_kwh\n2026-12-03T01:00:00+01:00,300\n"
                 "2026-12-03T00:30:00Z,100\n2026-12-03T01:00:00Z,200\n")
    profile = F.load_profile(path)
    assert profile.kind == "series" and profile.starts[0] == datetime(2026, 12, 3, 0, 0, tzinfo=UTC)
    assert profile.end == datetime(2026, 12, 3, 1, 30, tzinfo=UTC)  # the last value holds for the median step
    start = datetime(2026, 12, 3, 0, 15, tzinfo=UTC)
    assert profile.mean(start, start + timedelta(minutes=30)) == pytest.approx((300 * 15 + 100 * 15) / 30)


def test_an_hour_of_day_profile_follows_the_local_clock_through_a_dst_day(tmp_path):
    berlin = F.zone("Europe/Berlin")
    profile = F.load_profile(hour_of_day(tmp_path, [10 * h for h in range(24)]), tz=berlin)
    # 2026-03-29: clocks go from 02:00 to 03:00 in Berlin. Three real hours from local midnight
    # cover the local hours 00, 01 and 03.
    start = datetime(2026, 3, 29, 0, 0, tzinfo=berlin).astimezone(UTC)
    assert profile.mean(start, start + timedelta(hours=3)) == pytest.approx((0 + 10 + 30) / 3)
    # 2026-10-25: 02:00-03:00 happens twice; four real hours cover 00, 01, 02, 02.
    autumn = datetime(2026, 10, 25, 0, 0, tzinfo=berlin).astimezone(UTC)
    assert profile.mean(autumn, autumn + timedelta(hours=4)) == pytest.approx((0 + 10 + 20 + 20) / 4)


def test_the_carbon_aware_sdk_emissions_json_and_its_forecast_form(tmp_path):
    data = [{"location": "westeurope", "time": f"2026-12-03T0{h}:00:00+00:00", "rating": 100 + 10 * h,
             "duration": "01:00:00"} for h in range(3)]
    plain = F.load_profile(write(tmp_path, "e.json", json.dumps(data)))
    forecast = F.load_profile(write(tmp_path, "f.json", json.dumps([{"generatedAt": "x", "forecastData": data}])))
    for p in (plain, forecast):
        assert p.values == (100.0, 110.0, 120.0) and p.at(datetime(2026, 12, 3, 1, 30, tzinfo=UTC)) == 110.0
    data[1]["location"] = "northeurope"
    with pytest.raises(RightsizeError, match="2 locations"):
        F.load_profile(write(tmp_path, "g.json", json.dumps(data)))


@pytest.mark.parametrize("name, text, fragment", [
    ("empty.csv", "timestamp,g_per_kwh\n", "no rows after the header"),
    ("none.csv", "", "empty file"),
    ("back.csv", "timestamp,g_per_kwh\n2026-12-03T02:00Z,1\n2026-12-03T01:00Z,2\n", "timestamps must increase"),
    ("neg.csv", "timestamp,g_per_kwh\n2026-12-03T02:00Z,-5\n", "intensity '-5' is negative"),
    ("naive.csv", "timestamp,g_per_kwh\n2026-12-03T02:00,5\n", "has no UTC offset"),
    ("other.csv", "a,b\n1,2\n", "not a known profile format"),
    ("hours.csv", "hour,g_per_kwh\n0,1\n1,2\n", "needs all 24 hours; missing 2"),
    ("x.json", "{\"a\": 1}", "not a known profile format"),
])
def test_bad_profiles_are_one_line_naming_the_problem(tmp_path, name, text, fragment):
    with pytest.raises(RightsizeError, match=fragment) as caught:
        F.load_profile(write(tmp_path, name, text))
    assert "\n" not in str(caught.value) and name in str(caught.value)


# ------------------------------------------------------------------------------------ when


def _dirty_with_a_clean_night(tmp_path):
    values = [400.0] * 24
    for h in (2, 3, 4, 5):
        values[h] = 100.0
    return F.load_profile(hour_of_day(tmp_path, values))


def test_a_2_kwh_fine_tune_shifted_to_the_clean_night_by_hand(tmp_path):
    profile = _dirty_with_a_clean_night(tmp_path)
    window = F.parse_window("2026-12-03T00:00Z/2026-12-03T23:00Z")
    shift = F.best_start(profile, "finetune", 2 * KWH, 2 * 3600, window, F.Facility(pue=1.2))
    # Now (00:00): two hours at 400 g/kWh; best: 02:00, two hours at 100. 2 kWh x 1.2 PUE.
    assert shift.now_grams == pytest.approx(2 * 1.2 * 400) and shift.best_grams == pytest.approx(2 * 1.2 * 100)
    assert shift.best_start == datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
    assert shift.saved_grams == pytest.approx(720.0) and shift.to_dict()["saved_percent"] == pytest.approx(75.0)


def test_a_window_shorter_than_the_job_still_chooses_a_start_within_it(tmp_path):
    profile = _dirty_with_a_clean_night(tmp_path)
    window = F.parse_window("2026-12-03T01:00Z/2026-12-03T01:30Z")
    shift = F.best_start(profile, "search", KWH, 3 * 3600, window, F.Facility())
    assert shift.best_start == datetime(2026, 12, 3, 1, 30, tzinfo=UTC)  # the latest start reaches most clean hours
    assert shift.best_grams == pytest.approx(1.2 * (400 * 0.5 + 100 * 2.5) / 3)


def test_a_job_longer_than_a_series_profile_is_refused_or_fits_where_it_can(tmp_path):
    rows = "".join(f"2026-12-03T{h:02d}:00Z,{100 if h >= 4 else 300}\n" for h in range(8))
    profile = F.load_profile(write(tmp_path, "s.csv", "timestamp,g_per_kwh\n" + rows))
    window = F.parse_window("2026-12-03T00:00Z/2026-12-03T06:00Z")
    shift = F.best_start(profile, "fit", KWH, 4 * 3600, window, F.Facility())
    assert shift.best_start == datetime(2026, 12, 3, 4, 0, tzinfo=UTC)  # the last start where 4 h fit
    with pytest.raises(RightsizeError, match="does not fit in the profile"):
        F.best_start(profile, "fit", KWH, 10 * 3600, window, F.Facility())


def test_serving_carbon_is_weighted_by_traffic(tmp_path):
    profile = _dirty_with_a_clean_night(tmp_path)
    assert F.serving_intensity(profile, None, UTC) == pytest.approx((20 * 400 + 4 * 100) / 24)
    night_only = [1.0 if h in (2, 3) else 0.0 for h in range(24)]
    assert F.serving_intensity(profile, night_only, UTC) == pytest.approx(100.0)
    traffic = F.load_traffic(write(tmp_path, "t.csv", "hour,weight\n" + "".join(f"{h},{w}\n" for h, w in
                                                                                 enumerate(night_only))))
    assert traffic == night_only


def test_bad_windows_and_zones_are_one_line():
    with pytest.raises(RightsizeError, match="write START/END"):
        F.parse_window("2026-12-03T00:00Z")
    with pytest.raises(RightsizeError, match="the end comes before the start"):
        F.parse_window("2026-12-03T05:00Z/2026-12-03T01:00Z")
    with pytest.raises(RightsizeError, match="not an IANA time zone"):
        F.zone("Mars/Olympus")
