"""Read a campaign's rows without jsma's help: they are plain Parquet files, one per
work unit. With pandas here; DuckDB reads them the same way
(`SELECT ... FROM 'DIR/units/*.parquet'`).

    python examples/read_results.py DIR     # a campaign directory
"""

import sys

import pandas as pd

# A directory of Parquet files; the temporary files of a killed writer (.name.tmp)
# are skipped, as pyarrow skips names that start with a dot.
rows = pd.read_parquet(f"{sys.argv[1]}/units")
print(f"{len(rows)} attacks, {rows['success'].mean():.1%} successful")
successes = rows[rows["success"]]
by_pair = successes.pivot_table(
    index="source", columns="target", values="distortion", aggfunc="mean"
)
print("mean distortion (% of the pixels) of the successes, source x target:")
print(by_pair.round(1).to_string())
