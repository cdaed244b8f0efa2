"""Locust load test for kronos-gateway.

Users send single and batch forecasts built from real 5-minute candle windows: a random window of
KRONOS_LOAD_LOOKBACK candles from the CSV, with prediction timestamps that continue the 5-minute
grid after the window's last candle. The load shape is one of the seed's four scenarios, chosen by
SCENARIO (steady | stress | spike | endurance; see kronos_shapes.py).

Run it through locust/run.sh (headless, CSV results, non-zero exit on any failure), or directly:

    SCENARIO=steady locust -f locust/locustfile.py --host http://127.0.0.1:8000

Environment (defaults in brackets):
    SCENARIO                   [steady]
    KRONOS_LOAD_DURATION       scenario duration in seconds [the scenario's default]
    KRONOS_LOAD_CSV            candle CSV [testdata/data/regression_input.csv of this repository]
    KRONOS_LOAD_LOOKBACK       candles per series [400]
    KRONOS_LOAD_PRED_LEN       prediction steps [120]
    KRONOS_LOAD_BATCH_ITEMS    series per batch request [4]
    KRONOS_LOAD_SINGLE_WEIGHT  task weight of /v1/predict/single [3]
    KRONOS_LOAD_BATCH_WEIGHT   task weight of /v1/predict/batch [1]
    KRONOS_LOAD_WAIT_MIN/MAX   think time between requests, seconds [1, 2]
    KRONOS_LOAD_TIMEOUT        client timeout, seconds [300]
    KRONOS_LOAD_SEED           random seed for reproducible windows [none]
    KRONOS_LOAD_API_KEY        sent as X-API-Key when the gateway has KRONOS_API_KEYS [none]
"""

import csv
import datetime as dt
import os
import random

from locust import HttpUser, between, task

import kronos_shapes

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CSV = os.path.join(HERE, os.pardir, "testdata", "data", "regression_input.csv")
GRID = dt.timedelta(minutes=5)
COLUMNS = ("open", "high", "low", "close", "volume", "amount")


def _int_env(name, default, minimum=1):
    value = int(os.environ.get(name, "").strip() or default)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float_env(name, default):
    return float(os.environ.get(name, "").strip() or default)


def load_candles(path):
    """Reads the candle CSV (timestamps,open,high,low,close,volume,amount) into a list of
    (datetime, {column: float}) in file order, checking that timestamps strictly increase."""
    rows = []
    with open(path, newline="") as f:
        for rec in csv.DictReader(f):
            ts = dt.datetime.fromisoformat(rec["timestamps"])
            if rows and ts <= rows[-1][0]:
                raise ValueError(f"{path}: timestamps not strictly increasing at {ts}")
            rows.append((ts, {c: float(rec[c]) for c in COLUMNS}))
    if not rows:
        raise ValueError(f"{path}: no candles")
    return rows


def prediction_timestamps(last, pred_len):
    """The pred_len timestamps that continue the 5-minute grid after last."""
    return [last + GRID * (k + 1) for k in range(pred_len)]


def series_payload(rows, lookback, pred_len, rng, series_id):
    """One series: a random window of lookback candles and its prediction timestamps."""
    if lookback > len(rows):
        raise ValueError(f"lookback {lookback} exceeds the {len(rows)} candles available")
    start = rng.randrange(0, len(rows) - lookback + 1)
    window = rows[start : start + lookback]
    return {
        "series_id": series_id,
        "candles": [dict(c) for _, c in window],
        "timestamps": [ts.isoformat() for ts, _ in window],
        "prediction_timestamps": [ts.isoformat() for ts in prediction_timestamps(window[-1][0], pred_len)],
    }


def batch_payload(rows, lookback, pred_len, items, rng, prefix):
    return {"items": [series_payload(rows, lookback, pred_len, rng, f"{prefix}-{i}") for i in range(items)]}


def _naive(ts):
    """Parses an ISO-8601 timestamp; an offset is applied and dropped (the test data is naive)."""
    parsed = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return parsed


def check_forecast(request, response):
    """Returns None when response (a decoded single-series forecast) answers request, else why not."""
    if not isinstance(response, dict):
        return f"forecast is {type(response).__name__}, want an object"
    points = response.get("prediction")
    if not isinstance(points, list):
        return "forecast has no prediction list"
    want = request["prediction_timestamps"]
    if len(points) != len(want):
        return f"{len(points)} predicted points, want {len(want)}"
    for i in (0, len(want) - 1):
        got = points[i].get("timestamp") if isinstance(points[i], dict) else None
        if got is None or _naive(got) != _naive(want[i]):
            return f"point {i} timestamp {got!r}, want {want[i]!r}"
        for c in ("open", "high", "low", "close"):
            if not isinstance(points[i].get(c), (int, float)):
                return f"point {i} has no numeric {c}"
    if request.get("series_id") is not None and response.get("series_id") != request["series_id"]:
        return f"series_id {response.get('series_id')!r}, want {request['series_id']!r}"
    return None


def batch_results(body):
    """The per-series forecasts of a batch response: a bare array (the seed's contract) or an
    object wrapping it."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in ("items", "results", "predictions"):
            if isinstance(body.get(key), list):
                return body[key]
    return None


# --- configuration, read once at import ---------------------------------------------------------

CSV_PATH = os.environ.get("KRONOS_LOAD_CSV", "").strip() or DEFAULT_CSV
LOOKBACK = _int_env("KRONOS_LOAD_LOOKBACK", 400)
PRED_LEN = _int_env("KRONOS_LOAD_PRED_LEN", 120)
BATCH_ITEMS = _int_env("KRONOS_LOAD_BATCH_ITEMS", 4)
SINGLE_WEIGHT = _int_env("KRONOS_LOAD_SINGLE_WEIGHT", 3, minimum=0)
BATCH_WEIGHT = _int_env("KRONOS_LOAD_BATCH_WEIGHT", 1, minimum=0)
WAIT_MIN = _float_env("KRONOS_LOAD_WAIT_MIN", 1.0)
WAIT_MAX = _float_env("KRONOS_LOAD_WAIT_MAX", 2.0)
TIMEOUT = _float_env("KRONOS_LOAD_TIMEOUT", 300.0)
SEED = os.environ.get("KRONOS_LOAD_SEED", "").strip()
API_KEY = os.environ.get("KRONOS_LOAD_API_KEY", "").strip()
if SINGLE_WEIGHT + BATCH_WEIGHT == 0:
    raise ValueError("KRONOS_LOAD_SINGLE_WEIGHT and KRONOS_LOAD_BATCH_WEIGHT are both 0")

ROWS = load_candles(CSV_PATH)
if LOOKBACK > len(ROWS):
    raise ValueError(f"KRONOS_LOAD_LOOKBACK={LOOKBACK} exceeds the {len(ROWS)} candles in {CSV_PATH}")

# The single LoadTestShape subclass in this module's namespace: Locust picks it up.
Scenario = kronos_shapes.select(os.environ.get("SCENARIO", "steady"))

_user_counter = 0


class KronosUser(HttpUser):
    """Sends forecasts: single (weight SINGLE_WEIGHT) and batch (weight BATCH_WEIGHT)."""

    wait_time = between(WAIT_MIN, WAIT_MAX)

    def on_start(self):
        global _user_counter
        _user_counter += 1
        self.user_id = _user_counter
        self.rng = random.Random(f"{SEED}-{self.user_id}") if SEED else random.Random()
        self.sent = 0

    def _post(self, route, payload, check):
        self.sent += 1
        headers = {"X-Request-ID": f"locust-{self.user_id}-{self.sent}"}
        if API_KEY:
            headers["X-API-Key"] = API_KEY
        with self.client.post(
            route,
            json=payload,
            name=route,
            timeout=TIMEOUT,
            catch_response=True,
            headers=headers,
        ) as resp:
            if resp.status_code == 0:
                resp.failure(f"no response: {resp.error}")
                return
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:200]}")
                return
            try:
                body = resp.json()
            except ValueError as exc:
                resp.failure(f"invalid JSON: {exc}")
                return
            problem = check(body)
            if problem:
                resp.failure(problem)
            else:
                resp.success()

    @task(SINGLE_WEIGHT)
    def predict_single(self):
        payload = series_payload(ROWS, LOOKBACK, PRED_LEN, self.rng, f"u{self.user_id}-s{self.sent}")
        self._post("/v1/predict/single", payload, lambda body: check_forecast(payload, body))

    @task(BATCH_WEIGHT)
    def predict_batch(self):
        payload = batch_payload(ROWS, LOOKBACK, PRED_LEN, BATCH_ITEMS, self.rng, f"u{self.user_id}-b{self.sent}")

        def check(body):
            results = batch_results(body)
            if results is None:
                return "batch response holds no list of forecasts"
            if len(results) != len(payload["items"]):
                return f"{len(results)} forecasts, want {len(payload['items'])}"
            for item, result in zip(payload["items"], results):
                problem = check_forecast(item, result)
                if problem:
                    return f"{item['series_id']}: {problem}"
            return None

        self._post("/v1/predict/batch", payload, check)
