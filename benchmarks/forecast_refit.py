"""Does refitting on all the data help the forecast of the future? The last horizon of each file is hidden
(it plays the future); the default forecaster is fitted and evaluated on the rest (its own train /
validation / test split), then refitted on all of the rest, and both forecast the hidden points.

MASE on the hidden points (scaled by the in-sample seasonal-naive error of the visible part), mean and
spread over seeds, beside seasonal naive.

    OPENBLAS_NUM_THREADS=1 python benchmarks/forecast_refit.py [--seeds 3] [--data ../shared/data]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rnnkit.data.series import load_csv
from rnnkit.tasks import forecast
from rnnkit.tasks import forecast_metrics as fm

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
FILES = (("airline.csv", "passengers", "month", 12), ("sunspots.csv", "sunspots", "year", 20))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder with airline.csv and sunspots.csv")
    args = ap.parse_args(argv)
    print(f"{'data (hidden)':<28}{'evaluated model':>22}{'refit on all':>22}{'seasonal naive':>16}")
    for fname, target, time, H in FILES:
        (s,) = load_csv(Path(args.data) / fname, target=target, time=time)
        seen, hidden = s.head(len(s) - H), s.y[-H:]
        scores = {"evaluated": [], "refit": []}
        for seed in range(args.seeds):
            model = forecast.fit(seen, horizon=H, seed=seed)
            scale = fm.mase_scale(seen.y, model.season_)
            for name, m in (("evaluated", model), ("refit", forecast.refit(model))):
                scores[name].append(fm.point_metrics(hidden, m.predict()["series"]["mean"], scale)["mase"])
        naive = fm.point_metrics(hidden, fm.seasonal_naive_forecast(seen.y, H, model.season_), scale)["mase"]
        cells = [f"{np.mean(v):.3f} ± {np.std(v):.3f}" for v in scores.values()]
        print(f"{f'{target} (last {H} {time}s)':<28}{cells[0]:>22}{cells[1]:>22}{naive:>16.3f}", flush=True)
        for name, v in scores.items():
            print(f"    {name}: {', '.join(f'{x:.3f}' for x in v)}")


if __name__ == "__main__":
    main()
