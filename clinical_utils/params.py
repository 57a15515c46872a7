"""Parameter checking, shared by every kind of experiment: one check (`need`) that names the parameter, its
value and what it must be; unknown names with the closest valid one; the settings table a notebook shows.
"""
from __future__ import annotations

import difflib
import re

import medmnist
import pandas as pd


DEVICES = ("auto", "cpu", "cuda", "mps")


def valid_device(device) -> bool:
    """A device name `train.resolve_device` understands: one of DEVICES, or 'cuda:N' for GPU number N."""
    return device in DEVICES or (isinstance(device, str) and re.fullmatch(r"cuda:\d+", device) is not None)


class ConfigError(ValueError):
    """A notebook parameter that is unknown or has a bad value; the message says what to change."""


def settings_table(values: dict) -> pd.DataFrame:
    """A config's values (dataclasses.asdict) as one row per setting, nested parts as `part.name`; the profile row
    names every parameter given another value than the profile's. Renders as an HTML table in notebooks."""
    rows = {}
    for name, value in values.items():
        if name == "changed":
            continue
        if name == "profile" and values["changed"]:
            value = f"{value}, except " + ", ".join(f"{n} (profile: {v!r})" for n, v in values["changed"].items())
        if isinstance(value, dict):
            rows.update({f"{name}.{k}": str(v) for k, v in value.items()})
        else:
            rows[name] = ", ".join(map(str, value)) if name in ("strategies", "samplers") else str(value)
    return pd.DataFrame({"value": rows}).rename_axis("setting")


def over_profile(base: dict, given: dict, where: str) -> tuple[dict, dict]:
    """The values to check: `base` (a profile's values for every parameter) with `given` on top, after the
    names in `given` are checked against base's; and the given values that differ from the profile's, as
    name -> the profile's value."""
    check_names(given, list(base), where)
    changed = {n: base[n] for n in sorted(given) if n != "profile" and given[n] != base[n]}
    return {**base, **given}, changed


def need(ok: bool, name: str, value, wanted: str) -> None:
    """The one parameter check: a ConfigError naming the parameter, its value and what it must be."""
    if not ok:
        raise ConfigError(f"parameter {name} = {value!r} is not valid: it must be {wanted}")


def is_int(x) -> bool:
    """A whole number, and not a bool."""
    return isinstance(x, int) and not isinstance(x, bool)


def check_names(given, allowed, where: str) -> None:
    """Unknown parameter names are an error naming each one, its closest valid name first, and the valid names."""
    unknown = [n for n in given if n not in allowed]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, allowed, n=3, cutoff=0.5)
            hints.append(f"{name!r}" + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""))
        raise ConfigError(f"unknown parameter(s) for {where}: {', '.join(hints)}; the parameters it takes are "
                          f"{sorted(allowed)}")


def check_rare_classes_exist(dataset: str, rare) -> int | None:
    """Class indices against the dataset's class count, known from medmnist.INFO without loading, so a bad index
    stops the batch before any kernel starts. Returns that count (None for a set medmnist does not know)."""
    if dataset not in medmnist.INFO:
        return None
    k = len(medmnist.INFO[dataset]["label"])
    need(rare is None or all(c < k for c in rare), "rare_classes", rare, f"class indices of {dataset}, 0..{k - 1}")
    return k
