"""Unit tests for the load-test shapes and payloads (run by locust_test.go with the Python that
has Locust installed: python3 -m unittest -v test_locustfile)."""

import datetime as dt
import importlib
import os
import random
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import kronos_shapes  # noqa: E402


def import_locustfile(**env):
    """Imports locustfile afresh with the given environment."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        sys.modules.pop("locustfile", None)
        return importlib.import_module("locustfile")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class ShapeTest(unittest.TestCase):
    def test_steady(self):
        s = kronos_shapes.SteadyShape()
        self.assertEqual(s.duration, 300)
        self.assertEqual({s.plan(t) for t in range(0, 300, 7)}, {(10, 2)})

    def test_stress_climbs_from_10_to_100(self):
        s = kronos_shapes.StressShape()
        self.assertEqual(s.duration, 600)
        users = [s.plan(t)[0] for t in range(0, 600, 5)]
        self.assertEqual(users[0], 10)
        self.assertEqual(users[-1], 100)
        self.assertEqual(users, sorted(users))
        self.assertEqual(sorted(set(users)), list(range(10, 101, 10)))
        self.assertEqual({s.plan(t)[1] for t in range(0, 600, 5)}, {5})

    def test_spike_goes_10_100_10(self):
        s = kronos_shapes.SpikeShape()
        users = [s.plan(t)[0] for t in range(0, 300)]
        changes = [users[0]] + [u for prev, u in zip(users, users[1:]) if u != prev]
        self.assertEqual(changes, [10, 100, 10])
        self.assertEqual(users.count(100), 60)  # 20 % of 5 minutes

    def test_endurance(self):
        s = kronos_shapes.EnduranceShape()
        self.assertEqual(s.duration, 1800)
        self.assertEqual(s.plan(1799), (20, 5))

    def test_duration_scales_phases(self):
        s = kronos_shapes.StressShape(duration=60)
        self.assertEqual(s.plan(5.9)[0], 10)
        self.assertEqual(s.plan(6.0)[0], 20)
        self.assertEqual(s.plan(59.9)[0], 100)
        spike = kronos_shapes.SpikeShape(duration=30)
        self.assertEqual([spike.plan(t)[0] for t in (11.9, 12, 17.9, 18)], [10, 100, 100, 10])

    def test_tick_stops_after_duration(self):
        for cls in kronos_shapes.SCENARIOS.values():
            s = cls(duration=10)
            s.get_run_time = lambda: 9.99
            self.assertIsNotNone(s.tick(), cls.__name__)
            s.get_run_time = lambda: 10.0
            self.assertIsNone(s.tick(), cls.__name__)

    def test_duration_from_env(self):
        os.environ["KRONOS_LOAD_DURATION"] = "45"
        try:
            self.assertEqual(kronos_shapes.SteadyShape().duration, 45)
            for bad in ("0", "-3", "nan", "x"):
                os.environ["KRONOS_LOAD_DURATION"] = bad
                with self.assertRaises(ValueError, msg=bad):
                    kronos_shapes.SteadyShape()
        finally:
            del os.environ["KRONOS_LOAD_DURATION"]

    def test_select(self):
        self.assertIs(kronos_shapes.select("Spike"), kronos_shapes.SpikeShape)
        with self.assertRaises(ValueError):
            kronos_shapes.select("soak")


class LocustDiscoveryTest(unittest.TestCase):
    """Locust's own loader must find exactly one user class and the chosen shape."""

    def test_each_scenario_loads(self):
        from locust.util.load_locustfile import load_locustfile

        for name, cls in kronos_shapes.SCENARIOS.items():
            os.environ["SCENARIO"] = name
            try:
                loaded = load_locustfile(os.path.join(HERE, "locustfile.py"))
            finally:
                del os.environ["SCENARIO"]
            _, users, shape = loaded[0], loaded[1], loaded[2]
            self.assertEqual(sorted(users), ["KronosUser"], name)
            self.assertEqual(type(shape).__name__, cls.__name__, name)

    def test_unknown_scenario_fails_fast(self):
        with self.assertRaises(ValueError):
            import_locustfile(SCENARIO="soak")


class PayloadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lf = import_locustfile(SCENARIO="steady")
        cls.rows = cls.lf.ROWS

    def test_csv_is_the_repository_copy(self):
        self.assertEqual(os.path.realpath(self.lf.CSV_PATH),
                         os.path.realpath(os.path.join(HERE, "..", "testdata", "data", "regression_input.csv")))
        self.assertEqual(len(self.rows), 2500)

    def test_candles_are_valid_for_the_gateway(self):
        for ts, c in self.rows:
            self.assertGreater(min(c["open"], c["high"], c["low"], c["close"]), 0, ts)
            self.assertLessEqual(c["low"], min(c["open"], c["close"]), ts)
            self.assertGreaterEqual(c["high"], max(c["open"], c["close"]), ts)
            self.assertGreaterEqual(c["volume"], 0, ts)
            self.assertGreaterEqual(c["amount"], 0, ts)

    def test_series_window(self):
        rng = random.Random(7)
        index = {ts: i for i, (ts, _) in enumerate(self.rows)}
        starts = set()
        for _ in range(50):
            p = self.lf.series_payload(self.rows, 400, 120, rng, "s")
            self.assertEqual(len(p["candles"]), 400)
            self.assertEqual(len(p["timestamps"]), 400)
            first = index[dt.datetime.fromisoformat(p["timestamps"][0])]
            starts.add(first)
            # A contiguous slice of the file, in order, with its own candles.
            for k, ts in enumerate(p["timestamps"]):
                self.assertEqual(self.rows[first + k][0].isoformat(), ts)
                self.assertEqual(self.rows[first + k][1], p["candles"][k])
            # Prediction timestamps continue the 5-minute grid after the last candle.
            last = dt.datetime.fromisoformat(p["timestamps"][-1])
            pred = [dt.datetime.fromisoformat(t) for t in p["prediction_timestamps"]]
            self.assertEqual(len(pred), 120)
            self.assertEqual(pred, [last + dt.timedelta(minutes=5 * (k + 1)) for k in range(120)])
        self.assertGreater(len(starts), 40, "window positions should be random")

    def test_window_can_reach_both_ends(self):
        class Edge:
            def __init__(self, value):
                self.value = value

            def randrange(self, a, b):
                return a if self.value == "low" else b - 1

        first = self.lf.series_payload(self.rows, 10, 1, Edge("low"), "a")
        last = self.lf.series_payload(self.rows, 10, 1, Edge("high"), "b")
        self.assertEqual(first["timestamps"][0], self.rows[0][0].isoformat())
        self.assertEqual(last["timestamps"][-1], self.rows[-1][0].isoformat())
        with self.assertRaises(ValueError):
            self.lf.series_payload(self.rows, len(self.rows) + 1, 1, random.Random(), "c")

    def test_batch_payload(self):
        p = self.lf.batch_payload(self.rows, 64, 8, 3, random.Random(1), "b")
        self.assertEqual([i["series_id"] for i in p["items"]], ["b-0", "b-1", "b-2"])
        self.assertTrue(all(len(i["candles"]) == 64 and len(i["prediction_timestamps"]) == 8 for i in p["items"]))

    def test_check_forecast(self):
        req = self.lf.series_payload(self.rows, 16, 3, random.Random(2), "x")
        good = {"series_id": "x", "prediction": [
            {"timestamp": t, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0} for t in req["prediction_timestamps"]]}
        self.assertIsNone(self.lf.check_forecast(req, good))
        utc = {"series_id": "x", "prediction": [dict(p, timestamp=p["timestamp"] + "Z") for p in good["prediction"]]}
        self.assertIsNone(self.lf.check_forecast(req, utc))
        short = {"series_id": "x", "prediction": good["prediction"][:2]}
        self.assertIn("predicted points", self.lf.check_forecast(req, short))
        shifted = {"series_id": "x", "prediction": [dict(p) for p in good["prediction"]]}
        shifted["prediction"][-1]["timestamp"] = req["prediction_timestamps"][0]
        self.assertIn("timestamp", self.lf.check_forecast(req, shifted))
        self.assertIn("series_id", self.lf.check_forecast(req, dict(good, series_id="y")))
        self.assertIsNotNone(self.lf.check_forecast(req, []))

    def test_batch_results(self):
        self.assertEqual(self.lf.batch_results([1, 2]), [1, 2])
        self.assertEqual(self.lf.batch_results({"items": [1]}), [1])
        self.assertIsNone(self.lf.batch_results({"error": {}}))


if __name__ == "__main__":
    unittest.main()
