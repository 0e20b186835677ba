"""The claims report: verdicts from Welch intervals on small synthetic tables whose answers are known."""

import json

from conftest import assert_one_line_error, run_script

from softvq_tf.experiments import claims, tables
from softvq_tf.layers.registry import PAPER_NAMES as SIX


def _table(acc, nmi=None, cls=None, variant=""):
    """A reproduction's summary from per-seed values: ``acc[model] = [seed values]`` (NMI and cls default flat)."""
    rows = [
        {
            "dataset": "fashion_mnist",
            "model": "raw",
            "variant": "",
            "K": None,
            "d": 784,
            "identity_key": "raw",
            "seed": None,
            "acc": 48.6,
            "nmi": 0.5,
            "cls": 84.0,
            "acc_near_best": 48.8,
        }
    ]
    for model in SIX:
        for seed, value in enumerate(acc[model]):
            rows.append(
                {
                    "dataset": "fashion_mnist",
                    "model": model,
                    "variant": variant,
                    "K": 128,
                    "d": 64,
                    "identity_key": model,
                    "seed": seed,
                    "acc": value,
                    "acc_near_best": value,
                    "nmi": (nmi or {}).get(model, [0.5, 0.505, 0.495])[seed],
                    "cls": (cls or {}).get(model, [80.0, 80.2, 79.8])[seed],
                    "cls_logreg": [82.0, 82.5, 81.5][seed],
                }
            )
    return tables.summarize(rows)


ACC = {
    "ae": [50, 50.5, 49.5],
    "vae": [47, 47.5, 46.5],
    "beta_vae": [52, 52.5, 51.5],
    "info_dropout": [48, 48.5, 47.5],
    "vq": [40, 45, 35],
    "soft_vq": [60, 61, 62],
}


def test_soft_vq_ahead_of_all_five_holds_and_one_rival_ahead_fails():
    six = [e for e in _table(ACC) if e["model"] != "raw"]
    verdict, rivals = claims.best_of_six(six, "acc")
    assert verdict == "holds" and [v for _, _, v in rivals] == ["better"] * 5
    partial = [e for e in six if e["model"] in ("vq", "soft_vq")]  # ahead of the one rival present: not "best of six"
    assert claims.best_of_six(partial, "acc")[0] == "not shown"
    ahead = dict(ACC, beta_vae=[70, 70.5, 69.5])
    verdict, rivals = claims.best_of_six([e for e in _table(ahead) if e["model"] != "raw"], "acc")
    assert verdict == "fails" and dict((m, v) for m, _, v in rivals)["beta_vae"] == "worse"
    # The near-tie of a noisy rival: its interval includes 0, so nothing is shown either way.
    tie = dict(ACC, vq=[50, 70, 62])
    verdict, _ = claims.best_of_six([e for e in _table(tie) if e["model"] != "raw"], "acc")
    assert verdict == "not shown"


def test_classification_against_the_ae_and_spreads_over_one_point():
    cls = {"ae": [84, 84.5, 83.5], "soft_vq": [81, 81.5, 80.5]}
    nmi = {"soft_vq": [0.50, 0.60, 0.55]}  # std 5 NMI points
    six = [e for e in _table(ACC, nmi=nmi, cls=cls) if e["model"] != "raw"]
    verdict, (diff, low, high) = claims.classification_against_ae(six)
    assert verdict == "fails" and abs(diff - 3.0) < 1e-9 and 0 < low < 3 < high
    # The converged probe is judged apart: level with the AE here, so the Dense probe's gap is the probe's.
    verdict, (diff, _, _) = claims.classification_against_ae(six, "cls_logreg")
    assert verdict == "level" and abs(diff) < 1e-9
    over = claims.spreads_over_limit(six)
    # ACC std of 0.5 (ae) and 1.0 (soft_vq) are within the limit; VQ's 5.0 and soft VQ's NMI are not.
    assert [(m, what) for m, what, _ in over] == [("vq", "ACC"), ("soft_vq", "NMI x 100")]
    assert abs(over[1][2] - 5.0) < 1e-9


def test_order_swaps_are_named_and_marked_when_both_intervals_exclude_zero():
    first = [e for e in _table(ACC) if e["model"] != "raw"]
    noise = [e for e in _table(dict(ACC, ae=[47.5, 48, 47])) if e["model"] != "raw"]  # AE slips below info dropout
    assert claims.swaps(first, noise, "acc") == [("ae", "info_dropout", False)]  # by half a point: not sure
    overtaken = [e for e in _table(dict(ACC, beta_vae=[70, 70.5, 69.5])) if e["model"] != "raw"]
    assert claims.swaps(first, overtaken, "acc") == [("soft_vq", "beta_vae", True)]
    assert claims.swaps(first, first, "acc") == []


def test_command_writes_the_report_for_two_protocols_and_refuses_a_missing_table(tmp_path):
    paths = []
    for name, variant in (("preset", ""), ("short", "batch_size=64, steps=20000")):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"table": _table(ACC, variant=variant)}))
        paths.append(str(path))
    output = tmp_path / "claims.md"
    assert claims.main([*paths, "--output", str(output)]) == 0
    text = output.read_text()
    assert "**40,000 steps at batch 32 (the preset)**" in text and "**20,000 steps at batch 64**" in text
    assert text.count("Verdict: acc holds, acc_near_best holds, nmi not shown") == 2  # equal NMI: level with all
    assert "Command: `softvq-claims" in text and "Pairs that swap by mean: none. Swaps shown" in text
    missing = run_script(["-m", "softvq_tf.experiments.claims", str(tmp_path / "nowhere.json")])
    assert_one_line_error(missing, "nowhere.json", "softvq-reproduce")
