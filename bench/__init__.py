"""spark_dl's benchmarks, a package: run one with ``python -m bench.<name>`` from the
repository root, all of them with ``bench/run_all``. Each module's ``main(argv)`` returns
its results and ``rows(results)`` the :class:`bench.harness.Row` list of its targets;
:mod:`bench.harness` is the one timing harness and :mod:`bench.memsample` the one
Python-worker memory sampler."""
