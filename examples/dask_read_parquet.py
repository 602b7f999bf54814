#!/usr/bin/env python3
"""Read a run's Parquet files from the storage on a Dask cluster, in place (no download).

Notebook-style: each step is a cell you can paste into JupyterHub. The only setup is the
``ctadata`` package (``pip install ./crates/ctadata-python`` with ``dask[dataframe]`` and
``distributed``): fsspec then knows ``cta://<profile>/<path>`` URLs.

    python examples/dask_read_parquet.py cta://cta/lst/DL2/run1/ --column energy
    python examples/dask_read_parquet.py cta://door/cta/run1/ --config site.toml --workers 4

What travels to the workers is the filesystem's options (the profile in the URL, the config
file's path), never a token: each worker process opens the profile itself, with the token
sources of its own environment (the hub token, ``BEARER_TOKEN``, a ``cta-data login``
session), its own refresh and its own connection pool.
"""

import argparse
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url", help="a cta:// directory of Parquet files (or one file)")
    ap.add_argument("--column", default="energy", help="the column to sum (default: energy)")
    ap.add_argument("--config", help="an extra cta-data config file (like --config)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    args = ap.parse_args()

    # %% A local cluster: on JupyterHub, Dask Gateway's cluster works the same way.
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)

    # %% The data, lazily: one partition per file (or row group), the footer read now.
    options = {"config": args.config} if args.config else {}
    df = dd.read_parquet(args.url, columns=[args.column], storage_options=options)
    print(f"{args.url}: {df.npartitions} partitions")

    # %% The computation: each worker reads its files' column chunks by ranged GETs.
    started = time.monotonic()
    total, rows = dd.compute(df[args.column].sum(), df[args.column].count())
    print(f"{rows} rows, sum({args.column}) = {total:.6f} in {time.monotonic() - started:.2f} s")

    client.close()
    cluster.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # a notebook shows the traceback; a script, the message and hint
        print(f"error: {e}", file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 1))
