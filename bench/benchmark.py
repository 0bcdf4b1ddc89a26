"""Benchmark: the notebook's own run (through papermill and its metrics.csv) against a TF-tutorial-style reference.

    python bench/benchmark.py            # full run (about 50 min on 2 idle cores), writes docs/benchmark_results.md
    python bench/benchmark.py --quick    # tiny sizes, a minute or two: proves the benchmark works (CI); no timings

Everything is measured in this one run, ours and the reference interleaved, on this machine:
- seconds per iteration (median) of the notebook's Adam step and of the reference, at 400×300 and 1024×768;
- a practical peak, a large tf.matmul in fp32 and bf16, and the achieved GFLOP/s of each step as a fraction of it
  (FLOPs of the convolutions actually run, up to the deepest layer used, forward plus input-gradient);
- the bf16 option's speed and final loss against fp32's, and whether this hardware gives bf16 any speed-up;
- time-to-target: the total cost the seed's recipe (Adam, 200 iterations, 400×300) reaches, and how long L-BFGS
  and coarse-to-fine take to reach it;
- the notebook's default run (its own settings, as `make run` runs it), whole wall time;
- one value-and-gradient at 1920×1080 with TensorFlow's own conv gradient and with nst's frozen layers (peak RSS,
  seconds), and the notebook at 1920×1080 and 3840×2160 for peak memory (RSS of its kernel), against the estimate.
Weights: the random-feature VGG-19 on both sides (no weights file needed); the compute is identical to real weights.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))
PYTHON = sys.executable
CONTENT_LAYER = "conv4_2"  # the notebook's defaults; the reference uses the same layers
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
# The course's recipe, which the targets are measured against: Adam at learning rate 0.01, full size, fp32.
RECIPE = {"optimizer": "adam", "learning_rate": 0.01, "coarse_to_fine": 1, "precision": "fp32"}
# (width_px, height_px, optimizer) of the notebook runs measured for memory
BIG_RUNS = ((1920, 1080, "adam"), (3840, 2160, "adam"), (1920, 1080, "lbfgs"))
KERAS_NAMES = {f"conv{b}_{i}": f"block{b}_conv{i}" for b in range(1, 6) for i in range(1, 5)}


# ---------------------------------------------------------------------------------------------------- measuring


def peak_rss_bytes(pid: int) -> int:
    """VmHWM (peak resident set) of one live process, in bytes; 0 if it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_watched(command: list[str], env: dict | None = None) -> tuple[float, int, str]:
    """Run a command; returns (wall seconds, largest peak RSS of it or any descendant in bytes, its output)."""
    import psutil

    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peaks: dict[int, int] = {}
    output: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    while process.poll() is None:
        try:
            for child in [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]:
                peaks[child.pid] = max(peaks.get(child.pid, 0), peak_rss_bytes(child.pid))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.2)
    reader.join()
    wall_s = time.perf_counter() - start
    text = "".join(output)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} … failed ({process.returncode}):\n{text[-3000:]}")
    return wall_s, max(peaks.values(), default=0), text


def prepared_images(width_px: int, height_px: int, folder: Path) -> tuple[Path, Path]:
    """The sample content and style images, centre-cropped to the aspect W:H and resized to exactly W×H (PNG)."""
    from PIL import Image

    from nst.paths import SAMPLE_CONTENT_PATH, SAMPLE_STYLE_PATH

    paths = []
    for source in (SAMPLE_CONTENT_PATH, SAMPLE_STYLE_PATH):
        image = Image.open(source).convert("RGB")
        w, h = image.size
        crop_w, crop_h = (
            (w, round(w * height_px / width_px))
            if w * height_px <= h * width_px
            else (
                round(h * width_px / height_px),
                h,
            )
        )
        left, top = (w - crop_w) // 2, (h - crop_h) // 2
        image = image.crop((left, top, left + crop_w, top + crop_h)).resize((width_px, height_px), Image.LANCZOS)
        path = folder / f"{source.stem}_{width_px}x{height_px}.png"
        image.save(path)
        paths.append(path)
    return paths[0], paths[1]


def run_notebook(width_px: int, height_px: int, work: Path, judge: bool = True, **parameters) -> dict:
    """Execute the notebook with papermill (nst_utils.py stylise) at W×H; returns its metrics, wall time, peak RSS,
    and (judge) its final image's cost judged by the fp32 network."""
    content, style = prepared_images(width_px, height_px, work)
    output_root = Path(tempfile.mkdtemp(dir=work, prefix="runs-"))
    command = [PYTHON, str(PROJECT_DIR / "nst_utils.py"), "stylise", "--content", str(content), "--style", str(style)]
    command += ["--output-root", str(output_root), "-p", "max_side_px", str(max(width_px, height_px))]
    for name, value in parameters.items():
        command += ["-p", name, repr(value)]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR), "TF_CPP_MIN_LOG_LEVEL": "2", "NST_LIVE_VIEW": "0"}
    env["NST_WEIGHTS"] = "random"  # random features, as the reference: no download, the same compute everywhere
    for name in ("NST_MAX_SIDE_PX", "NST_ITERATIONS"):  # the benchmark sets sizes and iterations itself
        env.pop(name, None)
    wall_s, rss, _ = run_watched(command, env)
    (run_dir,) = output_root.iterdir()
    coarse = sorted(run_dir.glob("coarse_*/metrics.csv"))
    return {
        "wall_s": wall_s,
        "peak_rss_bytes": rss,
        "rows": read_metrics(run_dir / "metrics.csv"),
        "coarse_rows": [row for path in coarse for row in read_metrics(path)],
        "parameters": parameters,
        "final_path": str(run_dir / "final.png"),
        "judged_fp32": judged_fp32_cost(run_dir / "final.png", content, style, height_px, width_px) if judge else None,
    }


def judged_fp32_cost(final_path: Path, content: Path, style: Path, height_px: int, width_px: int) -> float:
    """The total cost of a run's final.png judged by the fp32 network (α = 10, β = 40, the default layers), so that
    runs in other precisions are compared on one scale. The costs are the notebook's own (nst.notebook_costs)."""
    import tensorflow as tf

    from nst.images import load_image
    from nst.model import load_vgg_model
    from nst.notebook_costs import notebook_costs

    costs = notebook_costs()
    vgg = load_vgg_model(weights="random", output_layers=[CONTENT_LAYER, *STYLE_LAYERS], precision="fp32")
    side_px = max(height_px, width_px)
    g, c, s = (load_image(path, max_side_px=side_px)[None] for path in (final_path, content, style))
    a_g, a_c, a_s = vgg(tf.constant(g)), vgg(tf.constant(c)), vgg(tf.constant(s))
    return float(default_total_cost(costs, a_c[CONTENT_LAYER], a_s, a_g))


def default_total_cost(costs: dict, a_content, style_activations: dict, generated_activations: dict):
    """α·J_content + β·J_style with the notebook's own costs, default layers, α = 10 and β = 40 (a tensor)."""
    j_content = costs["compute_content_cost"](a_content, generated_activations[CONTENT_LAYER])
    j_style = costs["compute_style_cost"](style_activations, generated_activations, [(n, 0.2) for n in STYLE_LAYERS])
    return costs["total_cost"](j_content, j_style, alpha=10.0, beta=40.0)


def read_metrics(path: Path) -> list[dict]:
    with path.open() as file:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(file)]


def run_reference(width_px: int, height_px: int, iterations: int, work: Path) -> dict:
    """The TF-tutorial-style reference in its own process (same conditions as the notebook's kernel)."""
    content, style = prepared_images(width_px, height_px, work)
    out = work / f"reference-{time.time_ns()}.json"
    command = [PYTHON, __file__, "_reference", str(content), str(style), str(iterations), str(out)]
    wall_s, rss, _ = run_watched(command, {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return {**json.loads(out.read_text()), "wall_s": wall_s, "peak_rss_bytes": rss}


def run_matmul(work: Path, n: int) -> dict:
    out = work / "matmul.json"
    run_watched([PYTHON, __file__, "_matmul", str(n), str(out)], {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return json.loads(out.read_text())


def run_big(width_px: int, height_px: int, work: Path, optimizer: str = "adam", note: str = "") -> dict:
    """The notebook at a large size for its peak memory: fp32, its trial steps (3 of Adam, or 2 of L-BFGS on a copy)
    and 2 iterations."""
    from nst.memory import estimate_memory_bytes

    parameters = {**RECIPE, "optimizer": optimizer, "iterations": 2}
    big = run_notebook(width_px, height_px, work, judge=False, **parameters)  # judging 4K needs 20 GB
    estimate = estimate_memory_bytes(height_px, width_px, "conv5_1", optimizer)
    return {**big, "size": f"{width_px}×{height_px}", "estimate_bytes": estimate, "note": note, "optimizer": optimizer}


def run_gradient_probe(width_px: int, height_px: int, layers: str, work: Path) -> dict:
    """One value-and-gradient of the notebook's costs at W×H in its own process; layers "frozen" (nst's) or "tf"."""
    out = work / f"gradient-{layers}-{time.time_ns()}.json"
    command = [PYTHON, __file__, "_gradient", str(width_px), str(height_px), layers, str(out)]
    wall_s, rss, _ = run_watched(command, {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return {**json.loads(out.read_text()), "wall_s": wall_s, "peak_rss_bytes": rss, "layers": layers}


def gradient_main(width_px: int, height_px: int, layers: str, out_path: str) -> None:
    """Seconds of one value-and-gradient (the second of two) with nst's frozen conv layers or with Keras Conv2D
    layers, whose backward pass TensorFlow derives itself (keeping each input, and its CPU input-gradient kernel)."""
    import keras
    import numpy as np
    import tensorflow as tf

    import nst.model
    from nst.notebook_costs import notebook_costs

    if layers == "tf":

        def keras_conv(kernel, bias, keep_output, name, dtype):
            conv = keras.layers.Conv2D(kernel.shape[-1], 3, padding="same", activation="relu", name=name, dtype=dtype)
            conv.build((None, None, None, kernel.shape[2]))
            conv.set_weights([kernel, bias])
            return conv

        nst.model.FrozenConv2DReLU = keras_conv
    costs = notebook_costs()
    vgg = nst.model.load_vgg_model("random", output_layers=[CONTENT_LAYER, *STYLE_LAYERS], precision="fp32")
    rng = np.random.default_rng(0)
    c, s = (tf.constant(rng.random((1, height_px, width_px, 3)), tf.float32) for _ in range(2))
    a_c, a_s = vgg(c)[CONTENT_LAYER], vgg(s)
    g = tf.Variable(c)

    @tf.function
    def value_and_gradient():
        with tf.GradientTape() as tape:
            total = default_total_cost(costs, a_c, a_s, vgg(g))
        return total, tape.gradient(total, g)

    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        total, gradient = value_and_gradient()
        float(total), gradient.numpy()
        seconds.append(time.perf_counter() - start)
    Path(out_path).write_text(json.dumps({"seconds": seconds[-1], "total": float(total)}))


# ---------------------------------------------------------------------------------------------------- the reference


def reference_main(content_path: str, style_path: str, iterations: int, out_path: str) -> None:
    """Neural style transfer the way the TensorFlow tutorial writes it, with the notebook's layers and image size."""
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    def load_img(path):
        return tf.constant(np.asarray(Image.open(path).convert("RGB"), np.float32)[np.newaxis] / 255.0)

    def vgg_layers(layer_names):
        vgg = tf.keras.applications.VGG19(include_top=False, weights=None)  # random features, as ours
        vgg.trainable = False
        outputs = [vgg.get_layer(name).output for name in layer_names]
        return tf.keras.Model([vgg.input], outputs)

    def gram_of(input_tensor):  # the tutorial's gram_matrix
        result = tf.linalg.einsum("bijc,bijd->bcd", input_tensor, input_tensor)
        input_shape = tf.shape(input_tensor)
        num_locations = tf.cast(input_shape[1] * input_shape[2], tf.float32)
        return result / num_locations

    class StyleContentModel(tf.keras.models.Model):
        def __init__(self, style_layers, content_layers):
            super().__init__()
            self.vgg = vgg_layers(style_layers + content_layers)
            self.style_layers = style_layers
            self.content_layers = content_layers
            self.num_style_layers = len(style_layers)
            self.vgg.trainable = False

        def call(self, inputs):
            inputs = inputs * 255.0
            preprocessed_input = tf.keras.applications.vgg19.preprocess_input(inputs)
            outputs = self.vgg(preprocessed_input)
            style_outputs, content_outputs = (outputs[: self.num_style_layers], outputs[self.num_style_layers :])
            style_outputs = [gram_of(style_output) for style_output in style_outputs]
            content_dict = dict(zip(self.content_layers, content_outputs, strict=True))
            style_dict = dict(zip(self.style_layers, style_outputs, strict=True))
            return {"content": content_dict, "style": style_dict}

    style_layers = [KERAS_NAMES[name] for name in STYLE_LAYERS]
    content_layers = [KERAS_NAMES[CONTENT_LAYER]]
    extractor = StyleContentModel(style_layers, content_layers)
    content_image, style_image = load_img(content_path), load_img(style_path)
    style_targets = extractor(style_image)["style"]
    content_targets = extractor(content_image)["content"]
    image = tf.Variable(content_image)
    opt = tf.keras.optimizers.Adam(learning_rate=0.02, beta_1=0.99, epsilon=1e-1)
    style_weight, content_weight = 1e-2, 1e4

    def style_content_loss(outputs):
        style_outputs, content_outputs = outputs["style"], outputs["content"]
        style_loss = tf.add_n(
            [tf.reduce_mean((style_outputs[name] - style_targets[name]) ** 2) for name in style_outputs]
        )
        style_loss *= style_weight / len(style_layers)
        content_loss = tf.add_n(
            [tf.reduce_mean((content_outputs[name] - content_targets[name]) ** 2) for name in content_outputs]
        )
        content_loss *= content_weight / len(content_layers)
        return style_loss + content_loss

    @tf.function()
    def train_step(image):
        with tf.GradientTape() as tape:
            outputs = extractor(image)
            loss = style_content_loss(outputs)
        grad = tape.gradient(loss, image)
        opt.apply_gradients([(grad, image)])
        image.assign(tf.clip_by_value(image, clip_value_min=0.0, clip_value_max=1.0))
        return loss

    float(train_step(image))  # trace and warm up, as the notebook's trial steps do
    seconds, losses = [], []
    for _ in range(iterations):
        start = time.perf_counter()
        losses.append(float(train_step(image)))
        seconds.append(time.perf_counter() - start)
    Path(out_path).write_text(json.dumps({"seconds": seconds, "losses": losses}))


def matmul_main(n: int, out_path: str) -> None:
    """Practical peak: GFLOP/s of an n×n tf.matmul in float32 and bfloat16 (best of several timed repeats)."""
    import numpy as np
    import tensorflow as tf

    result = {"n": n}
    for dtype in ("float32", "bfloat16"):
        a = tf.constant(np.random.default_rng(0).random((n, n)), dtype=dtype)
        b = tf.constant(np.random.default_rng(1).random((n, n)), dtype=dtype)
        matmul = tf.function(lambda a, b: tf.matmul(a, b))
        matmul(a, b).numpy()
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            matmul(a, b).numpy()
            best = min(best, time.perf_counter() - start)
        result[dtype] = 2 * n**3 / best / 1e9
    Path(out_path).write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------------- figures


def step_flops(height_px: int, width_px: int, deepest_layer: str = "conv5_1") -> float:
    """FLOPs of one step: every conv up to `deepest_layer`, forward plus input-gradient (2 × forward)."""
    from nst.vgg19 import VGG19_BLOCKS, vgg19_layer_names

    names = vgg19_layer_names()
    h, w, c_in, flops = height_px, width_px, 3, 0.0
    for name in names[: names.index(deepest_layer) + 1]:
        if name.startswith("pool"):
            h, w = h // 2, w // 2
            continue
        c_out = VGG19_BLOCKS[int(name[4]) - 1][0]
        flops += 2.0 * h * w * 9 * c_in * c_out
        c_in = c_out
    return 2 * flops


def parse_param(text: str) -> tuple[str, object]:
    """Parse "learning_rate=0.1" into ("learning_rate", 0.1): a --rerun-default setting, its value a Python literal."""
    import ast

    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise SystemExit(f"--param {text!r}: write NAME=VALUE, e.g. --param learning_rate=0.1")
    try:
        return name.strip(), ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        return name.strip(), value.strip()  # a bare word is a string: precision=bf16


def median_seconds(rows: list[dict], skip_first: int = 1) -> float:
    seconds = [row["seconds"] for row in rows][skip_first:] or [row["seconds"] for row in rows]
    return statistics.median(seconds)


def time_to(rows: list[dict], target: float, before: list[dict] = ()) -> float | None:
    """Seconds (sum of the per-iteration seconds, coarse levels included) until the total cost is ≤ target."""
    elapsed = sum(row["seconds"] for row in before)
    for row in rows:
        elapsed += row["seconds"]
        if row["total"] <= target:
            return elapsed
    return None


def machine() -> dict:
    import tensorflow as tf

    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line), "?")
    flags_line = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    flags = [flag for flag in wanted if f" {flag} " in f"{flags_line} "]
    import psutil

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "flags": " ".join(flags) or "-",
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few iterations: proves it works (CI)")
    parser.add_argument("--repeats", type=int, default=2, help="reference runs interleaved with ours, per size")
    parser.add_argument("--out", type=Path, help="markdown results (default: docs/benchmark_results.md, quick: temp)")
    parser.add_argument("--report-only", type=Path, help="re-render the markdown from a results .json and exit")
    parser.add_argument(
        "--rerun-default", type=Path, help="add one more default notebook run to a results .json, as its own row"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="with --rerun-default: a setting that differs from the default (a Python literal), e.g. learning_rate=0.1",
    )
    parser.add_argument("--rerun-memory", type=Path, help="add the large memory runs again to a results .json")
    parser.add_argument("--note", default="", help="with --rerun-memory: what changed, shown beside its rows")
    parser.add_argument(
        "--big",
        action="append",
        default=[],
        metavar="WxH:OPTIMIZER",
        help="with --rerun-memory: only these of the large runs, e.g. 1920x1080:lbfgs (default: all)",
    )
    args = parser.parse_args(argv)
    if args.rerun_default:  # e.g. after tuning the defaults: same session, recorded as a separate row
        results = json.loads(args.rerun_default.read_text())
        changed = dict(parse_param(text) for text in args.param)
        rerun = run_notebook(400, 300, Path(tempfile.mkdtemp(prefix="nst-bench-")), **changed)
        rerun["load_average"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
        results.setdefault("reruns", []).append(rerun)
        args.rerun_default.write_text(json.dumps(results, indent=1, default=str))
        args.report_only = args.rerun_default
    if args.rerun_memory:  # e.g. after a memory fix: the large runs again, as rows of their own
        results = json.loads(args.rerun_memory.read_text())
        work = Path(tempfile.mkdtemp(prefix="nst-bench-"))
        chosen = [run for run in BIG_RUNS if not args.big or f"{run[0]}x{run[1]}:{run[2]}" in args.big]
        if not chosen:
            raise SystemExit(f"--big {args.big}: choose from {', '.join(f'{w}x{h}:{o}' for w, h, o in BIG_RUNS)}")
        for w, h, optimizer in chosen:
            results["bigs"].append(run_big(w, h, work, optimizer, note=f"rerun: {args.note}"))
            args.rerun_memory.write_text(json.dumps(results, indent=1, default=str))
        args.report_only = args.rerun_memory
    if args.report_only:
        text = report(json.loads(args.report_only.read_text()))
        args.report_only.with_suffix(".md").write_text(text)
        print(text)
        return 0
    from nst.model import bf16_hardware

    work = Path(tempfile.mkdtemp(prefix="nst-bench-"))
    if args.quick:
        sizes, bigs, recipe_iterations, n_iterations, matmul_n, lbfgs_iterations = [(64, 48)], [], 6, 3, 256, 6
    else:
        sizes, recipe_iterations, n_iterations, matmul_n = [(400, 300), (1024, 768)], 200, 6, 2048
        bigs = BIG_RUNS
        lbfgs_iterations = 40
    out = args.out or (work / "results.md" if args.quick else PROJECT_DIR / "docs" / "benchmark_results.md")
    results: dict = {"machine": machine(), "quick": args.quick, "bf16_hardware": bf16_hardware()}
    log = lambda message: print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)  # noqa: E731

    log("matmul peak")
    results["matmul_runs"] = [run_matmul(work, matmul_n)]  # again at the end: the peak is the better of the two

    # Per size: reference, ours, reference, … interleaved. At the first size ours is the seed's recipe itself
    # (Adam, 200 iterations): its rows give ours' seconds per iteration *and* the time-to-target baseline.
    def save() -> None:  # after every stage, so a run cut short still leaves its figures
        results["machine"]["load_average"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
        out.write_text(report(results))

    # The most important figures first. At 400×300 ours is the seed's recipe itself (Adam, 200 iterations): its rows
    # give ours' seconds per iteration *and* the time-to-target baseline; the reference runs before and after it.
    results["sizes"] = {}
    for index, (w, h) in enumerate(sizes):
        size = results["sizes"][f"{w}x{h}"] = {"w": w, "h": h, "reference": [], "ours": []}
        for repeat in range(args.repeats):
            log(f"{w}x{h}: reference ({repeat + 1}/{args.repeats})")
            size["reference"].append(run_reference(w, h, n_iterations if index == 0 else 4, work))
            if repeat == 0:
                iterations = recipe_iterations if index == 0 else 4
                log(f"{w}x{h}: ours, notebook with Adam, {iterations} iterations")
                size["ours"].append(run_notebook(w, h, work, **RECIPE, iterations=iterations, save_every=10**6))
            save()
        if index == 0:
            log(f"{w}x{h}: ours, the notebook's default settings")
            results["default"] = run_notebook(w, h, work)
            save()
            # The same run in the precision "auto" did not choose, judged on the same fp32 scale. Where bf16 is
            # emulated it is about as fast as fp32 (docs/benchmarks.md), so its numerics are measured there too.
            other = "fp32" if bf16_hardware()[0] else "bf16"
            log(f"{w}x{h}: ours, the notebook's default settings in {other}")
            results[f"default_{other}"] = run_notebook(w, h, work, precision=other)
            log(f"{w}x{h}: ours, L-BFGS at full size in bf16 ({lbfgs_iterations} iterations)")
            results["lbfgs_bf16"] = run_notebook(
                w, h, work, optimizer="lbfgs", coarse_to_fine=1, iterations=lbfgs_iterations, precision="bf16"
            )
            save()
            log(f"{w}x{h}: ours, L-BFGS at full size only ({lbfgs_iterations} iterations)")
            results["lbfgs"] = run_notebook(
                w, h, work, optimizer="lbfgs", coarse_to_fine=1, iterations=lbfgs_iterations, precision="fp32"
            )
            log(f"{w}x{h}: ours, coarse to fine + L-BFGS (3 sizes, 20 iterations each)")
            results["c2f"] = run_notebook(
                w, h, work, optimizer="lbfgs", coarse_to_fine=3, coarse_iterations=20, iterations=20, precision="fp32"
            )
            save()
    # Memory: one value-and-gradient with TensorFlow's own conv gradient and with nst's frozen layers, side by
    # side, then the notebook itself at the large sizes (BIG_RUNS: 2 iterations after its trial steps).
    probe_w, probe_h = sizes[0] if args.quick else bigs[0][:2]
    results["gradient"] = {}
    for layers in ("tf", "frozen"):
        log(f"{probe_w}x{probe_h}: one value-and-gradient, {layers} conv layers")
        results["gradient"][layers] = run_gradient_probe(probe_w, probe_h, layers, work)
        results["gradient"][layers]["size"] = f"{probe_w}×{probe_h}"
        save()
    results["bigs"] = []
    for big_w, big_h, optimizer in bigs:
        log(f"{big_w}x{big_h}: ours, memory ({optimizer}, 2 iterations)")
        results["bigs"].append(run_big(big_w, big_h, work, optimizer))
        save()
    w, h = sizes[0]
    log(f"{w}x{h}: ours in bf16 (Adam, {n_iterations} iterations)")
    results["bf16"] = run_notebook(w, h, work, **{**RECIPE, "precision": "bf16"}, iterations=n_iterations)
    save()
    log("matmul peak again")
    results["matmul_runs"].append(run_matmul(work, matmul_n))
    save()
    print(out.read_text())
    log(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


def report(results: dict) -> str:
    """The results as markdown: the machine, then one part per question; a part not yet measured says so."""
    parts = []
    for part in (report_speed, report_bf16, report_time_to_target, report_memory):
        try:
            parts.append(part(results))
        except (KeyError, IndexError, StopIteration, statistics.StatisticsError):
            parts.append(f"*{part.__doc__} not measured (the run was cut short or is still going).*\n")
    return "\n".join(parts)


def practical_peak(results: dict) -> dict:
    """The best GFLOP/s per dtype over the run's matmul measurements."""
    runs = results.get("matmul_runs") or [results["matmul"]]
    return {key: max(run[key] for run in runs) for key in runs[0]}


def report_speed(results: dict) -> str:
    """Speed per iteration"""
    m, peak = results["machine"], practical_peak(results)
    peak_count = len(results.get("matmul_runs") or [results["matmul"]])
    lines = [
        f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores, flags {m['flags']}, {m['memory_gb']} GB RAM, "
        f"Python {m['python']}, TensorFlow {m['tensorflow']} (load average at the end: {m['load_average']}). "
        "Random-feature VGG-19 on both sides: the compute is identical to real weights."
        + (" **Quick mode: tiny sizes, the figures mean nothing.**" if results["quick"] else ""),
        "",
        f"Practical peak, {peak['n']}×{peak['n']} tf.matmul: fp32 {peak['float32']:.0f} GFLOP/s, "
        f"bf16 {peak['bfloat16']:.0f} GFLOP/s (the better of {peak_count} measurements in this run, "
        "at its start and end; a busy machine lowers it).",
        "",
        "| size | ours s/it | reference s/it | ours ÷ reference | ours GFLOP/s (% of fp32 peak) "
        "| reference GFLOP/s (% of peak) | peak RSS ours / reference |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for size in results["sizes"].values():
        if not (size["ours"] and size["reference"]):
            continue
        ours = median_seconds(size["ours"][0]["rows"])
        ref = statistics.median(s for r in size["reference"] for s in r["seconds"])
        flops = step_flops(size["h"], size["w"])
        g_ours, g_ref = flops / ours / 1e9, flops / ref / 1e9
        rss_ours = size["ours"][0]["peak_rss_bytes"] / 1e9
        rss_ref = max(r["peak_rss_bytes"] for r in size["reference"]) / 1e9
        lines.append(
            f"| {size['w']}×{size['h']} | {ours:.3f} | {ref:.3f} | **{ours / ref:.2f}** "
            f"| {g_ours:.0f} ({100 * g_ours / peak['float32']:.0f} %) "
            f"| {g_ref:.0f} ({100 * g_ref / peak['float32']:.0f} %) "
            f"| {rss_ours:.2f} / {rss_ref:.2f} GB |"
        )
    return "\n".join(lines) + "\n"


def report_bf16(results: dict) -> str:
    """bf16"""
    first = next(iter(results["sizes"].values()))
    recipe = first["ours"][0]["rows"]
    ref_first = statistics.median(s for r in first["reference"] for s in r["seconds"])
    bf16_rows = results["bf16"]["rows"]
    n = len(bf16_rows)
    fp32_loss, bf16_loss = recipe[n - 1]["total"], bf16_rows[-1]["total"]
    _, reason = results["bf16_hardware"]
    bf16_s = median_seconds(bf16_rows)
    lines = [
        f"**bf16** ({first['w']}×{first['h']}, Adam, {n} iterations): {bf16_s:.3f} s/it, "
        f"**{bf16_s / ref_first:.2f}×** the reference, {bf16_s / median_seconds(recipe):.2f}× ours in fp32; "
        f"total cost after {n} iterations {bf16_loss:.5g} vs fp32 {fp32_loss:.5g} "
        f"({100 * (bf16_loss / fp32_loss - 1):+.2f} %); NaNs: "
        f"{'none' if all(r['total'] == r['total'] for r in bf16_rows) else 'YES'}. Hardware: {reason}.",
        "",
    ]
    return "\n".join(lines)


def report_time_to_target(results: dict) -> str:
    """Time to target"""
    first = next(iter(results["sizes"].values()))
    recipe = first["ours"][0]["rows"]
    target = recipe[-1]["total"]
    recipe_s = sum(row["seconds"] for row in recipe)
    lines = [
        f"**Time to target** at {first['w']}×{first['h']}: the target is the total cost after the seed's recipe "
        f"(Adam, {len(recipe)} iterations): {target:.5g}, reached in {recipe_s:.1f} s of iterations.",
        "",
        "| method | iterations run | time to target | ÷ recipe | whole notebook run (papermill, wall) "
        "| final cost judged by the fp32 network |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| Adam (the recipe) | {len(recipe)} | {recipe_s:.1f} s | 1.00 | {first['ours'][0]['wall_s']:.0f} s "
        f"| {judged(first['ours'][0])} |",
    ]
    emulated = "" if results.get("bf16_hardware", [False])[0] else " (emulated here)"
    named = [
        ("default", "**the notebook's default** (`make run`: Adam, learning rate 0.05, precision auto)"),
        ("default_fp32", "the notebook's default in fp32"),
        ("default_bf16", f"the notebook's default in bf16{emulated}"),
        ("lbfgs", "L-BFGS, full size only"),
        ("lbfgs_bf16", f"L-BFGS, full size only, bf16{emulated}"),
        ("c2f", "coarse to fine + L-BFGS (`coarse_to_fine=3`, 20 iterations per size)"),
        ("default_rerun", "the notebook's default again (`--rerun-default`)"),
    ]
    runs = [(name, results[key]) for key, name in named if key in results]
    for rerun in results.get("reruns", []):
        changed = ", ".join(f"{k}={v!r}" for k, v in rerun["parameters"].items()) or "unchanged"
        runs.append((f"the default, rerun (`--rerun-default`): {changed}", rerun))
    for name, run in runs:
        t = time_to(run["rows"], target, run["coarse_rows"])
        iters = f"{len(run['coarse_rows'])} coarse + {len(run['rows'])}" if run["coarse_rows"] else len(run["rows"])
        shown = f"{t:.1f} s | **{t / recipe_s:.2f}**" if t is not None else "not reached | -"
        lines.append(f"| {name} | {iters} | {shown} | {run['wall_s']:.0f} s | {judged(run)} |")
    if "default" in results:
        run = results["default"]
        lines += [
            "",
            f"**The default run** at {first['w']}×{first['h']} (the notebook's own settings, through papermill as "
            f"`make run` runs it, kernel start included): **{run['wall_s']:.0f} s** wall, "
            f"{len(run['rows'])} iterations at {median_seconds(run['rows']):.2f} s/it, "
            f"final total cost {run['rows'][-1]['total']:.5g} ({run['rows'][-1]['total'] / target:.2f}× the target); "
            f"judged by the fp32 network: {run['judged_fp32']:.5g}.",
        ]
        for key in ("default_fp32", "default_bf16"):
            if key in results:
                other = results[key]
                bf16, fp32 = (other, run) if key == "default_bf16" else (run, other)
                lines.append(
                    f"The same run in {key[8:]}{emulated if key == 'default_bf16' else ''}: {other['wall_s']:.0f} s "
                    f"wall, {median_seconds(other['rows']):.2f} s/it, judged {other['judged_fp32']:.5g}: bf16 ends "
                    f"**{100 * (bf16['judged_fp32'] / fp32['judged_fp32'] - 1):+.2f} %** from fp32 on the fp32 scale; "
                    f"NaNs: {'none' if all(r['total'] == r['total'] for r in bf16['rows']) else 'YES'}."
                )
    if "lbfgs" in results and "lbfgs_bf16" in results:
        bf16, fp32 = results["lbfgs_bf16"], results["lbfgs"]
        lines.append(
            f"L-BFGS in bf16{emulated}: judged {bf16['judged_fp32']:.5g} against fp32's {fp32['judged_fp32']:.5g} "
            f"(**{100 * (bf16['judged_fp32'] / fp32['judged_fp32'] - 1):+.2f} %**), "
            f"{median_seconds(bf16['rows']):.2f} s/it against {median_seconds(fp32['rows']):.2f}."
        )
    return "\n".join(lines) + "\n"


def judged(run: dict) -> str:
    return f"{run['judged_fp32']:.5g}" if run.get("judged_fp32") is not None else "-"


def report_memory(results: dict) -> str:
    """Memory"""
    from nst.memory import OPTIMIZER_NAMES

    probes = results.get("gradient", {})
    lines = []
    if probes:
        tf_probe, ours = probes["tf"], probes["frozen"]
        lines += [
            f"**Memory of one value-and-gradient** at {ours['size']} (fp32, its own process, peak RSS of the process): "
            f"TensorFlow's own conv gradient (Keras Conv2D) {tf_probe['peak_rss_bytes'] / 1e9:.2f} GB, "
            f"{tf_probe['seconds']:.1f} s; nst's frozen conv layers **{ours['peak_rss_bytes'] / 1e9:.2f} GB** "
            f"(**{ours['peak_rss_bytes'] / tf_probe['peak_rss_bytes']:.2f}×**), {ours['seconds']:.1f} s "
            f"(**{ours['seconds'] / tf_probe['seconds']:.2f}×**); same total cost: "
            f"{ours['total']:.6g} vs {tf_probe['total']:.6g}.",
            "",
        ]
    if results["quick"] or not results.get("bigs"):
        return "\n".join([*lines, "**Memory**: the large runs are skipped in quick mode.", ""])
    lines += [
        "| size | notebook run (trial steps + 2 iterations, fp32) | peak RSS of its kernel | estimate before "
        "starting | s/it |",
        "| --- | --- | --- | --- | --- |",
    ]
    for big in results["bigs"]:
        lines.append(
            f"| {big['size']} | {OPTIMIZER_NAMES[big.get('optimizer', 'adam')]}, completed"
            f"{'; ' + big['note'] if big.get('note') else ''} | "
            f"**{big['peak_rss_bytes'] / 1e9:.2f} GB** | {big['estimate_bytes'] / 1e9:.2f} GB | "
            f"{median_seconds(big['rows'], 0):.1f} |"
        )
    return "\n".join([*lines, ""])


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_reference":
        reference_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif len(sys.argv) > 1 and sys.argv[1] == "_gradient":
        gradient_main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif len(sys.argv) > 1 and sys.argv[1] == "_matmul":
        matmul_main(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(main())
