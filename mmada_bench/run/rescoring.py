"""Scoring a stored run without its model (``python -m mmada_bench score RUN``), e.g. a ``--predict-only`` run.

The run's manifest gives its settings, tasks and checkpoint defaults. Each task is planned again (card, data,
prompts) and must match what the manifest recorded (card hash, dataset fingerprint, variant, prompt flags, item
count) and the prompt hash of every stored item; then it is finished exactly as ``run`` finishes a task
(:func:`~mmada_bench.run.text_scoring.finish_text_task`, :func:`~mmada_bench.run.text_to_image.finish_t2i`).
Nothing is generated: a task with items missing from its stores is reported, not scored.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from mmada_bench.cards.discovery import get_task
from mmada_bench.models.defaults import CheckpointDefaults, read_defaults
from mmada_bench.models.loader import model_folder
from mmada_bench.results.environment import utc_now
from mmada_bench.results.store import atomic_write_bytes, file_lock
from mmada_bench.run.distributed import DistContext, stored_by_id
from mmada_bench.run.planning import plan_task
from mmada_bench.run.text_scoring import finish_text_task
from mmada_bench.run.text_to_image import finish_t2i
from mmada_bench.run.types import RunBusy, RunContext, RunOutcome, RunSettings, TaskPlan
from mmada_ref.sampling.presets import ImageSamplerSettings, Preset, TextSamplerSettings

#: output kind of a card -> the finish step that scores its stored records
FINISH_STEPS = {"text": finish_text_task, "image": finish_t2i}

#: RunSettings fields the ``score`` command may replace (the data may have moved; scorers run elsewhere)
OVERRIDABLE = ("data_dir", "image_dir", "prompts", "device", "scorers")


class RescoreError(ValueError):
    """A run that cannot be scored (unknown run, unreadable manifest); the message says why and what to do."""


@dataclass
class RecordedModel:
    """The run's model as its manifest recorded it: what the result rows name; nothing is loaded."""

    name: str
    family: str
    is_smoke: bool
    recorded_fingerprint: str
    label: str = ""

    def fingerprint(self) -> str:
        return self.recorded_fingerprint


def latest_run_id(output_dir: Path) -> str:
    """The run whose manifest was updated last."""
    stamps = {}
    for path in Path(output_dir).glob("runs/*/manifest.json"):
        try:
            stamps[path.parent.name] = json.loads(path.read_text()).get("updated_at", "")
        except (OSError, ValueError):
            continue
    if not stamps:
        raise RescoreError(f"no runs under {output_dir}/runs/ (pass --output-dir, or run `python -m mmada_bench run`)")
    return max(stamps, key=lambda run_id: stamps[run_id])


def read_manifest(output_dir: Path, run_id: str) -> dict:
    """``runs/<run_id>/manifest.json``; a :class:`RescoreError` naming the file when it is absent or unreadable."""
    path = Path(output_dir) / "runs" / run_id / "manifest.json"
    if not path.is_file():
        known = sorted(p.parent.name for p in Path(output_dir).glob("runs/*/manifest.json"))[-5:]
        raise RescoreError(f"no run {run_id!r} under {output_dir}/runs/ (known: {', '.join(known) or 'none'})")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RescoreError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("settings"), dict):
        raise RescoreError(f"{path}: not a run manifest (no settings)")
    return manifest


def recorded_settings(manifest: dict, output_dir: Path, overrides: dict) -> RunSettings:
    """The run's settings as recorded, in ``output_dir``, with the ``score`` command's overrides; scoring on."""
    known = {f.name for f in dataclasses.fields(RunSettings)}
    stored = {k: v for k, v in manifest["settings"].items() if k in known}
    settings = RunSettings(**stored)
    given = {k: v for k, v in overrides.items() if k in OVERRIDABLE and v not in (None, {})}
    if "scorers" in given:  # a scorer flag adds to (or replaces one of) the run's own
        given["scorers"] = {**(settings.scorers or {}), **given["scorers"]}
    return dataclasses.replace(settings, **given, output_dir=str(output_dir), predict_only=False, progress=False)


def recorded_preset(described: dict) -> Preset:
    """The sampler preset a task ran with, from its manifest entry (rows name it; scoring does not use it)."""
    cls = TextSamplerSettings if described.get("kind") == "text" else ImageSamplerSettings
    names = {f.name for f in dataclasses.fields(cls)}
    return Preset(described["name"], cls(**{k: v for k, v in described.items() if k in names}),
                  described.get("source", ""), described.get("label", "paper"))


def recorded_defaults(manifest: dict) -> CheckpointDefaults:
    """The checkpoint defaults the run was planned with: recorded in the manifest, else (older manifests) read
    from the checkpoint folder again if it is at hand."""
    if isinstance(manifest.get("defaults"), dict):
        return CheckpointDefaults(**manifest["defaults"])
    spec = (manifest.get("model") or {}).get("spec")
    return read_defaults(model_folder(spec)) if spec is not None else CheckpointDefaults()


def replan(recorded: dict, settings: RunSettings, model: dict, defaults: CheckpointDefaults) -> TaskPlan:
    """The task planned again as the run planned it; ValueError naming what changed since."""
    plan = plan_task(get_task(recorded["task"], settings.include_paths), settings, defaults, family=model.get("family"))
    plan = dataclasses.replace(plan, preset=recorded_preset(recorded["preset"]))
    now = plan.describe()
    changed = [key for key in sorted(set(now) | set(recorded)) if now.get(key) != recorded.get(key)]
    if changed:
        raise ValueError(f"{plan.card.name}: {', '.join(changed)} differ from what the run recorded (the card, the "
                         f"data or the checkpoint defaults changed since); score it with the card and data it ran with, or run it again")
    return plan


def stored_records(plan: TaskPlan, run_dir: Path) -> list[dict]:
    """The task's records in plan order from every store of the run; ValueError when some are missing or were
    asked another prompt."""
    by_id, missing = stored_by_id(plan, run_dir)
    if missing:
        raise ValueError(f"{plan.card.name}: {len(missing)} of {len(plan.items)} items are not stored yet (first: "
                         f"{missing[0]}); finish them with the same run command (it generates only those), then score")
    other = [p.item.item_id for p in plan.items if by_id[p.item.item_id].get("prompt_hash") != p.prompt_hash]
    if other:
        raise ValueError(f"{plan.card.name}: {len(other)} stored items were asked another prompt than the card and "
                         f"data give now (first: {other[0]}); score them with the card and data they ran with")
    return [by_id[p.item.item_id] for p in plan.items]


def score_run(output_dir: str | Path, run: str, overrides: dict | None = None) -> RunOutcome:
    """Score every task of the stored run ``run`` (a run id or ``latest``); a task that cannot be scored is
    reported in ``task_errors`` and the others still are. Records the time in the manifest (``scored_at``)."""
    out = Path(output_dir)
    run_id = latest_run_id(out) if run == "latest" else run
    manifest = read_manifest(out, run_id)
    settings = recorded_settings(manifest, out, overrides or {})
    recorded = manifest.get("model") or {}
    model = RecordedModel(recorded.get("name", ""), recorded.get("family", ""), bool(recorded.get("is_smoke")),
                          recorded.get("fingerprint", ""), recorded.get("label") or "")
    outcome = RunOutcome(run_id, model.name, output_dir=str(out), model_label=model.label)
    defaults = recorded_defaults(manifest)
    run_dir = out / "runs" / run_id
    ctx = RunContext(settings, model, run_id, out, run_dir, manifest.get("started_at", ""), DistContext(), outcome,
                     defaults)
    lock = file_lock(run_dir / ".lock", blocking=False)
    try:
        lock.__enter__()
    except BlockingIOError:
        raise RunBusy(f"run {run_id} is in progress in another process; score it when that process is done") from None
    try:
        for described in manifest.get("tasks", []):
            try:
                plan = replan(described, settings, recorded, defaults)
                records = stored_records(plan, run_dir)
            except (KeyError, ValueError, FileNotFoundError) as exc:
                outcome.task_errors[described.get("task", "?")] = exc.args[0] if exc.args else str(exc)
                continue
            outcome.resumed += len(records)
            outcome.rows.extend(FINISH_STEPS[plan.card.output_kind](plan, ctx, records))
        if outcome.rows:
            manifest["scored_at"] = utc_now()
            atomic_write_bytes(run_dir / "manifest.json", json.dumps(manifest, indent=2, default=str).encode())
    finally:
        lock.__exit__(None, None, None)
    return outcome
