"""The Optuna searcher on its own, with real Optuna and a real journal file (no Ray cluster needed)."""

from __future__ import annotations

import pickle

import optuna
import pytest
from optuna.trial import TrialState

from models.hparams import TrialParams
from results.tables import StudyTables
from study.callbacks import restoring_with
from study.presets import SMOKE
from study.search import RAY_TRIAL_ID, StudySearch, journal_path, open_study, reconcile
from study.space import Space

optuna.logging.set_verbosity(optuna.logging.WARNING)
EPOCHS = 4


@pytest.fixture
def search(tmp_path) -> StudySearch:
    return StudySearch(
        Space("binary", SMOKE.tasks["binary"]),
        journal_path(tmp_path, "binary"),
        "binary",
        metric="val_dice_fg",
        mode="max",
        max_epochs=EPOCHS,
        seed=0,
    )


def _run(search: StudySearch, trial_id: str, values: list[float], *, error: bool = False) -> dict:
    config = search.suggest(trial_id)
    TrialParams.from_config(config)  # the suggestion is a valid trial record
    result = {}
    for epoch, value in enumerate(values, 1):
        result = {"val_dice_fg": value, "epoch": epoch, **{f"config/{k}": v for k, v in config.items()}}
        if epoch < len(values):  # like Ray Tune: the last result comes with the completion only
            search.on_trial_result(trial_id, result)
    search.on_trial_complete(trial_id, result=result or None, error=error)
    return config


def _by_ray_id(study: optuna.Study) -> dict[str, optuna.trial.FrozenTrial]:
    return {t.user_attrs[RAY_TRIAL_ID]: t for t in study.trials}


def test_states_follow_how_each_trial_ended(search, tmp_path):
    _run(search, "done", [0.2, 0.5, 0.4, 0.45])  # every epoch: COMPLETE with its best value
    _run(search, "late", [0.2, 0.3, 0.4, 0.9])  # its best is the last result
    _run(search, "cut", [0.1, 0.15])  # stopped by the scheduler: PRUNED
    _run(search, "crash", [0.3], error=True)  # FAIL
    _run(search, "nan", [float("nan")] * EPOCHS)  # no finite objective: FAIL, not RUNNING forever
    study = open_study(journal_path(tmp_path, "binary"), "binary")  # what optuna-dashboard opens
    trials = _by_ray_id(study)
    assert trials["done"].state == TrialState.COMPLETE
    assert trials["done"].value == pytest.approx(0.5)
    assert trials["done"].intermediate_values == {1: 0.2, 2: 0.5, 3: 0.4, 4: 0.45}
    assert trials["late"].value == pytest.approx(0.9)
    assert trials["cut"].state == TrialState.PRUNED
    assert trials["cut"].intermediate_values == {1: 0.1, 2: 0.15}
    assert trials["crash"].state == TrialState.FAIL
    assert trials["nan"].state == TrialState.FAIL
    assert study.best_trial.user_attrs[RAY_TRIAL_ID] == "late"


def test_a_restored_searcher_reattaches_to_running_trials(search, tmp_path):
    config = search.suggest("t1")
    search.on_trial_result("t1", {"val_dice_fg": 0.3, "epoch": 1})
    state = tmp_path / "searcher.pkl"
    search.save(str(state))  # what Ray writes into the experiment state
    fresh = pickle.loads(pickle.dumps(search))  # the object Ray unpickles on restore holds no live study
    fresh.restore(str(state))
    fresh.on_trial_result("t1", {"val_dice_fg": 0.6, "epoch": 2, **{f"config/{k}": v for k, v in config.items()}})
    fresh.on_trial_complete("t1", {"val_dice_fg": 0.6, "epoch": 2})
    trial = _by_ray_id(fresh.study)["t1"]
    assert trial.state == TrialState.PRUNED  # 2 of 4 epochs
    assert trial.intermediate_values == {1: 0.3, 2: 0.6}
    assert len(fresh.study.trials) == 1


def test_a_trial_the_journal_lost_goes_on_under_a_new_optuna_trial(search, tmp_path):
    """Ray's saved state names a trial whose journal lines never reached the store (it failed just then)."""
    _run(search, "kept", [0.2, 0.3, 0.4, 0.5])
    journal = journal_path(tmp_path, "binary")
    whole = journal.read_bytes()
    config = search.suggest("lost")
    state = tmp_path / "searcher.pkl"
    search.save(str(state))  # Ray's state, saved after the suggestion
    journal.write_bytes(whole)  # the journal as the store kept it: without the lost trial
    fresh = pickle.loads(pickle.dumps(search))
    fresh.restore(str(state))
    fresh.suggest("next")  # a new trial takes the number the lost one had
    result = {"val_dice_fg": 0.6, "epoch": EPOCHS, **{f"config/{k}": v for k, v in config.items()}}
    fresh.on_trial_result("lost", result)
    fresh.on_trial_complete("lost", result)
    trials = _by_ray_id(fresh.study)
    assert trials["lost"].state == TrialState.COMPLETE and trials["lost"].params == config
    assert trials["next"].state == TrialState.RUNNING  # untouched by the lost trial's results
    assert trials["kept"].state == TrialState.COMPLETE


def test_a_searcher_restored_elsewhere_keeps_its_journal_in_this_drivers_study(search, tmp_path):
    """A study in object storage resumes from a new working copy: the journal Ray's pickle names is gone."""
    search.suggest("t1")
    saved = pickle.dumps(search)
    state = tmp_path / "searcher.pkl"
    search.save(str(state))
    here = tmp_path / "another-working-copy" / "s"
    with restoring_with(StudyTables(here / "tables", "s", "val_dice_fg")):
        fresh = pickle.loads(saved)  # what Tuner.restore unpickles
    fresh.restore(str(state))  # then Ray's searcher state
    assert fresh.journal == journal_path(here, "binary")


def test_a_trial_optuna_did_not_suggest_is_adopted_with_its_parameters(search):
    config = _run(search, "old", [0.4], error=True)
    # --restart-errored: Ray runs the same config under a new id
    result = {"val_dice_fg": 0.7, "epoch": EPOCHS, **{f"config/{k}": v for k, v in config.items()}}
    search.on_trial_result("new", result)
    search.on_trial_complete("new", result)
    trials = _by_ray_id(search.study)
    assert trials["old"].state == TrialState.FAIL
    assert trials["new"].state == TrialState.COMPLETE
    assert trials["new"].params == trials["old"].params


def test_reconcile_closes_every_running_trial_from_the_tables(search, tmp_path):
    for trial_id in ("a", "b", "c", "d"):
        search.suggest(trial_id)
    search.on_trial_result("a", {"val_dice_fg": 0.5, "epoch": 1})
    outcomes = {"a": ("completed", 0.5), "b": ("stopped_early", 0.2), "c": ("error", None)}  # d never ran
    closed = reconcile(journal_path(tmp_path, "binary"), "binary", outcomes)
    assert closed == 4
    study = open_study(journal_path(tmp_path, "binary"), "binary")
    states = {k: t.state for k, t in _by_ray_id(study).items()}
    assert states == {"a": TrialState.COMPLETE, "b": TrialState.PRUNED, "c": TrialState.FAIL, "d": TrialState.FAIL}
    assert reconcile(journal_path(tmp_path, "binary"), "binary", outcomes) == 0
