#!/usr/bin/env bash
# Build .whl/ (git-ignored) here, where PyPI is reachable: the wheels the H200 device machine lacks for a study
# (Ray 2.60 with ray[default,tune]'s needs beyond that machine's packages, Optuna 5 and its needs), for Python 3.12
# manylinux x86-64, Ray's wheel without ray/jars and source maps; fails if the total is over 60 MiB.
# bench/wheelhouse.py says what is carried and why. Usage: bash bench/device_wheelhouse.sh
set -euo pipefail
cd "$(dirname "$0")/.."
"${PYTHON:-python3}" -m bench.wheelhouse --out .whl "$@"
