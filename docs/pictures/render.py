"""Render the pictures of docs/ from a real run, so that they stay true to what the code does.

    .venv/bin/python docs/pictures/render.py            (about 2-4 minutes on 2 CPU cores)

It writes a small synthetic corpus, trains the demo codec (solver=compression/debug) with
TensorBoard on and its Prometheus metrics scraped by a real Prometheus, writes the XP's
report, then renders into docs/pictures/:

- listening_page.png, report.png: the generate stage's listening page and `audioflow report`,
  screenshots by headless Chromium (`apt-get install chromium`);
- tensorboard_scalars.png: scalars read back from the TensorBoard event files;
- grafana_dashboard.png: each panel of k8s/monitoring/grafana-dashboard.json, its queries run
  against that Prometheus (`apt-get install prometheus`) and drawn with matplotlib (Grafana
  itself is not needed);
- workflow_dag.png: `snakemake --dag` of the demo workflow through Graphviz
  (`apt-get install graphviz`);
- dvc_plot_mel_distance.png: a plot of `dvc plots show` (dvc.yaml) over the run's report
  CSVs, rendered offline by `python -m audioflow.workflow.dvc_plots`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
DASHBOARD = REPO / "k8s" / "monitoring" / "grafana-dashboard.json"
OVERRIDES = ["solver=compression/debug", "logging.log_tensorboard=true", "generate.every=1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read().decode())


def wait(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def corpus(root: Path) -> list[str]:
    """A small synthetic corpus and the datasource overrides that read it."""
    from audioflow.data.manifest import build_manifest
    from audioflow.data.synth import write_corpus

    overrides = []
    for split, (n, seed) in {"train": (32, 1), "valid": (16, 2), "evaluate": (8, 3)}.items():
        write_corpus(root / split, n, seed)
        manifest = root / split / "manifest.jsonl.gz"
        build_manifest([root / split], manifest, workers=1)
        overrides.append(f"datasource.{split}={manifest}")
    overrides.append(f"datasource.generate={root / 'evaluate' / 'manifest.jsonl.gz'}")
    return overrides


def prometheus(work: Path, target_port: int) -> tuple[subprocess.Popen, str]:
    """A real Prometheus scraping the run every second."""
    import yaml

    config = yaml.safe_load((REPO / "k8s" / "monitoring" / "prometheus-local.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{target_port}"]}]
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait(url + "/-/ready")
    return proc, url


def train(work: Path, sources: list[str], port: int) -> Path:
    """`audioflow run` of the demo codec, scraped; returns its XP folder."""
    env = dict(os.environ, AUDIOFLOW_XP_DIR=str(work / "xps"), OMP_NUM_THREADS="1")
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    args = [*OVERRIDES, *sources]
    subprocess.run(
        [str(BIN / "audioflow"), "run", *args, f"monitoring.port={port}"], env=env, check=True
    )
    sig = subprocess.run(
        [str(BIN / "audioflow"), "sig", *args], env=env, check=True, capture_output=True, text=True
    ).stdout.split()[0]
    subprocess.run([str(BIN / "audioflow"), "report", sig], env=env, check=True)
    return work / "xps" / "xps" / sig


def screenshot(page: Path, target: Path, width: int, height: int) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise RuntimeError("no chromium on PATH: apt-get install chromium")
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            f"--screenshot={target}",
            page.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def tensorboard_scalars(folder: Path, target: Path) -> None:
    """The key scalars as TensorBoard draws them: one chart per tag group, against updates."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    charts = [
        ("gen_loss", ["train/gen_loss", "valid/gen_loss"]),
        ("mel_distance", ["train/mel_distance", "valid/mel_distance", "evaluate/mel_distance"]),
        ("sisnr (dB)", ["train/sisnr", "valid/sisnr", "evaluate/sisnr"]),
        ("learning rate", sorted(t for t in tags if t.startswith("optim/lr/"))),
        ("grad norm", sorted(t for t in tags if t.startswith("optim/grad_norm/"))),
        ("updates/s", ["throughput/updates_per_second"]),
        ("audio seconds/s", ["throughput/audio_seconds_per_second"]),
        ("epoch", ["epoch"]),
    ]
    charts = [(title, [t for t in group if t in tags]) for title, group in charts]
    charts = [c for c in charts if c[1]][:8]
    fig, axes = plt.subplots(2, 4, figsize=(16, 6.4), dpi=90)
    for ax, (title, group) in zip(axes.flat, charts):
        for tag in group:
            events = acc.Scalars(tag)
            marker = "o" if not tag.startswith(("train/", "optim/", "throughput/")) else None
            ax.plot([e.step for e in events], [e.value for e in events], marker=marker, label=tag)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("update", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(charts) :]:
        ax.axis("off")
    fig.suptitle(f"TensorBoard scalars of XP {folder.name} (from its event files)")
    fig.tight_layout()
    fig.savefig(target)
    plt.close(fig)


def grafana_panels(url: str, start: float, end: float, target: Path) -> None:
    """Each dashboard panel, its queries run over the run's time range, drawn with its unit."""
    dash = json.loads(DASHBOARD.read_text())
    variables = {"signature": ".*", "stage": ".*", "datasource": "prometheus"}

    def query_range(expr: str) -> list[dict]:
        expr = expr.replace("$__rate_interval", "15s").replace("$__range", "10m")
        for name, value in variables.items():
            expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
        params = {"query": expr, "start": start, "end": end, "step": 2}
        body = get(f"{url}/api/v1/query_range?" + urllib.parse.urlencode(params))
        return body["data"]["result"]

    def values_of(label: str, metric: str) -> list[str]:
        data = get(f"{url}/api/v1/label/{label}/values?match[]={metric}")["data"]
        return data[:2]  # two repeats of each repeated panel are enough to show the layout

    panels = []
    for panel in dash["panels"]:
        if panel["type"] == "row":
            panels.append(("row", panel["title"], None, []))
            continue
        repeat = panel.get("repeat")
        choices = values_of(repeat, f"audioflow_{repeat}") if repeat else [None]
        for choice in choices:
            if repeat:
                variables[repeat] = re.escape(choice)
            title = panel["title"].replace(f"${repeat}", choice) if repeat else panel["title"]
            series = [
                (t["legendFormat"], s) for t in panel["targets"] for s in query_range(t["expr"])
            ]
            panels.append((panel["type"], title, panel["fieldConfig"]["defaults"]["unit"], series))
    cells = [p for p in panels if p[0] != "row"]
    columns = 4
    rows = (len(cells) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(18, 2.9 * rows), dpi=80)
    fig.patch.set_facecolor("#111217")
    for ax, (kind, title, unit, series) in zip(axes.flat, cells):
        ax.set_facecolor("#181b1f")
        ax.tick_params(colors="#ccccdc", labelsize=7)
        for spine in ax.spines.values():
            spine.set_color("#2c3235")
        ax.set_title(f"{title}   [{unit}]", color="#ccccdc", fontsize=9, loc="left")
        series = [(legend, item) for legend, item in series if _finite(item)]
        if not series:
            ax.text(
                0.5,
                0.5,
                "No data in this run",
                color="#8e8e8e",
                ha="center",
                va="center",
                transform=ax.transAxes,
                fontsize=8,
            )
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        lines = []
        for legend, item in series[:6]:
            name = re.sub(
                r"\{\{\s*(\w+)\s*\}\}",
                lambda m, labels=item["metric"]: labels.get(m.group(1), ""),
                legend,
            ).strip()
            times = [float(t) - start for t, _ in item["values"]]
            values = [float(v) for _, v in item["values"]]
            if kind == "timeseries":
                ax.plot(times, values, label=name, linewidth=1.2)
            else:
                lines.append(f"{name}: {values[-1]:.4g}")
        if kind == "timeseries":
            ax.legend(fontsize=6, facecolor="#181b1f", labelcolor="#ccccdc", edgecolor="#2c3235")
            ax.set_xlabel("seconds into the run", color="#8e8e8e", fontsize=7)
        else:  # stat and bar gauge panels: the last value of each series
            ax.text(
                0.5,
                0.5,
                "\n".join(lines),
                color="#73bf69",
                ha="center",
                va="center",
                transform=ax.transAxes,
                fontsize=11 if len(lines) < 3 else 8,
            )
            ax.set_xticks([])
            ax.set_yticks([])
    for ax in list(axes.flat)[len(cells) :]:
        ax.axis("off")
    fig.suptitle(
        "Grafana dashboard panels (k8s/monitoring/grafana-dashboard.json), queried "
        "from a real Prometheus scrape of the demo codec",
        color="#ccccdc",
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(target, facecolor=fig.get_facecolor())
    plt.close(fig)


def dvc_plot(work: Path, folder: Path, target: Path) -> None:
    """`dvc plots show` of the shipped dvc.yaml over the run's report CSVs, rendered offline."""
    from audioflow.workflow import dvc_plots
    from audioflow.workflow.report import write_report

    repo = work / "dvc"
    reports = repo / "reports" / "demo_codec"
    reports.mkdir(parents=True)
    shutil.copy2(REPO / "dvc.yaml", repo / "dvc.yaml")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=repo, check=True)
    files = [reports / n for n in ("metrics.json", "history.csv", "updates.csv")]
    write_report(folder, *files)
    specs = dvc_plots.plot_specs(repo)
    dvc_plots.render({"mel_distance": specs["mel_distance"]}, work / "plots")
    shutil.copy2(work / "plots" / "mel_distance.png", target)


def _finite(item: dict) -> bool:
    return any(v not in ("NaN", "+Inf", "-Inf") for _, v in item["values"])


def workflow_dag(work: Path, target: Path) -> None:
    """`snakemake --dag` of the demo workflow (config/workflow.yaml), drawn by Graphviz."""
    folder = work / "dag"
    folder.mkdir()
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    env.pop("AUDIOFLOW_XP_DIR", None)
    dag = subprocess.run(
        [
            str(BIN / "snakemake"),
            "-s",
            str(REPO / "Snakefile"),
            "--configfile",
            str(REPO / "config" / "workflow.yaml"),
            "--dag",
            "--cores",
            "1",
        ],
        cwd=folder,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    dot = dag[dag.index("digraph") :]
    subprocess.run(
        ["dot", "-Tpng", "-Gdpi=70", "-o", str(target)], input=dot, text=True, check=True
    )


def main() -> int:
    sys.path.insert(0, str(REPO / "src"))
    with tempfile.TemporaryDirectory(prefix="audioflow-pictures-") as tmp:
        work = Path(tmp)
        sources = corpus(work / "data")
        port = free_port()
        proc, url = prometheus(work, port)
        try:
            time.sleep(6)  # Prometheus hands new targets to its scrapers every 5 s
            start = time.time()
            folder = train(work, sources, port)
            end = time.time()
            time.sleep(2)
            grafana_panels(url, start, end, OUT / "grafana_dashboard.png")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        last = max(int(p.parent.name.split("_")[1]) for p in folder.glob("samples/*/index.html"))
        screenshot(
            folder / "samples" / f"epoch_{last}" / "index.html",
            OUT / "listening_page.png",
            1400,
            580,
        )
        screenshot(folder / "report" / "index.html", OUT / "report.png", 1400, 2000)
        tensorboard_scalars(folder, OUT / "tensorboard_scalars.png")
        workflow_dag(work, OUT / "workflow_dag.png")
        dvc_plot(work, folder, OUT / "dvc_plot_mel_distance.png")
    for name in sorted(OUT.glob("*.png")):
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
