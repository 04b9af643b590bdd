"""Benchmark harness: ks3sync against the tools users would pick instead (issue 7).

Run `python -m bench --help`. Everything here drives tools as subprocesses against one
`ks3sync local-server`; nothing imports ks3sync's engine. Results go to docs/benchmarks.md.
"""
