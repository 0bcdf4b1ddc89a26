"""bench/benchmark.py in quick mode: every section of its report is written (tiny sizes, no timings to trust)."""

import subprocess
import sys

import pytest

from nst.paths import PROJECT_DIR


@pytest.mark.slow
def test_benchmark_quick_mode_runs_end_to_end(tmp_path):
    out = tmp_path / "results.md"
    done = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "bench" / "benchmark.py"), "--quick", "--repeats", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    text = out.read_text()
    for words in (
        "ours ÷ reference",
        "GFLOP/s",
        "bf16",
        "CPU kind",
        "The picture judge",
        "style distance",
        "edge correlation",
        "Time to the recipe's picture",
        "L-BFGS",
        "coarse to fine",
        "the old default",
        "peak RSS",
        "from fp32",  # the default in the precision "auto" did not choose, judged in fp32
        "TensorFlow's own conv gradient",
        "frozen conv layers",
        "Run All in JupyterLab",
        "to the live view shown",
    ):
        assert words in text, f"{words!r} missing from the benchmark's report"
    assert "not measured" not in text, text


def test_finish_measures_only_what_a_cut_short_run_lacks(tmp_path, monkeypatch):
    """`--finish`: the later stages a results .json lacks, each once, and nothing when none is missing."""
    import json
    from pathlib import Path

    monkeypatch.syspath_prepend(str(PROJECT_DIR / "bench"))
    import benchmark

    calls = []

    def record(*call, result=None):
        calls.append(call)
        return result if result is not None else {}

    monkeypatch.setattr(benchmark, "judged_pairs", lambda folder: [(Path("c.png"), Path("s.png"))])
    monkeypatch.setattr(benchmark, "time_to_picture", lambda run, target: None)
    monkeypatch.setattr(benchmark, "run_stylise", lambda c, s, work, **p: record("stylise", p))
    monkeypatch.setattr(
        benchmark,
        "run_big",
        lambda w, h, work, opt, its, note="": record("big", w, h, opt, result={"size": f"{w}×{h}", "optimizer": opt}),
    )
    monkeypatch.setattr(benchmark, "run_notebook", lambda w, h, work, **p: record("bf16", p["precision"]))
    monkeypatch.setattr(benchmark, "run_all_in_jupyterlab", lambda work: record("run all"))
    monkeypatch.setattr(benchmark, "run_matmul", lambda work, n: record("matmul", result={"n": n}))
    first_option, *other_options = benchmark.OPTIONS
    cut_short = {
        "judged": [{"recipe": {"picture": {}}}],
        "options": {key: {} for key, _, _ in other_options},
        "bigs": [{"size": "1920×1080", "optimizer": "adam"}],
        "matmul_runs": [{"n": 2048}],
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(cut_short))
    benchmark.finish(path, tmp_path)
    assert calls == [
        ("stylise", first_option[2]),
        *[("big", w, h, opt) for w, h, opt, _ in benchmark.BIG_RUNS if (w, opt) != (1920, "adam")],
        ("run all",),
        ("bf16", "bf16"),
        ("matmul",),
    ]
    finished = json.loads(path.read_text())
    assert set(finished["options"]) == {key for key, _, _ in benchmark.OPTIONS}
    calls.clear()
    benchmark.finish(path, tmp_path)
    assert calls == []


def test_the_judged_pairs_are_five_photos_by_two_styles_the_sample_pair_first(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.syspath_prepend(str(PROJECT_DIR / "bench"))
    from judged_pairs import judged_pairs

    pairs = judged_pairs(tmp_path)
    assert [(c.name, s.name) for c, s in pairs[:1]] == [("content_raccoon.jpg", "style_swirls.jpg")]
    assert len({c for c, _ in pairs}) == 5 and len({s for _, s in pairs}) == 2 and len(set(pairs)) == 10
    for path in {p for pair in pairs for p in pair}:
        with Image.open(path) as image:
            assert image.mode == "RGB" and min(image.size) >= 300, (path, image.mode, image.size)
    written_ns = {path: path.stat().st_mtime_ns for pair in pairs for path in pair}
    assert judged_pairs(tmp_path) == pairs
    assert {path: path.stat().st_mtime_ns for path in written_ns} == written_ns, "written once, then reused"


def test_a_runs_settings_text_names_its_sizes_and_its_start_when_it_is_the_noisy_photo(monkeypatch):
    monkeypatch.syspath_prepend(str(PROJECT_DIR / "bench"))
    import benchmark

    from nst.settings import Settings

    recipe = Settings(**benchmark.RECIPE).asdict()
    assert (
        benchmark.settings_text({"params": recipe})
        == "adam, learning rate 0.01, 200 at full size, fp32, noise ratio 0.6"
    )
    from_photo = {**recipe, "init": "content"}
    assert benchmark.settings_text({"params": from_photo}) == "adam, learning rate 0.01, 200 at full size, fp32"
    large = Settings(max_side_px=1920).asdict()
    assert benchmark.settings_text({"params": large}) == (
        "adam, learning rate 0.01, 3 sizes, 100 at the smallest and 10 at each later one, auto, noise ratio 0.5"
    )


def test_the_judge_computes_the_models_own_graph_so_no_cpu_kind_changes_its_figures(monkeypatch):
    """onnxruntime's extended fusions moved the style embedding by up to 0.46 on an AVX2-only CPU (the photo's
    style distance 3.217 against 3.349): the judge keeps the model's own arithmetic, equal to the unoptimised
    session's, on whichever CPU the benchmark runs."""
    import numpy as np
    import onnxruntime

    from nst.paths import SAMPLE_CONTENT_PATH

    monkeypatch.syspath_prepend(str(PROJECT_DIR / "bench"))
    import judge

    judged = judge.style_embedding(SAMPLE_CONTENT_PATH)
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    unoptimised = onnxruntime.InferenceSession(judge.predictor_path(), options, providers=["CPUExecutionProvider"])
    monkeypatch.setattr(judge, "_predictor", lambda: unoptimised)
    assert np.allclose(judged, judge.style_embedding(SAMPLE_CONTENT_PATH), atol=1e-4)


def test_rejudge_judges_again_the_runs_whose_pictures_exist_and_keeps_the_others(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(PROJECT_DIR / "bench"))
    import benchmark

    here, elsewhere, gone = tmp_path / "here", tmp_path / "elsewhere", tmp_path / "gone"
    for folder in (here, elsewhere):
        folder.mkdir()
        (folder / "final.png").write_bytes(b"")
    (here / "iter_0005.png").write_bytes(b"")
    judged = []
    monkeypatch.setattr(
        benchmark, "judge_picture", lambda path, c, s: judged.append(path.name) or {"style_distance": 1.0}
    )

    def run(folder, **extra):
        return {
            "picture": {"style_distance": 9.0},
            "final_path": str(folder / "final.png"),
            "run_dir": str(folder),
            "content": "c.png",
            "style": "s.png",
            "rows": [{}] * 10,
            **extra,
        }

    results = {
        "judged": [{"recipe": run(here, snapshots=[]), "default": run(gone)}],
        "bigs": [run(elsewhere)],
        "sizes": {"400x300": {"ours": [{"wall_s": 1.0}, run(here, snapshots=[])]}},  # the recipe's run, held twice
    }
    assert benchmark.rejudge(results) == 3
    assert judged == ["final.png", "iter_0005.png", "final.png", "final.png"], "the run held twice: judged once"
    assert results["sizes"]["400x300"]["ours"][1]["picture"] == {"style_distance": 1.0}
    assert len(results["sizes"]["400x300"]["ours"][1]["snapshots"]) == 2
    recipe = results["judged"][0]["recipe"]
    assert recipe["picture"] == {"style_distance": 1.0}
    assert [shot["iteration"] for shot in recipe["snapshots"]] == [5, 10]
    assert results["judged"][0]["default"]["picture"] == {"style_distance": 9.0}, "its folder is gone: kept"
    assert results["bigs"][0]["picture"] == {"style_distance": 1.0}
    assert "rejudged" in results, "the report says the pictures were judged again"


def fake_judged_set(monkeypatch, default_walls_s):
    """bench/benchmark.py with two judged pairs and a fake `stylise` (the recipe 200 s, each default the next of
    `default_walls_s`; a default of 55 s makes another picture); returns (benchmark, pairs, calls, fake_stylise)."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(PROJECT_DIR / "bench"))
    import benchmark

    pairs = [(Path("a.png"), Path("s.png")), (Path("b.png"), Path("s.png"))]
    calls = []
    params = {"optimizer": "adam", "coarse_to_fine": 2, "coarse_iterations": 100, "iterations": 10}
    params |= {"learning_rate": 0.01, "precision": "fp32"}
    default_walls_s = iter(default_walls_s)

    def fake_stylise(content, style, work, side_px, **parameters):
        calls.append((content.name, "recipe" if parameters else "default"))
        wall_s = 200.0 if parameters else next(default_walls_s)
        picture = {"style_distance": 1.0, "edge_correlation": 0.9 if wall_s != 55.0 else 0.8}
        return {"wall_s": wall_s, "picture": picture, "rows": [{"total": 5.0}], "params": params}

    monkeypatch.setattr(benchmark, "judged_pairs", lambda folder: pairs)
    monkeypatch.setattr(benchmark, "time_to_picture", lambda run, target: None)
    monkeypatch.setattr(benchmark, "run_stylise", fake_stylise)
    return benchmark, pairs, calls, fake_stylise


def test_rerun_judged_measures_every_pair_again_and_keeps_the_earlier_set(tmp_path, monkeypatch):
    """`--rerun-judged`: the recipe then the default on every pair, the earlier set kept and summed up in the report."""
    import json

    benchmark, pairs, calls, fake_stylise = fake_judged_set(monkeypatch, [60.0, 45.0, 45.0])
    earlier_pair = {"content": "a.png", "style": "s.png"}
    earlier_pair |= {"recipe": fake_stylise(*pairs[0], None, 400, x=1), "default": fake_stylise(*pairs[0], None, 400)}
    path = tmp_path / "results.json"  # the earlier default: 60 s, 0.3 of the recipe's
    path.write_text(json.dumps({"machine": {"date": "2026-12-04 23:51 UTC"}, "judged": [earlier_pair]}))
    calls.clear()

    benchmark.rerun_judged(path, "a faster start", tmp_path)

    assert calls == [("a.png", "recipe"), ("a.png", "default"), ("b.png", "recipe"), ("b.png", "default")]
    results = json.loads(path.read_text())
    assert [pair["default"]["wall_s"] for pair in results["judged"]] == [45.0, 45.0]
    assert results["judged_earlier"][0]["judged"] == [earlier_pair]
    text = benchmark.report_judged(results)
    assert "measured again" in text and "a faster start" in text
    assert "Earlier, the same set measured 2026-12-04 23:51 UTC: wall ÷ recipe median 0.30" in text
    assert "pairs above 0.25: 1; as good as the recipe on 1 of 1" in text


def test_a_bracketed_rerun_runs_the_default_before_and_after_each_recipe_and_takes_their_mean(tmp_path, monkeypatch):
    """`--rerun-judged --bracketed`: default, recipe, default on each pair; the ratio uses the default's mean time."""
    import json

    # the machine slows during each recipe; b's second default makes another picture
    benchmark, _, calls, _ = fake_judged_set(monkeypatch, [40.0, 60.0, 45.0, 55.0])
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"machine": {"date": "2026-12-04 23:51 UTC"}, "judged": []}))

    benchmark.rerun_judged(path, "drift", tmp_path, bracketed=True)

    assert calls == [(name, run) for name in ("a.png", "b.png") for run in ("default", "recipe", "default")]
    results = json.loads(path.read_text())
    assert [benchmark.default_wall_s(pair) for pair in results["judged"]] == [50.0, 50.0]
    text = benchmark.report_judged(results)
    assert "50 s (40 before, 60 after)" in text and "**0.25**" in text
    assert "the default before and after each recipe" in text
    assert "judged the same, to the last digit, on 1 of 2 pairs" in text, "a picture that differs is said"
