"""The commands that evaluate configs: evaluate (a ladder), search (its space, with Optuna) and check
(the CI sizing gate, which may evaluate first)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from rightsize import terminal
from rightsize.cli.app import cli
from rightsize.cli.options import (announce, footprint_options, model_options, objective_options, run_options,
                                   show_assumed, task_source)
from rightsize.errors import RightsizeError
from rightsize.tables import ESTIMATE_NOTE


@cli.command()
@click.argument("task", type=click.Path(path_type=Path))
@click.option("--rungs", help="Comma-separated rung names to evaluate (default: all).")
@click.option("--split", type=click.Choice(["validation", "test"]), default="validation", show_default=True,
              help="The test split only confirms a final choice; choose on validation.")
@run_options("Ladder YAML (default: the built-in ladder).",
             limit_help="Evaluate at most N examples of the split (a seeded sample).")
@click.option("--force", is_flag=True, help="Re-evaluate configs already recorded in the run folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON lines instead of a table.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@model_options
def evaluate(task, rungs, split, text_field, label_field, save_task, allow_overlap, ladder_path, limit, train_limit,
             out_dir, meter, cpu_watts, device, seed, force, as_json, quiet, trust_remote_code, allow_pickle, cache_dir,
             no_cache):
    """Evaluate every rung of a ladder on a task: metric, energy per phase, J/query.

    TASK is a task file, or a data file (JSONL, CSV, or a folder per class) whose task is assumed.

    \b
    Example:
      rightsize evaluate tasks/bbc-news.yaml --rungs tfidf,minilm-probe --out results/bbc
      rightsize evaluate my-tickets.csv --limit 500
    """
    from rightsize.runner import EvaluationRequest, run_evaluation

    request = EvaluationRequest(
        task=task_source(task, text_field, label_field, save_task), allow_overlap=allow_overlap, save_task=save_task,
        on_assumed=show_assumed, ladder=ladder_path, rungs=[r.strip() for r in rungs.split(",")] if rungs else None,
        limit=limit, train_limit=train_limit, split=split, out_dir=out_dir, meter=meter, cpu_watts=cpu_watts,
        device=device, seed=seed, force=force, progress=not (quiet or as_json),
        trust_remote_code=trust_remote_code, allow_pickle=allow_pickle, cache_dir=cache_dir, no_cache=no_cache,
    )
    records = []
    for record in run_evaluation(request, on_start=None if (quiet or as_json) else announce):
        records.append(record)
        if as_json:
            click.echo(json.dumps(record.to_dict(), ensure_ascii=False))
    if not as_json and records:
        click.echo(terminal.evaluation_text(records, request.resolved_out_dir() / "runs.jsonl"))


@cli.command()
@click.argument("task", type=click.Path(path_type=Path))
@click.option("--trials", type=click.IntRange(min=1), default=30, show_default=True,
              help="Configs to evaluate, all workers of the study together (duplicates do not count).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Start no trial after S seconds.")
@click.option("--budget-joules", type=click.FloatRange(min=0, min_open=True),
              help="Start no trial once the search's energy (all workers) would pass J joules.")
@click.option("--storage", help="Optuna storage URL shared by workers, e.g. postgresql://user@host/db "
                                "(default: sqlite:///<out>/study.db).")
@click.option("--study", "study_name", help="Study name; processes with the same name and storage share the work "
                                            "(default: derived from the task, space and options).")
@click.option("--objective", type=click.Choice(["smallest", "lifetime", "pareto"]), default="smallest",
              show_default=True, help="smallest: least J/query subject to adequacy; lifetime: least fit + "
                                      "queries/day x days x J/query subject to adequacy; pareto: NSGA-II on "
                                      "metric vs J/query.")
@click.option("--queries-per-day", type=click.FloatRange(min=0), default=10_000, show_default=True,
              help="Expected queries per day, for --objective lifetime.")
@click.option("--days", type=click.FloatRange(min=0), default=365, show_default=True,
              help="Deployment lifetime in days, for --objective lifetime.")
@click.option("--adjust", type=click.Choice(["holm", "none"]), default="holm", show_default=True,
              help="Multiplicity correction of the adequacy tests, for the search's stopping and its answer "
                   "alike (docs/adequacy.md).")
@run_options("Ladder YAML; its `search:` block shapes the space (default: the built-in ladder).",
             seed_help="Seed of the sampler (evaluations use seed 0, as evaluate).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--quiet", is_flag=True, help="No per-trial lines.")
@model_options
@click.pass_context
def search(ctx, task, trials, timeout, budget_joules, storage, study_name, objective, queries_per_day, days, adjust,
           text_field, label_field,
           save_task, allow_overlap, ladder_path, limit, train_limit, out_dir, meter, cpu_watts, device, seed, as_json,
           quiet, trust_remote_code, allow_pickle, cache_dir, no_cache):
    """Search the ladder's space (rung x knobs) with Optuna for the smallest adequate config.

    Each trial is one config, evaluated on a growing part of the validation split and pruned
    once its 95% CI upper bound cannot reach the target; every trial is a record in runs.jsonl.
    The answer comes from the recommendation policy over all records. Run the same command again
    to resume a stopped search; run it on more processes or machines with the same --storage and
    --study to share the work. Exit codes: 0 an adequate config, certain; 1 nothing adequate or no
    config finished an evaluation; 3 an answer that is not certain (rungs that set a `within`
    target's bar were not evaluated: raise --trials or --budget-joules). TASK is a task file, or a
    data file (JSONL, CSV, or a folder per class) whose task is assumed.

    \b
    Example:
      rightsize search tasks/trec6.yaml --trials 20 --limit 500 --budget-joules 20000
      rightsize search tasks/trec6.yaml --storage postgresql://rs@db.lan/rightsize --study trec6-a
      rightsize search my-tickets.csv --save-task tasks/my-tickets.yaml
    """
    from rightsize.search import SearchRequest, run_search

    request = SearchRequest(
        task=task_source(task, text_field, label_field, save_task), allow_overlap=allow_overlap, save_task=save_task,
        on_assumed=show_assumed, ladder=ladder_path, trials=trials, timeout=timeout, budget_joules=budget_joules,
        storage=storage, study=study_name, out_dir=out_dir, seed=seed, objective=objective,
        queries_per_day=queries_per_day, days=days, adjust=adjust, limit=limit,
        train_limit=train_limit, meter=meter, cpu_watts=cpu_watts, device=device, trust_remote_code=trust_remote_code,
        allow_pickle=allow_pickle, cache_dir=cache_dir, no_cache=no_cache,
    )
    talk = not (quiet or as_json)
    result = run_search(request, on_trial=(lambda t: click.echo(terminal.trial_line(t), err=True)) if talk else None,
                        on_note=(lambda m: click.echo(m, err=True)) if not as_json else None)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str))
    else:
        click.echo(terminal.search_text(result))
    ctx.exit(result.exit_code)


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--current", required=True, help="The config you ship: a rung name, or a config YAML (one rung in ladder syntax).")
@click.option("--min-metric", type=click.FloatRange(0, 1),
              help="Absolute floor instead of the task's target: the 95% CI lower bound must reach it (the policy's min rule).")
@click.option("--max-joules-per-query", type=click.FloatRange(min=0, min_open=True), help="Energy budget in J/query.")
@click.option("--tolerance", type=click.FloatRange(0, 100, max_open=True), default=10.0, show_default=True,
              help="Percent: a cheaper adequate config only fails the gate when it saves more than this.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (schema rightsize.check/1).")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML, one test case per criterion.")
@click.option("--markdown", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a Markdown summary (also appended to $GITHUB_STEP_SUMMARY when set).")
@run_options("Ladder to evaluate (default: the built-in ladder).", task_only=True)
@objective_options
@footprint_options
@click.pass_context
def check(ctx, source, current, min_metric, max_joules_per_query, tolerance, as_json, junit, markdown, text_field,
          label_field, save_task, allow_overlap, ladder_path, limit, train_limit, out_dir, meter, device, objective,
          queries_per_day, days, adjust, where):
    """Sizing gate for CI: is the shipped config adequate, within budget, and not oversized?

    SOURCE is a run folder (its runs.jsonl is judged as is), or a task file or a data file (JSONL,
    CSV, or a folder per class, whose task is assumed): the ladder and the current config are then
    evaluated first, resuming what the run folder already holds. Exit 0: the
    current config meets the target, fits the energy budget, no adequate config is cheaper by more
    than --tolerance percent, and every rung that sets the bar was evaluated. Exit 1: it fails one
    of these (an uncertain bar fails the criterion complete-evidence). Exit 2: bad input.

    \b
    Example:
      rightsize check results/banking77 --current mpnet-probe --max-joules-per-query 0.005 --junit check.xml
      rightsize check tasks/banking77.yaml --current examples/deployed-model.yaml --limit 500 --markdown check.md
    """
    from rightsize.assumed import is_class_folder, is_data_path
    from rightsize.check import check as judge, evaluate_for_check, load_current, write_outputs
    from rightsize.footprint import WhereAndWhen
    from rightsize.results import RunLog
    from rightsize.runner import EvaluationRequest

    task_options = {"--text-field": text_field, "--label-field": label_field, "--save-task": save_task,
                    "--allow-overlap": allow_overlap or None, "--ladder": ladder_path, "--limit": limit,
                    "--train-limit": train_limit, "--out": out_dir, "--meter": meter, "--device": device}
    cur = load_current(current)
    if source.is_dir() and not is_class_folder(source):
        given = [name for name, value in task_options.items() if value is not None]
        if given:
            raise RightsizeError(f"{given[0]} only applies when SOURCE is a task file or a data file; {source} is a "
                                 "run folder")
        run_log = RunLog(source, create=False)
        records, plans = run_log.records(), run_log.plans()
    elif source.exists() and (source.suffix.lower() in (".yaml", ".yml") or is_data_path(source)):
        task = task_source(source, text_field, label_field, save_task)
        request = EvaluationRequest(task=task, ladder=ladder_path, limit=limit, train_limit=train_limit,
                                    out_dir=out_dir, meter=meter or "auto", device=device or "auto",
                                    progress=not as_json, allow_overlap=allow_overlap, save_task=save_task,
                                    on_assumed=show_assumed)
        records, plans = evaluate_for_check(request, cur, on_start=None if as_json else announce)
    elif source.exists():
        raise RightsizeError(f"{source}: expected a run folder (with runs.jsonl), a task file (.yaml) or a data file "
                             f"(.jsonl, .csv, a folder per class)")
    else:
        raise RightsizeError(f"{source}: no such run folder or task file (nor data file)")
    result = judge(records, cur, min_metric=min_metric, max_joules_per_query=max_joules_per_query,
                   tolerance_pct=tolerance, plans=plans, objective=objective, queries_per_day=queries_per_day,
                   days=days, adjust=adjust, where=where)
    write_outputs(result, junit=junit, markdown=markdown, step_summary=os.environ.get("GITHUB_STEP_SUMMARY") or None)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(result.summary())
        if where != WhereAndWhen():
            click.echo("\n".join(terminal.footprint_text(result.footprint)
                                 + terminal.attributions(None, result.footprint)))
        if result.energy_estimated:
            click.echo(ESTIMATE_NOTE, err=True)
    ctx.exit(result.exit_code)
