"""The search writes its winner as a bundle from the weights it was evaluated with, and
`archspec train STUDY` retrains a trial with the recorded recipe to the same accuracy and the
same weights (CPU)."""

import pytest
import torch
from typer.testing import CliRunner

import archspec
import archspec.cli.search
import archspec.cli.train
from archspec.cli import app
from archspec.search import load_search, load_study, run_search
from archspec.search.resolve import trial_spec
from archspec.search.study.queries import best_trial
from archspec.search.study.records import read_study, read_trial
from archspec.spec.dump import dump_spec
from archspec.train.data import load_dataset
from archspec.train.loop import MEMORY_FORMAT, evaluate

runner = CliRunner()


@pytest.fixture
def searched(write_def, tmp_path):
    path = write_def(
        "bundled",
        data={"dataset": "digits", "limit": 240},
        training={"epochs": 1, "batch_size": 48, "precise_bn": 96},
        evaluation={"seeds": 0},
        trials=2,
    )
    defn = load_search(path)
    result = run_search(defn, quiet=True, save_top=2)
    return path, defn, result


@pytest.mark.slow
def test_the_winner_is_saved_with_the_weights_it_was_evaluated_with(searched, tmp_path):
    _, defn, result = searched
    study = result.study
    best = best_trial(study)
    record = read_trial(best)
    bundle = archspec.load_bundle(tmp_path / "runs" / "bundled" / "best")
    manifest = bundle.manifest
    assert manifest.metrics["val_accuracy"] == record.accuracy
    assert manifest.provenance.source == "search"
    assert (manifest.provenance.study, manifest.provenance.trial) == ("bundled", best.number)
    assert manifest.provenance.seed == read_study(study).seed
    assert manifest.params == record.params
    # the dataset as it was: its real sample and class counts (issue 18: not the file's fields)
    data = manifest.provenance.data
    real = load_dataset(defn.data, defn.seed)
    assert (data["dataset"], data["samples"], data["classes"]) == ("digits", len(real), 10)
    assert "num_samples" not in data and "num_classes" not in data
    spec, _ = trial_spec(study, best.number)
    assert dump_spec(bundle.spec) == dump_spec(spec)  # the network the trial trained
    # the bundle's weights score exactly the recorded validation accuracy on the study's split
    dataset = load_dataset(defn.data, defn.seed)
    split = dataset.split(spec.input.hw, spec.input.channels, "cpu")
    model = bundle.model.to(memory_format=MEMORY_FORMAT)
    assert evaluate(model, split.val_x, split.val_y, torch.device("cpu")) == record.accuracy
    assert manifest.metrics["test_accuracy"] == evaluate(
        model, split.test_x, split.test_y, torch.device("cpu")
    )
    assert (tmp_path / "runs" / "bundled" / f"trial-{best.number}").is_dir()  # --save-top 2


@pytest.mark.slow
def test_retraining_a_trial_reproduces_its_accuracy_and_weights(searched, tmp_path):
    path, _, result = searched
    best = best_trial(result.study)
    out = runner.invoke(
        app, ["train", str(path), "--trial", "best", "-o", str(tmp_path / "re"), "-q"]
    )
    assert out.exit_code == 0, out.output
    assert f"the study recorded {read_trial(best).accuracy:.4f} for this trial: identical" in (
        out.output
    )
    retrained = (tmp_path / "re" / "bundle" / "weights.safetensors").read_bytes()
    searched_weights = (tmp_path / "runs" / "bundled" / "best" / "weights.safetensors").read_bytes()
    assert retrained == searched_weights
    bundle = archspec.load_bundle(tmp_path / "re" / "bundle")
    assert bundle.manifest.provenance.trial == best.number
    assert load_study(str(path)).study_name == "bundled"


@pytest.mark.slow
def test_a_winner_trained_on_another_machine_is_retrained_to_the_same_weights(searched, tmp_path):
    """A search over several machines: the worker that trained the winner kept its weights on
    its own disk. The bundle step retrains it here with the recorded recipe and seed."""
    from archspec.search.bundles import write_bundles
    from archspec.search.study.runs import WeightStore
    from archspec.search.trial import TrialRunner

    _, defn, result = searched
    study = result.study
    best = best_trial(study)
    folder = tmp_path / "runs" / "bundled"
    kept = folder / "weights" / f"trial-{best.number}.safetensors"
    original = kept.read_bytes()
    kept.unlink()  # as on the machine that did not train it
    dataset = load_dataset(defn.data, defn.seed)
    store = WeightStore(folder / "weights")
    (nothing,) = write_bundles(study, dataset, store, tmp_path / "elsewhere")
    assert nothing.path is None and nothing.note.startswith(f"no weights for trial-{best.number}")
    runner_ = TrialRunner(defn, dataset, seed=read_study(study).seed, quiet=True, weights=store)
    from archspec.search.run import _retrain

    (written,) = write_bundles(
        study, dataset, store, tmp_path / "here", retrain=lambda s, k: _retrain(runner_, s, k)
    )
    assert written.path == tmp_path / "here" / "best"
    assert "retrained here with the study's recipe and seed" in written.note
    assert kept.read_bytes() == original  # bit-identical on CPU
    bundle = archspec.load_bundle(written.path)
    assert bundle.manifest.metrics["val_accuracy"] == read_trial(best).accuracy


def test_export_of_the_best_trial_uses_its_kept_weights_without_the_best_bundle(searched, tmp_path):
    import shutil

    from archspec.sources import load_source

    _, _, result = searched
    best = best_trial(result.study)
    folder = tmp_path / "runs" / "bundled"
    shutil.rmtree(folder / "best")
    shutil.rmtree(folder / f"trial-{best.number}")
    source = load_source("bundled", trial="best")
    assert source.weights.endswith(f"trial-{best.number}.safetensors")
    kept = load_source("bundled", trial=best.number).model.state_dict()
    for key, value in source.model.state_dict().items():
        assert torch.equal(value, kept[key])
