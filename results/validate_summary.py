#!/usr/bin/env python3
"""Validates every testdata/*/summary.json against summary.schema.json, and
checks that broken summaries (no "verdict", bad percentile key, bad verdict)
are rejected. Exit 0 on success; used by the ctest test results_schema."""
import copy
import glob
import json
import os
import sys

import jsonschema

schema_path, testdata = sys.argv[1], sys.argv[2]
schema = json.load(open(schema_path))
cls = jsonschema.validators.validator_for(schema)
cls.check_schema(schema)
validator = cls(schema)

failed = 0
paths = sorted(glob.glob(os.path.join(testdata, "*", "summary.json")))
if len(paths) < 3:
    print(f"expected sample summaries under {testdata}, found {len(paths)}")
    sys.exit(1)
samples = {}
for p in paths:
    s = json.load(open(p))
    samples[p] = s
    errs = list(validator.iter_errors(s))
    for e in errs:
        print(f"FAIL {p}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
    failed += bool(errs)
    if not errs:
        print(f"ok   {p}")

base = samples[paths[0]]
def must_fail(name, mutate):
    global failed
    s = copy.deepcopy(base)
    mutate(s)
    if validator.is_valid(s):
        print(f"FAIL negative case accepted: {name}")
        failed += 1
    else:
        print(f"ok   rejected: {name}")

must_fail("missing verdict", lambda s: s.pop("verdict"))
must_fail("verdict 'passed'", lambda s: s.update(verdict="passed"))
must_fail("missing host.kernel_release", lambda s: s["host"].pop("kernel_release"))
must_fail("percentile key '99.9'", lambda s: next(iter(s["churn_latency"].values()))["lat_ns"]["percentile"].update({"99.9": 1}))
must_fail("finding without detector", lambda s: s.update(findings=[{"id": "x", "bug": "x", "verdict": "reproduced", "evidence": {}}]))
must_fail("workload op with string lat_ns.N", lambda s: s.update(workload={"kv": {"write": {"count": 1, "lat_ns": {"min": 1, "max": 1, "mean": 1, "N": "1", "percentile": {}}}}}))
sys.exit(1 if failed else 0)
