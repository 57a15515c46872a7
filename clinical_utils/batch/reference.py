"""The committed reference: where a batch computes (`runs_dir`), and how its records compare with the reference's
(identical, close, or different, with the largest difference of each metric)."""
from __future__ import annotations

from pathlib import Path

from ..records import read_json, record_paths, write_json_atomic


def runs_dir(profile: str) -> str:
    """Where a batch computes, relative to the repository root."""
    return f"results/runs/{profile}"


TIMINGS = ("train_seconds", "select_seconds", "seconds")  # differ on every run: not compared
RUN_FACTS = ("versions", "git_commit", "device", "threads")  # how, not what: reported, not compared


def comparable(record: dict):
    """A record less what differs on every run (timings) or says how rather than what (versions, commit, threads)."""
    strip = lambda d: {k: v for k, v in d.items() if k not in TIMINGS} if isinstance(d, dict) else d
    return {k: [strip(r) for r in v] if k == "rounds" else strip(v) for k, v in record.items()
            if k not in RUN_FACTS and k not in TIMINGS and k != "history"}


CLOSE = 1e-4  # a metric within this of the reference's is reproduced: AUCs move by ~3e-5 across CPU kinds


def _within(a, b) -> bool:
    """a == b up to CLOSE in every number (NaN equals NaN), recursively through dicts and lists."""
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_within(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_within(x, y) for x, y in zip(a, b))
    if number(a) and number(b):
        return a == b or abs(a - b) <= CLOSE or (a != a and b != b)
    return a == b


def close(a: dict, b: dict) -> bool:
    """Two records that pick the same images each round, in any order (the labeled set is kept sorted, so tied
    picks listed in another order train the same model), and whose every metric is within CLOSE."""
    a, b = comparable(a), comparable(b)
    for record in (a, b):
        for r in record.get("rounds", []):
            if isinstance(r.get("selected"), list):
                r["selected"] = sorted(r["selected"])
    return _within(a, b)


def _largest_differences(a: dict, b: dict) -> dict:
    """Per numeric round metric, the largest absolute difference between two records' rounds."""
    out = {}
    for ra, rb in zip(a.get("rounds", []), b.get("rounds", [])):
        for key, va in ra.items():
            vb = rb.get(key)
            if key in TIMINGS or isinstance(va, bool) or not isinstance(va, (int, float)) or not isinstance(
                    vb, (int, float)):
                continue
            if va != vb and not (va != va and vb != vb):  # NaN equals NaN here
                out[key] = max(out.get(key, 0.0), abs(va - vb))
    return out


def compare_with_reference(root: Path, profile: str) -> dict:
    """How the run in results/runs/<profile> compares with the reference results/<profile>, per experiment:
    records in both, how many are identical (timings, versions, commit and thread count aside), which of the others
    are `close` and which differ, and the largest difference of each metric. Written to
    results/runs/<profile>/reproduction.json."""
    run, reference = root / runs_dir(profile), root / "results" / profile
    report_ = {"profile": profile, "reference": str(reference.relative_to(root)), "run": runs_dir(profile),
               "experiments": {}}
    for path in record_paths(run, phase1=None):
        relative = path.relative_to(run)
        entry = report_["experiments"].setdefault(relative.parts[0], {
            "records": 0, "identical": 0, "close": [], "different": [], "not in reference": [],
            "largest differences": {}})
        entry["records"] += 1
        ours, theirs = read_json(path), (read_json(reference / relative) if (reference / relative).exists()
                                         else None)
        if theirs is None:
            entry["not in reference"].append(str(relative))
        elif comparable(ours) == comparable(theirs):
            entry["identical"] += 1
        else:
            entry["close" if close(ours, theirs) else "different"].append(str(relative))
            for key, value in _largest_differences(ours, theirs).items():
                entry["largest differences"][key] = max(entry["largest differences"].get(key, 0.0), value)
    write_json_atomic(run / "reproduction.json", report_)
    return report_


def reproduction_lines(report_: dict) -> list[str]:
    lines = [f"against the reference {report_['reference']}/:"]
    for name, e in report_["experiments"].items():
        line = f"  {name}: {e['identical']} of {e['records']} records identical"
        if e["close"]:
            line += f", {len(e['close'])} close (the same picks, every metric within {CLOSE:g})"
        if e["different"]:
            line += f", {len(e['different'])} different"
        if e["not in reference"]:
            line += f", {len(e['not in reference'])} not in the reference"
        if e["largest differences"]:
            biggest = sorted(e["largest differences"].items(), key=lambda kv: -kv[1])[:4]
            line += "; largest differences: " + ", ".join(f"{k} {v:.3g}" for k, v in biggest)
        lines.append(line)
    lines.append(f"  details: {report_['run']}/reproduction.json")
    return lines
