"""Study pipelines: one YAML file names a study's inputs and runs every stage in order.

``run_pipeline("pipelines/demo.yaml")`` runs gate -> chimerism -> cohort -> analysis
(the stages the file lists), each by calling the library functions that the
command line uses.  A stage whose input files (by SHA-256) and settings have not
changed since its last complete run is skipped; the state lives in
``<out>/.pipeline.json``, written atomically after each stage.  Each stage builds
its outputs in a temporary folder and moves them into place only when it
completes, so a stage that fails leaves the earlier results as they were and the
run stops there with an :class:`~immunomon.ImmunomonError`.  The gate stage is
the exception: it writes into ``<out>/gate`` file by file through the batch
registry (``immunomon.batch``), so a run that was killed resumes where it
stopped instead of gating every file again.  See
``docs/pipelines.md`` for the file format.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .atomic import folder_lock, replace_path, temporary_dir, write_text
from .errors import ChimerismError, ImmunomonError
from .yamlio import line_of
from .yamlio import load as load_yaml

__all__ = ["PipelineError", "Study", "StageResult", "PipelineRun", "STAGES", "load_study",
           "parse_study", "run_pipeline", "STATE_FILE"]

STAGES = ("gate", "chimerism", "cohort", "analysis")
STATE_FILE = ".pipeline.json"
SIMULATED_STAMP = ".simulated.json"   # what wrote a study's simulated FCS files
_STATE_VERSION = 1

# Known keys, with their expected type(s), per section.
_TOP = {"study": str, "description": str, "out": str, "inputs": dict, "stages": dict,
        "protocol": dict, "simulate": dict}
# The study's protocol endpoints (immunomon.clinical.protocol.Protocol).
_PROTOCOL = {"drug": str, "dose_levels": list, "dose_unit": str,
             "ctcae_version": (str, int, float), "origin": str, "horizon_days": (int, float),
             "population": str, "criteria": list, "merge_window_days": (int, float),
             "stopping": dict}
_STOPPING = {"p0": (int, float), "threshold": (int, float), "prior": list,
             "max_patients": int, "min_patients": int, "rates": list}
_SIMULATE = {"trial": dict}
_TRIAL = {"seed": int, "events_per_sample": int}
_INPUTS = {"manifest": str, "fcs": str, "template": str, "str": str, "references": dict,
           "kit": str, "clinical": str,
           "ladder": (str, list), "size_standard": str}
_REFERENCES = {"donor": str, "recipient": str}
_STAGE_KEYS = {
    "gate": {"plots": (bool, str), "anndata": bool, "exclude_anomalies": bool,
             "on_file_error": str, "beads_per_test": (int, float),
             "volume_ul": (int, float), "workers": int},
    "chimerism": {"quantity": str, "stutter": str, "stutter_ratio": (int, float),
                  "forward_stutter_ratio": (int, float),
                  "size_tolerance": (int, float), "lod": (int, float),
                  "full_donor": (int, float), "full_recipient": (int, float),
                  "outlier_mad": (int, float, type(None)),
                  "outlier_floor": (int, float), "dropout_share": (int, float),
                  "min_rise": (int, float), "detection_threshold": (int, float),
                  "relative_threshold": (int, float), "reference_min_height": (int, float),
                  "reference_stutter": (int, float), "pull_up_ratio": (int, float),
                  "off_ladder_alleles": bool, "tri_allelic": list,
                  "broad_factor": (int, float)},
    "cohort": {"file": str, "material": str},
    "analysis": {"seed": int, "title": str, "baseline_visit": str, "primary_visit": str,
                 "landmark_day": (int, float), "horizon_day": (int, float),
                 "populations": list, "shares": list, "primary_counts": list,
                 "primary_shares": list, "min_events": int, "exclude_qc_failures": bool,
                 "n_permutations": int, "conf_level": float},
}
#: the analysis stage's settings that declare its plan (``analysis.questions.Plan``)
_PLAN_KEYS = tuple(k for k in _STAGE_KEYS["analysis"] if k not in ("seed", "title"))
# The inputs each stage needs.
_NEEDS = {"gate": ("fcs", "template"), "chimerism": ("manifest", "references"),
          "cohort": ("manifest",), "analysis": ()}


class PipelineError(ImmunomonError):
    """A study file is invalid, or a stage of the pipeline failed."""


_line = line_of


def _fail(source, line: int, message: str):
    where = f", line {line}" if line else ""
    raise PipelineError(f"{source}{where}: {message}")


def _type_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "text", dict: "a mapping", bool: "true or false", int: "an integer",
             float: "a number", type(None): "null", list: "a list"}
    return " or ".join(dict.fromkeys(names[k] for k in kinds))


def _check_keys(source, mapping, known: dict, where: str) -> None:
    for key, value in mapping.items():
        if key not in known:
            _fail(source, _line(mapping, key), f"unknown field {where}{key!r}; known fields: "
                  f"{', '.join(known)}")
        kind = known[key]
        ok = isinstance(value, kind) and not (isinstance(value, bool) and kind in (int, float)
                                              or (isinstance(value, bool) and isinstance(
                                                  kind, tuple) and bool not in kind))
        if not ok:
            _fail(source, _line(mapping, key), f"{where}{key} must be {_type_name(kind)}, "
                  f"not {value!r}")


# ----------------------------------------------------------------------------- the study
@dataclass(frozen=True)
class Study:
    """A validated study file: absolute input paths and per-stage settings."""

    name: str
    source: Path
    out: Path
    inputs: dict            # manifest, fcs, str, clinical: Path; template, kit: str;
                            # references: {"donor": pattern, "recipient": pattern}
    stages: dict            # stage -> settings dict, in STAGES order
    description: str = ""
    protocol: dict | None = None   # the protocol section, checked (see _parse_protocol)
    simulate: dict = field(default_factory=dict)   # inputs generated on first use


def _resolve(base: Path, value: str) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (base / p)


def _template_ref(base: Path, value: str) -> str:
    """A built-in template name stays a name; anything that looks like a path is resolved."""
    if "/" in value or "\\" in value or value.endswith((".yaml", ".yml")):
        return str(_resolve(base, value))
    return value


def parse_study(text: str, source="<study>") -> Study:
    """Validate a study YAML text; paths are relative to the folder of ``source``."""
    source_path = Path(os.fspath(source))
    base = source_path.resolve().parent if str(source) != "<study>" else Path.cwd()
    try:
        doc = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        _fail(source, mark.line + 1 if mark is not None else 0,
              f"not valid YAML: {getattr(exc, 'problem', exc)}")
    if not isinstance(doc, dict):
        _fail(source, 1, "a study file is a mapping with study, inputs and stages")
    _check_keys(source, doc, _TOP, "")
    for key in ("study", "inputs", "stages"):
        if key not in doc:
            _fail(source, _line(doc), f"'{key}' is missing")
    inputs_raw, stages_raw = doc["inputs"], doc["stages"]
    _check_keys(source, inputs_raw, _INPUTS, "inputs.")
    inputs: dict = {}
    for key in ("manifest", "fcs", "str", "clinical"):
        if key in inputs_raw:
            inputs[key] = _resolve(base, inputs_raw[key])
    if "template" in inputs_raw:
        inputs["template"] = _template_ref(base, inputs_raw["template"])
    if "kit" in inputs_raw:
        kit = inputs_raw["kit"]
        inputs["kit"] = str(_resolve(base, kit)) if kit.endswith((".yaml", ".yml")) else kit
    if "ladder" in inputs_raw:      # allelic ladder run(s) of raw .fsa traces
        ladders = inputs_raw["ladder"]
        inputs["ladder"] = [str(_resolve(base, str(x))) for x in
                            (ladders if isinstance(ladders, list) else [ladders])]
    if "size_standard" in inputs_raw:
        ss = inputs_raw["size_standard"]
        inputs["size_standard"] = str(_resolve(base, ss)) if ss.endswith(
            (".txt", ".yaml", ".yml", ".csv")) else ss
    if "references" in inputs_raw:
        refs = inputs_raw["references"]
        _check_keys(source, refs, _REFERENCES, "inputs.references.")
        for person in _REFERENCES:
            if person not in refs:
                _fail(source, _line(refs), f"inputs.references.{person} is missing (a path "
                      "with {patient}, e.g. str/{patient}_" + person + ".txt)")
            if "{patient}" not in refs[person]:
                _fail(source, _line(refs, person), f"inputs.references.{person} must contain "
                      "{patient}, replaced by each patient's id")
        inputs["references"] = {p: str(_resolve(base, refs[p])) for p in _REFERENCES}
    if not stages_raw:
        _fail(source, _line(doc, "stages"), f"stages is empty; list some of {', '.join(STAGES)}")
    stages: dict = {}
    for name, settings in stages_raw.items():
        if name not in STAGES:
            _fail(source, _line(stages_raw, name), f"unknown stage {name!r}; stages are "
                  f"{', '.join(STAGES)} (run in that order)")
        settings = {} if settings is None else settings
        if not isinstance(settings, dict):
            _fail(source, _line(stages_raw, name), f"stages.{name} must be a mapping of "
                  f"settings (or empty), not {settings!r}")
        _check_keys(source, settings, _STAGE_KEYS[name], f"stages.{name}.")
        for need in _NEEDS[name]:
            if need not in inputs:
                _fail(source, _line(stages_raw, name), f"stage {name} needs inputs.{need}")
        _check_choices(source, name, settings)
        stages[name] = dict(settings)
    if "analysis" in stages and "cohort" not in stages:
        _fail(source, _line(stages_raw, "analysis"), "stage analysis needs the cohort stage")
    ordered = {name: stages[name] for name in STAGES if name in stages}
    out = _resolve(base, doc["out"]) if "out" in doc else base / "results" / str(doc["study"])
    protocol = None
    if "protocol" in doc:
        if "clinical" not in inputs:
            _fail(source, _line(doc, "protocol"), "the protocol section needs inputs.clinical "
                  "(the clinical tables its endpoints are computed from)")
        protocol = _parse_protocol(source, doc["protocol"])
    simulate = _simulate_settings(source, doc.get("simulate") or {}, inputs)
    return Study(name=str(doc["study"]), source=source_path, out=out, inputs=inputs,
                 stages=ordered, description=str(doc.get("description", "")),
                 protocol=protocol, simulate=simulate)


def _parse_protocol(source, section) -> dict:
    """Check the protocol section field by field; the values stay plain YAML data."""
    from .clinical.protocol import Protocol

    _check_keys(source, section, _PROTOCOL, "protocol.")
    if "stopping" in section:
        _check_keys(source, section["stopping"], _STOPPING, "protocol.stopping.")
        prior = section["stopping"].get("prior")
        if prior is not None and (len(prior) != 2 or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in prior)):
            _fail(source, _line(section["stopping"], "prior"), "protocol.stopping.prior must "
                  "be [a, b], the two parameters of the beta prior")
    for key in ("dose_levels",):
        values = section.get(key, [])
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values):
            _fail(source, _line(section, key), f"protocol.{key} must be a list of numbers, "
                  f"not {values!r}")
    try:
        Protocol.from_settings(section)
        if section.get("stopping"):
            from .analysis.stopping import StoppingRule
            rule = dict(section["stopping"])
            rule.pop("rates", None)
            if "prior" in rule:
                rule["prior"] = tuple(rule["prior"])
            StoppingRule(**rule)
    except ImmunomonError as exc:
        key = next((k for k in ("criteria", "stopping", "ctcae_version", "origin",
                                "population", "horizon_days", "dose_levels")
                    if k in section and k in str(exc)), None)
        _fail(source, _line(section, key) if key else _line(section), f"protocol: {exc}")
    return json.loads(json.dumps(section))


def _simulate_settings(source, raw: dict, inputs: dict) -> dict:
    """``simulate.trial: {seed, events_per_sample}``: the FCS files of a simulated trial
    (the demo study) are written into ``inputs.fcs`` on first use rather than kept
    in the repository; the trial's other inputs (manifest, STR, clinical) are files."""
    _check_keys(source, raw, _SIMULATE, "simulate.")
    if "trial" not in raw:
        return {}
    trial = raw["trial"]
    _check_keys(source, trial, _TRIAL, "simulate.trial.")
    for key in _TRIAL:
        if key not in trial:
            _fail(source, _line(trial), f"simulate.trial.{key} is missing")
    if not 1_000 <= trial["events_per_sample"] <= 10_000_000:
        _fail(source, _line(trial, "events_per_sample"), "simulate.trial.events_per_sample "
              "must lie between 1,000 and 10,000,000")
    if "manifest" not in inputs or "fcs" not in inputs:
        _fail(source, _line(raw), "simulate.trial needs inputs.manifest and inputs.fcs")
    if inputs["fcs"].resolve() != (inputs["manifest"].parent / "fcs").resolve():
        _fail(source, _line(raw), "simulate.trial writes the FCS files into the 'fcs' folder "
              "beside the manifest; inputs.fcs must name that folder")
    return {"trial": dict(trial)}


def simulated_inputs(study: Study, progress=None) -> list[Path]:
    """Write the FCS files a study's ``simulate.trial`` describes and the manifest
    lists, where they are missing; returns the paths written. The same seed
    gives the same files byte for byte, so a study run on a fresh clone and a
    run on cached files gate identical events. A stamp beside the files records
    the seed, the event count and the immunomon version that wrote them; when
    any of them changes, every file is written again."""
    spec = study.simulate.get("trial")
    if not spec:
        return []
    import json

    from . import __version__
    from . import simulate as sim

    manifest = _manifest(study)
    folder = study.inputs["manifest"].parent
    wanted = [folder / f for f in manifest.loc[manifest["kind"] == "fcs", "file"]]
    stamp_path = study.inputs["fcs"] / SIMULATED_STAMP
    stamp = {"seed": spec["seed"], "events_per_sample": spec["events_per_sample"],
             "immunomon": __version__}
    try:
        current = json.loads(stamp_path.read_text(encoding="utf-8")) == stamp
    except (OSError, ValueError):
        current = False
    if current and all(p.is_file() for p in wanted):
        return []
    trial = sim.trial(spec["seed"])
    listed = set(trial.manifest.loc[trial.manifest["kind"] == "fcs", "file"])
    if listed != set(manifest.loc[manifest["kind"] == "fcs", "file"]):
        raise PipelineError(f"{study.inputs['manifest']}: the FCS files it lists are not "
                            f"those of the simulated trial with seed {spec['seed']}; "
                            "regenerate the study folder with fixtures/make_demo_study.py")
    missing = len(wanted) if not current else sum(not p.is_file() for p in wanted)
    if progress is not None:
        progress("simulate", f"writing {missing} simulated FCS files "
                             f"({spec['events_per_sample']:,} events each) on first use")
    written = sim.write_trial_fcs(trial, folder, events_per_sample=spec["events_per_sample"],
                                  only_missing=current)
    write_text(stamp_path, json.dumps(stamp, indent=2) + "\n")
    return written


def _yaml_word(value) -> str:
    """A choice as a study file spells it (true, not True)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _check_choices(source, name: str, settings) -> None:
    choices = {("gate", "on_file_error"): ("stop", "continue"),
               ("gate", "plots"): (True, False, "none", "summary", "all"),
               ("chimerism", "quantity"): ("area", "height"),
               ("chimerism", "stutter"): ("correct", "exclude", "flag"),
               ("cohort", "material"): ("blood", "marrow")}
    for (stage, key), allowed in choices.items():
        if stage == name and key in settings and settings[key] not in allowed:
            _fail(source, _line(settings, key), f"stages.{name}.{key} must be one of "
                  f"{', '.join(map(_yaml_word, allowed))}, not {settings[key]!r}")
    from .populations import counting_input_problem
    for key in ("beads_per_test", "volume_ul"):
        if name == "gate" and key in settings:
            problem = counting_input_problem(key, settings[key], f"stages.gate.{key}")
            if problem:
                _fail(source, _line(settings, key), problem)
    if name == "cohort" and "file" in settings and \
            not settings["file"].endswith((".nc", ".zarr")):
        _fail(source, _line(settings, "file"), "stages.cohort.file must end in .nc or .zarr")
    if name == "gate" and settings.get("workers", 1) < 1:
        _fail(source, _line(settings, "workers"), "stages.gate.workers must be 1 or more, "
              f"not {settings['workers']!r}")
    if name == "analysis":              # the declared plan, before any stage runs
        try:
            _analysis_plan(settings)
        except ImmunomonError as exc:
            _fail(source, _line_of_field(settings, exc), f"stages.analysis: {exc}")
    if name == "chimerism":             # its ranges, before any stage runs
        from .chimerism import ChimerismSettings
        try:
            ChimerismSettings(**_chimerism_options(settings))
        except ChimerismError as exc:
            _fail(source, _line_of_field(settings, exc), f"stages.chimerism.{exc}")


def _line_of_field(settings, exc: Exception):
    """The line of the setting a settings error names first ("landmark_day must be ...")."""
    key = next((k for k in settings if str(exc).startswith(f"{k} ")), None)
    return _line(settings, key) if key else None


def _analysis_plan(settings: dict):
    """The analysis stage's plan: the declared questions' visits, populations and days
    (``Plan``'s defaults, the demo trial's, for what the study file leaves out)."""
    from .analysis.questions import Plan
    from .errors import AnalysisError

    given = {k: settings[k] for k in _PLAN_KEYS if k in settings}
    for key in ("populations", "primary_counts"):
        if key in given:
            if not all(isinstance(x, str) and x for x in given[key]):
                raise AnalysisError(f"{key} must be a list of population names")
            given[key] = tuple(given[key])
    for key in ("shares", "primary_shares"):
        if key in given:
            if not all(isinstance(x, list) and len(x) == 2
                       and all(isinstance(n, str) and n for n in x) for x in given[key]):
                raise AnalysisError(f"{key} must be a list of [population, parent] pairs")
            given[key] = tuple(tuple(x) for x in given[key])
    return Plan(**given, seed=settings.get("seed", 0))


def _chimerism_options(settings: dict) -> dict:
    """A chimerism stage's settings as ``ChimerismSettings`` takes them."""
    options = dict(settings)
    if "tri_allelic" in options:
        options["tri_allelic"] = tuple(str(x) for x in options["tri_allelic"])
    return options


def load_study(path) -> Study:
    """Read and validate a study YAML file."""
    path = Path(os.fspath(path))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError(f"{path}: no such study file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineError(f"{path}: cannot be read ({exc})") from None
    return parse_study(text, path)


# ----------------------------------------------------------------------------- fingerprints
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _hashes(paths) -> dict:
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5
                                          else "")
        raise PipelineError(f"{len(missing)} input file(s) not found: {shown}")
    return {str(p): _sha256(p) for p in paths}


def _version() -> str:
    from . import __version__
    return __version__


def _fingerprint(*parts) -> str:
    """What a stage's results depend on, as one hash: its settings, its inputs' hashes,
    its upstream stages' fingerprints and the immunomon version (a new version may
    gate or count differently, so its results are not reused)."""
    return hashlib.sha256(json.dumps([_version(), *parts], sort_keys=True,
                                     default=str).encode()).hexdigest()


def _read_state(out: Path) -> dict:
    path = out / STATE_FILE
    if not path.is_file():
        return {"version": _STATE_VERSION, "stages": {}}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"version": _STATE_VERSION, "stages": {}}   # unreadable: run everything
    if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
        return {"version": _STATE_VERSION, "stages": {}}
    state.setdefault("stages", {})
    return state


def _write_state(out: Path, state: dict) -> None:
    write_text(out / STATE_FILE, json.dumps(state, indent=2))


# ----------------------------------------------------------------------------- stages
def _manifest(study: Study):
    from .cohort import read_manifest
    return read_manifest(study.inputs["manifest"])


def _gate_inputs(study: Study) -> tuple[list[Path], dict]:
    from .gating.run import find_fcs_files
    from .gating.template import builtin_templates, load_template

    folder = study.inputs["fcs"]
    if not folder.exists():
        raise PipelineError(f"{folder}: the FCS folder (inputs.fcs) does not exist")
    files = find_fcs_files([folder])
    if not files:
        raise PipelineError(f"{folder}: no .fcs files found (inputs.fcs)")
    template = study.inputs["template"]
    tpath = Path(template) if Path(template).suffix else builtin_templates().get(template)
    if tpath is None or not tpath.is_file():
        load_template(template)            # says which templates exist, or that the file is missing
    load_template(tpath)                   # a template with a mistake fails before any stage
    return files, {"files": _hashes(files + [tpath]), "template": template}


def _gate(study: Study, settings: dict, work: Path, progress, force: bool = False) -> dict:
    """Gate the study's FCS files into ``work`` (the gate folder itself) with the
    batch registry, so a run that was killed resumes file by file."""
    import pandas as pd

    from .batch.run import BatchOptions, make_executor, open_batch
    from .gating.run import _atomic_frame
    from .progress import file_line
    from .report.pages import index_page

    files, _ = _gate_inputs(study)
    counting = {k: float(settings[k]) for k in ("beads_per_test", "volume_ul") if k in settings}
    options = BatchOptions(template=study.inputs["template"], plots=settings.get("plots", False),
                           anndata=settings.get("anndata", False),
                           exclude_anomalies=settings.get("exclude_anomalies", True),
                           workers=settings.get("workers", 1), counting=counting, flat=True,
                           redo_on_upgrade=True)    # as every stage does after an upgrade
    done = [0]

    def step(event):
        if event["event"] in ("done", "failed", "quarantined", "skipped"):
            done[0] += 1
            progress("gate", file_line(Path(event["path"]).stem,
                                       event.get("status", event["event"]), event.get("events"),
                                       event.get("seconds"), index=done[0], total=len(files),
                                       message=event.get("message")))

    with open_batch(work, options, progress=step, command="immunomon run (gate)") as batch:
        batch.forget_except(files)
        todo = batch.register(files, study.inputs["fcs"], force=force)
        if todo:
            with make_executor(options, len(todo)) as executor:
                batch.process(todo, executor)
        rows = {r["path"]: r for r in batch.registry.rows()}
    rows = [rows[str(Path(f).resolve())] for f in files if str(Path(f).resolve()) in rows]
    ok = [r for r in rows if r["status"] == "done"]
    failed = [r for r in rows if r["status"] != "done"]
    tables = [pd.read_csv(work / r["output"] / "populations.csv") for r in ok]
    if tables:
        table = pd.concat(tables, ignore_index=True)
        _atomic_frame(table, work / "populations.csv")
        _atomic_frame(table, work / "populations.parquet")
    index_page(work / "index.html", [
        {"sample": r["alias"] or Path(r["path"]).stem, "status": r["qc_status"] if
         r["status"] == "done" else "failed", "events": r["events"],
         "flags": json.loads(r["qc_flags"] or "[]"), "message": r["error"] or "",
         "page": str(work / r["output"] / "index.html") if r["status"] == "done" else None}
        for r in rows], title=f"immunomon gate: {study.name}")
    if failed and (settings.get("on_file_error", "stop") == "stop" or len(failed) == len(files)):
        first = failed[0]
        raise PipelineError(f"{len(failed)} of {len(files)} FCS files could not be gated; "
                            f"first: {first['path']}: {first['error']} (set "
                            "stages.gate.on_file_error: continue to go on without them)")
    return {"samples": len(ok), "failed": [r["path"] for r in failed]}


def _chimerism_groups(study: Study) -> dict:
    """Per patient: its STR sample rows, donor and recipient reference paths."""
    manifest = _manifest(study)
    rows = manifest[manifest["kind"] == "str"]
    if rows.empty:
        raise PipelineError(f"{study.inputs['manifest']}: no STR exports (kind 'str') in the "
                            "manifest for the chimerism stage")
    groups = {}
    for pid, grp in rows.groupby("patient_id", sort=True):
        refs = {p: Path(study.inputs["references"][p].replace("{patient}", str(pid)))
                for p in ("donor", "recipient")}
        groups[str(pid)] = (grp, refs)
    return groups


def _chimerism_inputs(study: Study) -> dict:
    from .chimerism.kits import load_kit

    files = [Path(study.inputs["manifest"])]
    for grp, refs in _chimerism_groups(study).values():
        files += [Path(p) for p in grp["path"]] + [refs["donor"], refs["recipient"]]
    files += [Path(p) for p in study.inputs.get("ladder", [])]
    kit = study.inputs.get("kit")
    if kit and Path(kit).suffix:
        files.append(Path(kit))
    elif kit:
        load_kit(kit)            # an unknown kit name fails here, before any work
    return {"files": _hashes(files), "kit": kit,
            "size_standard": study.inputs.get("size_standard")}


def _chimerism(study: Study, settings: dict, work: Path, progress) -> dict:
    import pandas as pd

    from .chimerism import ChimerismSettings, chimerism_from_exports
    from .chimerism.report import write_outputs
    from .chimerism.workflow import chimerism_from_traces, is_trace

    chim_settings = ChimerismSettings(**_chimerism_options(settings))
    groups = _chimerism_groups(study)
    n = 0
    warnings: list = []
    for k, (pid, (grp, refs)) in enumerate(groups.items(), start=1):
        folder = work / pid
        folder.mkdir(parents=True)
        # each row names its run by export file and sample name: an anonymised export's
        # one run takes the manifest's name, which the cohort then finds
        meta = pd.DataFrame({"sample": grp["sample"].astype(str),
                             "file": grp["path"].map(lambda p: str(Path(p).absolute())),
                             "patient": pid, "lineage": grp["lineage"].astype(str),
                             "date": grp["collection_date"].astype(str).str[:10]})
        meta_path = folder / "samples.csv"
        meta.to_csv(meta_path, index=False)
        if all(is_trace(p) for p in [refs["donor"], refs["recipient"], *grp["path"]]):
            result = chimerism_from_traces(
                refs["donor"], refs["recipient"], list(grp["path"]),
                kit=study.inputs.get("kit"), ladders=study.inputs.get("ladder", []),
                size_standard=study.inputs.get("size_standard"), settings=chim_settings,
                manifest=meta_path)
        else:
            result = chimerism_from_exports(refs["donor"], refs["recipient"],
                                            list(grp["path"]), kit=study.inputs.get("kit"),
                                            settings=chim_settings, manifest=meta_path)
        write_outputs(result, folder)
        n += len(result.samples)
        # the rows were the study manifest's: name it, not the stage's own copy of them
        warnings += [w.replace(str(meta_path), f"{study.inputs['manifest']} (patient {pid})")
                     for w in result.warnings]
        progress("chimerism", f"{k}/{len(groups)} {pid}: {len(result.samples)} samples")
    return {"samples": n, "patients": len(groups), "warnings": warnings}


def _cohort_file(study: Study, settings: dict) -> str:
    return settings.get("file", "cohort.nc")


def _cohort_inputs(study: Study) -> dict:
    files = [study.inputs["manifest"]]
    if "clinical" in study.inputs:
        folder = study.inputs["clinical"]
        if not folder.is_dir():
            raise PipelineError(f"{folder}: the clinical folder (inputs.clinical) does not "
                                "exist")
        files += sorted(folder.glob("*.csv"))
    return {"files": _hashes(files)}


def _cohort(study: Study, settings: dict, work: Path, progress) -> dict:
    from .cohort import build_from_files

    out = work.parent
    gating = out / "gate" if "gate" in study.stages else None
    chim = out / "chimerism" if "chimerism" in study.stages else None
    cohort = build_from_files(study.inputs["manifest"], clinical=study.inputs.get("clinical"),
                              gating=gating, chimerism=chim,
                              material=settings.get("material", "blood"))
    work.mkdir()
    path = cohort.save(work / _cohort_file(study, settings))
    ds = cohort.dataset
    return {"file": path.name, "patients": int(ds.sizes.get("patient", 0)),
            "timepoints": int(ds.sizes.get("timepoint", 0)),
            "warnings": list(cohort.warnings)}


def _analysis_available() -> bool:
    import importlib.util
    try:
        return importlib.util.find_spec("immunomon.analysis.report") is not None
    except ModuleNotFoundError:
        return False


def _analysis(study: Study, settings: dict, work: Path, progress) -> dict:
    from .analysis.report import gvm_report
    from .cohort import load

    cohort_settings = study.stages.get("cohort", {})
    cohort = load(work.parent / "cohort" / _cohort_file(study, cohort_settings))
    kwargs = {"seed": settings.get("seed", 0), "plan": _analysis_plan(settings)}
    if "title" in settings:
        kwargs["title"] = settings["title"]
    details = {}
    if study.protocol is not None:
        from .analysis.protocol import protocol_results
        from .clinical import read_clinical
        from .clinical.protocol import Protocol

        clinical = read_clinical(study.inputs["clinical"])
        results = protocol_results(clinical, Protocol.from_settings(study.protocol),
                                   seed=kwargs["seed"])
        kwargs.update(protocol=results, clinical=clinical)
        s = results.summary
        details["primary_endpoint"] = f"{s['events']}/{s['n']}"
        progress("analysis", f"primary endpoint met by {s['events']} of {s['n']} patients")
    page = gvm_report(cohort, work, **kwargs)
    return {"report": Path(page).name, **details}


_RUNNERS = {"gate": _gate, "chimerism": _chimerism, "cohort": _cohort, "analysis": _analysis}
_INPUT_FUNCS = {"gate": lambda s: _gate_inputs(s)[1], "chimerism": _chimerism_inputs,
                "cohort": _cohort_inputs, "analysis": lambda s: {"protocol": s.protocol}}
_UPSTREAM = {"gate": (), "chimerism": (), "cohort": ("gate", "chimerism"),
             "analysis": ("cohort",)}


# ----------------------------------------------------------------------------- running
@dataclass
class StageResult:
    name: str
    status: str                  # "ran", "skipped", "failed", "unavailable"
    seconds: float = 0.0
    output: str = ""             # the stage's folder under the output folder
    details: dict = field(default_factory=dict)
    message: str = ""


@dataclass
class PipelineRun:
    study: Study
    out_dir: Path
    stages: list = field(default_factory=list)

    @property
    def ran(self) -> list[str]:
        return [s.name for s in self.stages if s.status == "ran"]

    @property
    def skipped(self) -> list[str]:
        return [s.name for s in self.stages if s.status == "skipped"]


def _no_progress(stage: str, message: str) -> None:
    pass


def run_pipeline(path, out_dir=None, *, force: bool = False, progress=None) -> PipelineRun:
    """Run the stages of a study file in order; returns what ran and what was skipped.

    ``out_dir`` overrides the file's ``out``; ``force`` reruns every stage;
    ``progress(stage, message)`` is called as work proceeds.  Raises
    :class:`PipelineError` at the first stage that fails; the stages before it
    keep their outputs and their recorded state.
    """
    from .batch.pool import refuse_while_bootstrapping

    refuse_while_bootstrapping()        # a gate worker importing an unguarded script
    study = load_study(path)
    progress = progress or _no_progress
    out = Path(out_dir) if out_dir is not None else study.out
    simulated_inputs(study, progress)
    inputs = _checked_inputs(study)     # before the output folder: nothing run, nothing made
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, on_wait=lambda holder: progress(
            "pipeline", f"waiting: another immunomon run is writing into {out} ({holder})")):
        _remove_temporaries(out)
        return _run_stages(study, out, inputs, force, progress)


def _remove_temporaries(out: Path) -> None:
    """What a killed run left: stage folders built under temporary names."""
    for tmp in [*out.glob(".*.tmp"), *out.glob(".*.old")]:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def _run_stages(study: Study, out: Path, inputs: dict, force: bool, progress) -> PipelineRun:
    state = _read_state(out)
    run = PipelineRun(study, out)
    prints: dict = {}
    for name, settings in study.stages.items():
        if name == "analysis" and not _analysis_available():
            run.stages.append(StageResult(name, "unavailable", message=(
                "immunomon.analysis.report is not installed; the analysis stage was skipped")))
            progress(name, run.stages[-1].message)
            continue
        final = out / name
        prints[name] = _fingerprint(name, settings, inputs[name],
                                    [prints.get(u) for u in _UPSTREAM[name]])
        recorded = state["stages"].get(name, {})
        if not force and recorded.get("fingerprint") == prints[name] and final.exists():
            run.stages.append(StageResult(name, "skipped", output=str(final),
                                          details=recorded.get("details", {}),
                                          message="inputs and settings unchanged"))
            progress(name, "skipped: inputs and settings unchanged since the last run")
            continue
        progress(name, "running")
        started = time.monotonic()
        if name == "gate":                       # in place: its registry resumes file by file
            work = final
            work.mkdir(exist_ok=True)
        else:
            work = temporary_dir(out, prefix=f".{name}.")
        try:
            if name == "cohort":
                work.rmdir()                     # _cohort creates it
            details = (_gate(study, settings, work, progress, force) if name == "gate" else
                       _RUNNERS[name](study, settings, work, progress))
        except ImmunomonError as exc:
            if work != final:
                shutil.rmtree(work, ignore_errors=True)
            state["stages"].pop(name, None)
            _write_state(out, state)
            raise _stage_error(name, exc, out) from None
        except Exception as exc:
            # a defect rather than bad input: still stop cleanly, naming the stage
            if work != final:
                shutil.rmtree(work, ignore_errors=True)
            state["stages"].pop(name, None)
            _write_state(out, state)
            raise PipelineError(
                f"stage {name} failed with an unexpected {type(exc).__name__}: {exc}. "
                f"Earlier stages' results are kept in {out}; please report this with the "
                "input that caused it.") from exc
        except BaseException:
            if work != final:
                shutil.rmtree(work, ignore_errors=True)
            raise
        if work != final:
            replace_path(work, final)
        seconds = time.monotonic() - started
        state["stages"][name] = {
            "fingerprint": prints[name], "details": details, "immunomon": _version(),
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(seconds, 2)}
        _write_state(out, state)
        run.stages.append(StageResult(name, "ran", seconds, str(final), details))
        progress(name, f"done in {seconds:.1f} s")
    return run


def _checked_inputs(study: Study) -> dict:
    """Every stage's inputs (files, their hashes, template and kit), found and read
    before the first stage runs, so a missing or broken input never costs a run
    of the stages before the one that needs it. All problems are reported at once."""
    inputs, problems = {}, []
    for key in ("manifest", "fcs", "str", "clinical"):
        path = study.inputs.get(key)
        if path is not None and not Path(path).exists():
            problems.append(f"inputs.{key}: {path} does not exist")
    for name in study.stages:
        try:
            inputs[name] = _INPUT_FUNCS[name](study)
        except ImmunomonError as exc:
            problems.append(f"stage {name}: {exc}")
    if problems:
        raise PipelineError(f"{study.source}: nothing was run, because "
                            f"{'; '.join(problems)}. Fix the study file or the inputs and "
                            "run again")
    return inputs


def _stage_error(name: str, exc: ImmunomonError, out: Path) -> PipelineError:
    return PipelineError(f"stage {name} failed: {exc}. Earlier stages' results are kept "
                         f"in {out}; fix the input and run again to continue from here.")
