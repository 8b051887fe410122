"""Where and when energy is drawn: the facility (PUE, heat reuse), grid intensity by region, an
intensity profile over time, the cleanest start for a one-time job, and serving carbon weighted by
traffic, one module each; assessment puts them together. The public names are here."""

from rightsize.footprint.assessment import WhereAndWhen, assess, attribution_lines, figure, footprint_lines, one_time_jobs
from rightsize.footprint.facility import DEFAULT_PUE, JOULES_PER_KWH, Facility, lifetime_joules
from rightsize.footprint.profiles import IntensityProfile, load_profile, load_traffic, zone
from rightsize.footprint.regions import parse_regions, region_comparison
from rightsize.footprint.shifting import SHIFT_STEP, Shift, best_start, parse_window, serving_intensity

__all__ = [
    "DEFAULT_PUE", "JOULES_PER_KWH", "SHIFT_STEP", "Facility", "IntensityProfile", "Shift", "WhereAndWhen", "assess",
    "attribution_lines", "best_start", "figure", "footprint_lines", "lifetime_joules", "load_profile", "load_traffic",
    "one_time_jobs", "parse_regions", "parse_window", "region_comparison", "serving_intensity", "zone",
]
