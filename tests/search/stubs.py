"""Stand-ins shared by the search tests: a train() that trains nothing, the candidate trials."""

from archspec.search.study.records import REPEAT_KEY, read_trial
from archspec.train.loop import TrainResult


def candidates(study):
    """(trial, record) of every trial but the base (proposals that rebuilt an earlier network
    are not trials)."""
    return [
        (t, read_trial(t))
        for t in study.trials
        if read_trial(t).role == "candidate" and REPEAT_KEY not in t.user_attrs
    ]


def repeats(study):
    """(trial, record) of every proposal that rebuilt an earlier trial's network."""
    return [(t, read_trial(t)) for t in study.trials if REPEAT_KEY in t.user_attrs]


def stub_train(calls, accuracy=lambda n: 0.5):
    """A stand-in for train(): records each call, reports every epoch, trains nothing."""

    def train(model, data, cfg, *, device, seed, report=None, progress=False, desc="", **kw):
        calls.append(desc)
        acc = accuracy(len(calls))
        for epoch in range(cfg.epochs):
            if report is not None:
                report(epoch, acc)
        return TrainResult(acc, [acc] * cfg.epochs)

    return train


# a compound search small enough for a test: 4 trials, a family up to phi 3
COMPOUND = {
    "mode": "compound",
    "space": {
        "depth": {"low": 1.0, "high": 2.0},
        "width": {"low": 1.0, "high": 1.3, "step": 0.1},
        "resolution": {"low": 1.0, "high": 1.3, "step": 0.1},
        "kernels": None,
    },
    "compound": {"flops_ratio": 2.0, "phi": 3},
    "trials": 4,
}
