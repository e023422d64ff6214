# SPDX-License-Identifier: Apache-2.0
"""The benchmark suite's modules (bench/suite.py is the driver):

  brokers    starting and stopping the two brokers, the machine's facts,
             CPU accounting for the noise guard
  workloads  the nine workloads, each a function of a Context
  report     results.json -> docs/benchmarks.md (the explanatory text lives here)
  plots      results -> docs/bench/*.png through gnuplot
"""
