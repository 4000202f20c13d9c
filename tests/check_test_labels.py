#!/usr/bin/env python3
"""Every CTest test carries exactly one of the labels `unit` and `integration`, so that
`scripts/test.sh -L unit` and `-L integration` split the suite (cmake/moeserve.cmake: moeserve_test
labels its tests `unit` unless INTEGRATION; tests added with add_test name one in LABELS).

  check_test_labels.py CTEST BUILD_DIR
"""

import json
import subprocess
import sys

KINDS = {"unit", "integration"}


def main():
    ctest, build_dir = sys.argv[1], sys.argv[2]
    listing = subprocess.run([ctest, "--test-dir", build_dir, "--show-only=json-v1"], check=True,
                             capture_output=True, text=True).stdout
    tests = json.loads(listing)["tests"]
    bad = []
    counts = {k: 0 for k in KINDS}
    for test in tests:
        labels = []
        for prop in test.get("properties", []):
            if prop["name"] == "LABELS":
                labels = prop["value"]
        kinds = KINDS.intersection(labels)
        if len(kinds) != 1:
            bad.append(f"{test['name']} (labels: {', '.join(labels) or 'none'})")
        else:
            counts[kinds.pop()] += 1
    if bad:
        print(f"{len(bad)} test(s) need exactly one of the labels unit and integration "
              "(moeserve_test [INTEGRATION], or LABELS of add_test):\n  " + "\n  ".join(bad))
        return 1
    print(f"{len(tests)} tests: {counts['unit']} unit, {counts['integration']} integration")
    return 0


if __name__ == "__main__":
    sys.exit(main())
