"""Fitting and evaluating cascade plans: synthetic data with a known answer, the
cross-validation property, both objectives, both input formats, and the real data when present."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import llmspend.cascade
from llmspend.cascade import fit as fit_module
from llmspend.cascade.data import OutcomeTable, load_table
from llmspend.cascade.evaluate import evaluate_plan, evaluate_steps, feature_table, step_scores
from llmspend.cascade.fit import fit_plan, policy_outcomes, tune_thresholds
from llmspend.cascade.plan import Plan, load_plan
from llmspend.exceptions import ConfigError
from llmspend.scoring.features import STEP_FEATURES, agreement, normalise_answer, step_features

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cascade"
CHEAP, MID, STRONG = "cheap-1", "mid-2", "strong-3"
COSTS = {CHEAP: 0.0001, MID: 0.0005, STRONG: 0.002}
SKILL = {CHEAP: 0.6, MID: 0.8, STRONG: 0.97}  # a model is right on the easiest SKILL share


def synthetic_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """Queries of rising difficulty; each model is right below its skill and says so through
    its log-probability (near 0 when right, about -2 when wrong), except the strong one, whose
    log-probability says nothing."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        difficulty = rng.uniform()
        row: dict[str, Any] = {"qid": f"q{i}", "user_prompt": f"question {i}?", "gold": "A"}
        for model, skill in SKILL.items():
            right = difficulty < skill
            conf = -0.05 + 0.02 * rng.standard_normal() if right else -2.0 + 0.3 * rng.standard_normal()
            if model == STRONG:
                conf = -0.5 + 0.1 * rng.standard_normal()
            row[f"{model}__answer"] = "A" if right else str(rng.choice(["B", "C", "D"]))
            row[f"{model}__correct"] = int(right)
            row[f"{model}__cost_usd"] = COSTS[model] * (1 + 0.01 * rng.standard_normal())
            row[f"{model}__conf_raw"] = min(conf, 0.0)
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]], *, tokens: bool = False) -> Path:
    with path.open("w") as fh:
        for row in rows:
            for model in SKILL:
                call: dict[str, Any] = {
                    "id": row["qid"], "query": row["user_prompt"], "model": model,
                    "answer": row[f"{model}__answer"], "correct": bool(row[f"{model}__correct"]),
                    "conf_raw": row[f"{model}__conf_raw"],
                }
                if tokens:
                    call.update(input_tokens=100, output_tokens=10)
                else:
                    call["cost_usd"] = row[f"{model}__cost_usd"]
                fh.write(json.dumps(call) + "\n")
    return path


@pytest.fixture(scope="module")
def train(tmp_path_factory: pytest.TempPathFactory) -> OutcomeTable:
    return load_table(write_csv(tmp_path_factory.mktemp("data") / "train.csv", synthetic_rows(400, 1)))


@pytest.fixture(scope="module")
def test_table(tmp_path_factory: pytest.TempPathFactory) -> OutcomeTable:
    return load_table(write_csv(tmp_path_factory.mktemp("data") / "test.csv", synthetic_rows(1000, 2)))


@pytest.fixture(scope="module")
def drop_plan(train: OutcomeTable) -> Plan:
    return fit_plan(train, max_accuracy_drop=0.01, max_depth=3, orderings="all")


def test_finds_the_known_best_chain(drop_plan: Plan, test_table: OutcomeTable) -> None:
    # cheap answers its 60% when sure, mid the next 20%, strong the rest: as accurate as strong
    # alone at about a third of its cost
    assert drop_plan.models == (CHEAP, MID, STRONG)
    result = evaluate_plan(drop_plan, test_table)
    strong = result["best_single"]
    assert strong["model"] == STRONG
    assert result["accuracy"] >= strong["accuracy"] - 0.01
    expected = COSTS[CHEAP] + 0.4 * COSTS[MID] + 0.2 * COSTS[STRONG]
    assert result["cost_usd_per_query"] == pytest.approx(expected, rel=0.1)
    assert result["calls_per_query"][CHEAP] == 1.0
    assert result["calls_per_query"][MID] == pytest.approx(0.4, abs=0.05)
    assert result["calls_per_query"][STRONG] == pytest.approx(0.2, abs=0.05)
    assert set(result) == {"accuracy", "cost_usd_per_query", "calls_per_query", "best_single", "singles"}


def test_drop_mode_stays_within_the_drop_on_held_out_folds(drop_plan: Plan, train: OutcomeTable) -> None:
    cv = drop_plan.cv
    best = train.best_single()
    assert cv["best_single"]["model"] == best["model"] == STRONG
    assert cv["accuracy"] - drop_plan.objective["margin_z"] * cv["accuracy_diff_se"] >= best["accuracy"] - 0.01 - 1e-9
    assert cv["cost_usd_per_query"] < 0.5 * best["cost_usd_per_query"]
    assert drop_plan.objective["mode"] == "max_accuracy_drop"
    assert drop_plan.objective["margin_chosen_by"] == "nested cross-validation"
    assert {r["margin_z"] for r in drop_plan.cv["nested_margins"]} >= {0.0, 1.0}


def test_budget_mode_fits_the_budget(train: OutcomeTable, test_table: OutcomeTable) -> None:
    budget = 0.00035
    plan = fit_plan(train, budget=budget, max_depth=3, margin_z=0.0)
    assert plan.cv["cost_usd_per_query"] <= budget
    assert plan.steps[0].model == CHEAP
    assert plan.cv["accuracy"] >= 0.79  # cheap then mid: 0.8 is what the budget buys
    result = evaluate_plan(plan, test_table)
    assert result["cost_usd_per_query"] <= budget * 1.1
    assert result["accuracy"] >= 0.77
    richer = fit_plan(train, budget=0.0015, max_depth=3, margin_z=0.0)
    assert richer.cv["accuracy"] > plan.cv["accuracy"]
    with pytest.raises(ConfigError, match="no chain fits a budget"):
        fit_plan(train, budget=0.00001, max_depth=2, margin_z=0.0)


def test_fit_plans_answers_every_objective_from_one_search(train: OutcomeTable, monkeypatch: pytest.MonkeyPatch) -> None:
    objectives = [{"budget": 0.00035}, {"budget": 0.0015}, {"max_accuracy_drop": 0.01}]
    alone = [fit_plan(train, max_depth=3, **o) for o in objectives]  # type: ignore[arg-type]
    searches = []
    real = fit_module._Search

    def counting(*args: Any, **kwargs: Any) -> Any:
        searches.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_module, "_Search", counting)
    together = llmspend.cascade.fit_plans(train, objectives, max_depth=3)
    # one search on every row and one per outer fold of the nested margin, whatever the count
    # of objectives (each fit_plan above ran as many on its own)
    assert len(searches) == 1 + 5
    assert [p.to_dict() for p in together] == [p.to_dict() for p in alone]
    with pytest.raises(ConfigError, match="not both"):
        fit_module.fit_plans(train, [{"budget": 0.001, "max_accuracy_drop": 0.01}])


def test_cross_validation_never_scores_thresholds_on_their_own_rows(train: OutcomeTable, monkeypatch: pytest.MonkeyPatch) -> None:
    # every row gets a distinct cost, so the rows a call sees can be told apart by their costs
    unique = train.cost.copy()
    unique[:, 0] = 1e-4 + np.arange(len(train)) * 1e-9
    table = OutcomeTable(train.ids, train.queries, train.models, train.answers, train.correct, unique, train.conf)
    calls: list[tuple[str, set[float]]] = []
    real_tune, real_outcomes = fit_module.tune_thresholds, fit_module.policy_outcomes

    def rows_of(cumcost: np.ndarray, chains: list[tuple[int, ...]] | None = None) -> set[float]:
        return {round(float(v), 12) for v in cumcost[0, :, 0]}

    def tune(scores: Any, correct: Any, cumcost: Any, lam: Any, **kw: Any) -> Any:
        calls.append(("tune", rows_of(cumcost)))
        return real_tune(scores, correct, cumcost, lam, **kw)

    def outcomes(scores: Any, correct: Any, cumcost: Any, t: Any) -> Any:
        calls.append(("eval", rows_of(cumcost)))
        return real_outcomes(scores, correct, cumcost, t)

    monkeypatch.setattr(fit_module, "tune_thresholds", tune)
    monkeypatch.setattr(fit_module, "policy_outcomes", outcomes)
    feats = fit_module.FeatureTable(table)
    search = fit_module._Search(feats, np.arange(len(table)), fit_module._SearchOptions(2, "all", 1.0), folds=5, seed=0)
    # only chains that start with the model whose costs identify rows
    search.chains = [c for c in search.chains if c[0] == 0]
    search.cross_validate()
    pairs = [(calls[i][1], calls[i + 1][1]) for i in range(0, len(calls), 2)]
    assert pairs and all(calls[i][0] == "tune" and calls[i + 1][0] == "eval" for i in range(0, len(calls), 2))
    all_rows = {round(float(v), 12) for v in unique[:, 0]}
    for tuned, evaluated in pairs:
        assert not tuned & evaluated  # never evaluated on a row it was tuned on
        assert tuned | evaluated == all_rows
    # within one batch of chains, the folds' evaluated rows cover every row exactly once
    folds = [evaluated for _, evaluated in pairs[:5]]
    assert sum(len(f) for f in folds) == len(all_rows) and set().union(*folds) == all_rows


def test_two_step_thresholds_are_optimal() -> None:
    rng = np.random.default_rng(5)
    for _ in range(20):
        n = 30
        scores = rng.uniform(size=(1, n, 1)).round(2)  # ties included
        correct = (rng.uniform(size=(1, n, 2)) < [0.6, 0.9]).astype(float)
        cumcost = np.cumsum(np.broadcast_to([1.0, 4.0], (1, n, 2)), axis=2)
        lam = np.array([0.0, 0.05, 0.2, 1.0])
        t = tune_thresholds(scores, correct, cumcost, lam)
        right, spent, _ = policy_outcomes(scores, correct, cumcost, t)
        got = right.sum(-1) - lam * spent.sum(-1)
        cuts = np.concatenate([[np.inf], np.unique(scores), [0.0]])
        brute = policy_outcomes(scores, correct, cumcost, np.broadcast_to(cuts[None, :, None], (1, len(cuts), 1)))
        values = brute[0].sum(-1)[0][:, None] - lam[None, :] * brute[1].sum(-1)[0][:, None]
        assert np.allclose(got[0], values.max(axis=0))


def test_features_at_fit_match_the_stage(drop_plan: Plan, test_table: OutcomeTable) -> None:
    feats = feature_table(drop_plan, test_table)
    scores = step_scores(drop_plan, drop_plan.steps, feats)
    for i in range(0, 1000, 97):
        earlier: list[tuple[str, ...]] = []
        for k, step in enumerate(drop_plan.steps[:-1]):
            j = test_table.index(step.model)
            tokens = normalise_answer(test_table.answers[i][j])
            values = dict(zip(STEP_FEATURES, step_features(tokens, float(test_table.conf[i, j]), earlier)))
            scorer = drop_plan.scorers[step.scorer or ""]
            assert scorer.probability([values[f] for f in scorer.features]) == pytest.approx(scores[i, k], abs=1e-9)
            earlier.append(tokens)


def test_answers_compare_by_their_final_part() -> None:
    assert normalise_answer("A") == ("a",)  # an answer that is only an article keeps it
    assert normalise_answer("The Eiffel Tower.") == ("eiffel", "tower")
    assert agreement(normalise_answer("so the total is 20\n#### $20"), normalise_answer("#### 20")) == 1.0
    assert agreement(normalise_answer("Light and vision"), normalise_answer("light")) == pytest.approx(0.5)  # F1 of 1/3 and 1
    assert agreement((), ("x",)) == 0.0
    nan, floor = step_features(("x",), math.nan), step_features(("x",), -math.inf)
    assert nan[:3] == [0.0, 0.0, 1.0]  # missing: flagged
    assert floor[:3] == [-20.0, math.exp(-20.0), 0.0]  # -inf: probability 0, clipped


def test_plan_json_round_trip(drop_plan: Plan, test_table: OutcomeTable, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    drop_plan.save(path)
    data = json.loads(path.read_text())
    assert data["format"] == "llmspend.cascade/1" and data["requires_logprobs"] is True
    assert data["chain"][-1]["threshold"] is None
    assert data["training"]["sha256"] == drop_plan.training["sha256"] and len(data["training"]["sha256"]) == 64
    again = load_plan(path)
    assert again.steps == drop_plan.steps and again.scorers == drop_plan.scorers
    assert evaluate_plan(again, test_table) == evaluate_plan(drop_plan, test_table)
    curve = [evaluate_steps(again, p.steps, feature_table(again, test_table)) for p in again.frontier]
    assert len(curve) >= 3 and len({round(c["cost_usd_per_query"], 9) for c in curve}) >= 3


def test_jsonl_of_logged_calls(tmp_path: Path, train: OutcomeTable) -> None:
    rows = synthetic_rows(400, 1)
    table = load_table(write_jsonl(tmp_path / "calls.jsonl", rows))
    assert table.models == train.models and table.ids == train.ids
    assert np.array_equal(table.correct, train.correct)
    assert np.allclose(table.cost, train.cost) and np.allclose(table.conf, train.conf)
    with pytest.raises(ConfigError, match="no price for model 'cheap-1'"):
        load_table(write_jsonl(tmp_path / "priced.jsonl", rows, tokens=True))
    with open(tmp_path / "gpt.jsonl", "w") as fh:
        fh.write(json.dumps({"query": "q", "model": "gpt-4o-mini", "answer": "a", "correct": 1,
                             "input_tokens": 1_000_000, "output_tokens": 0}) + "\n")
        fh.write(json.dumps({"query": "q2", "model": "gpt-4o-mini", "answer": "a", "correct": 0, "cost_usd": 0.5}) + "\n")
        fh.write(json.dumps({"query": "q2", "model": "gpt-4o-mini", "answer": "b", "correct": 1, "cost_usd": 9.0}) + "\n")
    gpt = load_table(tmp_path / "gpt.jsonl")
    assert gpt.cost[:, 0].tolist() == pytest.approx([0.15, 0.5])  # $0.15 per 1M input tokens; first call counts
    assert math.isnan(gpt.conf[0, 0])
    plan = fit_plan(table, max_depth=2, margin_z=1.0)
    assert len(plan.models) == 2 and plan.models[-1] == STRONG and plan.training["source"] == "calls.jsonl"


def test_incomplete_queries_are_dropped_and_counted(tmp_path: Path) -> None:
    rows = synthetic_rows(20, 3)
    path = write_jsonl(tmp_path / "calls.jsonl", rows)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[1:]) + "\n")  # the first query lost its cheap call
    table = load_table(path)
    assert len(table) == 19 and table.dropped == 1
    assert len(load_table(path, models=[MID, STRONG])) == 20


def test_a_model_not_in_the_file_is_named_with_every_model_it_has(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "calls.jsonl", synthetic_rows(5, 3))
    with pytest.raises(ConfigError, match=f"no outcomes for gpt-5; it has {CHEAP}, {MID}, {STRONG}$"):
        load_table(path, models=[MID, "gpt-5"])


def test_correct_reads_the_spellings_the_scorer_reads(tmp_path: Path) -> None:
    spellings = {"true": 1.0, "yes": 1.0, "Y": 1.0, "1": 1.0, 1: 1.0, True: 1.0,
                 "false": 0.0, "no": 0.0, "N": 0.0, "0": 0.0, 0: 0.0, False: 0.0}
    path = tmp_path / "spelt.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "query": "q", "model": "m", "answer": "a", "correct": value,
                                        "cost_usd": 0.1}) + "\n" for i, value in enumerate(spellings)))
    assert load_table(path).correct[:, 0].tolist() == list(spellings.values())
    rows = synthetic_rows(4, 3)
    rows[0][f"{CHEAP}__correct"], rows[1][f"{CHEAP}__correct"] = "yes", "false"
    table = load_table(write_csv(tmp_path / "spelt.csv", rows))
    assert table.correct[:2, 0].tolist() == [1.0, 0.0]


@pytest.mark.parametrize(("content", "message"), [
    ('{"query": "q", "model": "m", "answer": "a"}', "missing 'correct'"),
    ('{"query": "q", "model": "m", "answer": "a", "correct": 2, "cost_usd": 1}', "'correct' must be true/false or 1/0"),
    ('{"query": "q", "model": "m", "answer": "a", "correct": "maybe", "cost_usd": 1}', ":1 correct: 'correct' must be"),
    ('{"query": "q", "model": "m", "answer": "a", "correct": 1, "cost_usd": -1}', ":1 cost_usd: -1 is negative"),
    ('{"query": "q", "model": "gpt-4o", "answer": "a", "correct": 1, "input_tokens": -5, "output_tokens": 1}',
     ":1 input_tokens: -5 is not a count of tokens"),
    ('{"query": "q", "model": "m", "answer": "a", "correct": 1}', "give cost_usd"),
    ('{"query": "q", "model": "no-such-model", "answer": "a", "correct": 1, "input_tokens": 1, "output_tokens": 1}', "no price"),
    ("not json", ":1: not JSON"),
])
def test_bad_jsonl_says_what_and_where(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content + "\n")
    with pytest.raises(ConfigError, match=message):
        load_table(path)


def test_bad_csv_and_options(tmp_path: Path, train: OutcomeTable) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("user_prompt,m__correct,m__cost_usd\nq,1,0.1\n")
    with pytest.raises(ConfigError, match="no m__answer column"):
        load_table(path)
    with pytest.raises(ConfigError, match="give a wide .csv or a .jsonl"):
        load_table(write_csv(tmp_path / "x.txt", synthetic_rows(3, 0)))
    rows = synthetic_rows(3, 0)
    rows[1][f"{MID}__cost_usd"] = -1
    with pytest.raises(ConfigError, match=f"negcost.csv:3 {MID}__cost_usd: '-1' is negative"):
        load_table(write_csv(tmp_path / "negcost.csv", rows))
    with pytest.raises(ConfigError, match="not both"):
        fit_plan(train, budget=1.0, max_accuracy_drop=0.01)
    with pytest.raises(ConfigError, match="max_depth"):
        fit_plan(train, max_depth=5)
    with pytest.raises(ConfigError, match="too few"):
        fit_plan(train.rows(range(6)), folds=5)


def test_conf_raw_nan_and_minus_inf_are_handled(tmp_path: Path) -> None:
    rows = synthetic_rows(200, 4)
    for row in rows[:20]:
        row[f"{CHEAP}__conf_raw"] = "nan" if int(row["qid"][1:]) % 2 else "-inf"
    table = load_table(write_csv(tmp_path / "holes.csv", rows))
    assert np.isnan(table.conf[:20, 0]).sum() == 10 and np.isneginf(table.conf[:20, 0]).sum() == 10
    plan = fit_plan(table, max_depth=2, margin_z=1.0)
    result = evaluate_plan(plan, table)
    assert all(math.isfinite(v) for v in (result["accuracy"], result["cost_usd_per_query"]))


@pytest.mark.skipif(not (DATA / "mmlu_train.csv").exists(), reason=f"benchmark data not found at {DATA}")
def test_real_wide_csv() -> None:
    train = load_table(DATA / "mmlu_train.csv")
    assert len(train) == 285 and len(train.models) == 9 and "gpt-4o" in train.models
    assert len(train.sha256) == 64 and train.dropped == 0
    test = load_table(DATA / "mmlu_test.csv", models=["gpt-4o-mini", "llama3.1-70b", "llama3.1-405b"])
    plan = fit_plan(train.select(test.models), max_depth=3, margin_z=1.0)
    result = evaluate_plan(plan, test)
    assert 0.5 < result["accuracy"] <= 1.0
    best = result["best_single"]
    assert best["model"] == "llama3.1-405b" and best["accuracy"] == pytest.approx(0.852, abs=0.001)
    assert result["cost_usd_per_query"] <= max(s["cost_usd_per_query"] for s in result["singles"]) * 1.5


def test_chains_cheapest_first_allow_any_last_model() -> None:
    costs = [3.0, 1.0, 2.0]
    chains = list(fit_module._chains(costs, 3, "cheapest_first"))
    assert (1, 2, 0) in chains and (1, 0, 2) in chains  # any model may come last
    assert (2, 1, 0) not in chains  # but the ones before it go cheapest first
    assert len(chains) == len(set(chains))
    every = list(fit_module._chains(costs, 3, "all"))
    assert len(every) == sum(len(list(itertools.permutations(range(3), d))) for d in (1, 2, 3))


class AnswerIsA:
    """A text scorer that reads the answer (in the synthetic data, A is always right)."""

    models: tuple[str, ...] = ()
    provider = "test"

    def score(self, queries: Any, answers: Any, *, model: str | None = None, features: Any = None) -> list[float]:
        assert features is None  # it names no features: text only
        return [0.9 if a == "A" else 0.2 for a in answers]


def test_a_given_text_scorer_plugs_in_as_a_feature(train: OutcomeTable, test_table: OutcomeTable) -> None:
    from llmspend.cascade.fit import TextScorerSource

    plan = fit_plan(train, max_depth=2, margin_z=1.0,
                    text_scorer=TextScorerSource(scorer=AnswerIsA(), spec={"kind": "onnx", "path": "elsewhere"}))
    assert plan.text_scorer == {"kind": "onnx", "path": "elsewhere"}
    assert all("text_score" in s.features for s in plan.scorers.values())
    result = evaluate_plan(plan, test_table, text_scorer=AnswerIsA())
    assert result["accuracy"] >= result["best_single"]["accuracy"] - 0.01
    with pytest.raises(ConfigError, match="install llmspend\\[scorer\\]|no scorer at"):
        evaluate_plan(plan, test_table)  # the plan's own scorer cannot be loaded here
