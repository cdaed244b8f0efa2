#!/usr/bin/env python3
"""Build a /v1/predict/single request body from a candles CSV.

Usage: scripts/make_request.py [CSV] [--start ROW] [--context N] [--steps P] [--seed S]

The CSV has the columns timestamps,open,high,low,close,volume,amount (like
testdata/data/regression_input.csv). The request uses N candles starting at
ROW and asks for the P timestamps that follow them in the file (so irregular
spacing, such as market closes, is kept). Standard library only.
"""
import argparse
import csv
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="?", default="testdata/data/regression_input.csv")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--context", type=int, default=400)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--series-id", default="regression_input")
    a = ap.parse_args()
    with open(a.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    end = a.start + a.context
    if a.start < 0 or end + a.steps > len(rows):
        sys.exit(f"need rows {a.start}..{end + a.steps}, the file has {len(rows)}")

    def ts(r):
        return r["timestamps"].replace(" ", "T")

    body = {
        "series_id": a.series_id,
        "candles": [
            {k: float(r[k]) for k in ("open", "high", "low", "close", "volume", "amount")}
            for r in rows[a.start:end]
        ],
        "timestamps": [ts(r) for r in rows[a.start:end]],
        "prediction_timestamps": [ts(r) for r in rows[end:end + a.steps]],
    }
    if a.seed is not None:
        body["overrides"] = {"seed": a.seed}
    json.dump(body, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
