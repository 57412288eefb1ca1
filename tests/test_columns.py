"""Tables as columns (immunomon.columns): written as pandas writes them, without
importing pandas on the per-file path of ``immunomon gate``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from click.testing import CliRunner

from immunomon import columns

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

TABLE = {
    "sample": ["P01", "P01", "P01", "P01"],
    "population": ["CD4+ T", 'with "quotes"', "a, comma", "ü"],
    "parent": [None, "CD4+ T", "CD4+ T", "a, comma"],
    "count": np.array([18849, 0, 3, 2**40], dtype=np.int64),
    "percent": np.array([94.245, np.nan, 1e-7, 1 / 3]),
    "big": np.array([1e16, -0.0, np.inf, 123456789.125]),
    "flagged": np.array([True, False, True, False]),
    "median CD3": np.array([481.085205078125, 2.5, np.nan, 0.1 + 0.2]),
}


def test_csv_is_what_pandas_writes():
    assert columns.csv_text(TABLE) == pd.DataFrame(TABLE).to_csv(index=False,
                                                                 lineterminator="\n")


def test_parquet_reads_back_as_the_frame_pandas_writes(tmp_path):
    ours = columns.write(TABLE, tmp_path / "ours.parquet")
    pd.DataFrame(TABLE).to_parquet(tmp_path / "theirs.parquet", index=False)
    pd.testing.assert_frame_equal(pd.read_parquet(ours),
                                  pd.read_parquet(tmp_path / "theirs.parquet"))
    schema = pq.read_schema(ours)
    assert [str(t) for t in schema.types] == \
        ["string", "string", "string", "int64", "double", "double", "bool", "double"]
    # a missing number is null, as pandas writes NaN, for every Parquet reader
    assert pq.read_table(ours).column("percent").null_count == 1


def test_parquet_of_python_lists(tmp_path):
    """Lists (a combined table's columns) take the type their values share: ints with a
    gap become floats, as pandas makes them; text stays text."""
    table = {"n": [1, None, 3], "x": [1, 2.5, None], "ok": [True, False, True],
             "text": ["a", None, "c"], "none": [None, None, None], "gap": [True, None, False]}
    back = pd.read_parquet(columns.write(table, tmp_path / "t.parquet"))
    assert back["n"].dtype == np.float64 and np.isnan(back["n"][1])
    assert back["x"].tolist()[:2] == [1.0, 2.5] and back["ok"].dtype == bool
    assert back["text"].tolist() == ["a", None, "c"]
    assert back["none"].isna().all()
    assert columns.read_parquet(tmp_path / "t.parquet")["text"] == ["a", None, "c"]
    assert str(pq.read_schema(tmp_path / "t.parquet").field("gap").type) == "bool"
    assert columns.read_parquet(tmp_path / "t.parquet")["gap"] == [True, None, False]


def test_concat_keeps_the_order_of_first_appearance_and_fills_gaps():
    a = {"sample": ["s1"], "count": np.array([5]), "median CD3": np.array([1.5])}
    b = {"sample": ["s2", "s2"], "count": np.array([7, 8]), "median CD19": [2.0, 3.0]}
    both = columns.concat([a, b])
    assert list(both) == ["sample", "count", "median CD3", "median CD19"]
    assert both["count"] == [5, 7, 8]
    assert both["median CD3"] == [1.5, None, None]
    assert both["median CD19"] == [None, 2.0, 3.0]
    assert columns.records({"x": [1.0, float("nan")]}) == [{"x": 1.0}, {"x": None}]
    assert list(columns.select(a, ["count", "gone"])["gone"]) == [None]


def test_parquet_read_as_pyarrow_reads_it(tmp_path):
    """Columns read back from their buffers as pyarrow converts them, from a table
    pandas wrote (earlier results) and from slices of arrays with gaps."""
    import pyarrow as pa

    path = tmp_path / "pandas.parquet"
    pd.DataFrame(TABLE).to_parquet(path, index=False)
    table = pq.read_table(path)
    assert columns.read_parquet(path) == \
        {name: col.to_pylist() for name, col in zip(table.column_names, table.columns)}
    for array in (pa.array(["a", None, "bc", "d"]), pa.array([1.5, None, 3.0, 4.0]),
                  pa.array([True, None, False, True]), pa.array([1, 2, None, 4]),
                  pa.array([None, None, None, None])):
        for part in (array, array.slice(1, 3), array.slice(3)):
            assert columns._python_values(part) == part.to_pylist()


def test_gating_a_file_imports_no_pandas(tmp_path):
    """pandas takes longer to import than a small file takes to gate: the per-file
    job and the combined table go without it (tables, AnnData, Gating-ML, pages), in a
    folder with earlier results too; the DataFrames are there for a caller that asks."""
    from immunomon.cli import main as cli

    earlier = CliRunner().invoke(cli, ["gate", str(FIXTURES / "pbmc_02_shifted.fcs"), "-o",
                                       str(tmp_path), "--plots", "none"])
    assert earlier.exit_code == 0, earlier.output
    code = ("import sys\n"
            "from immunomon.cli import main\n"
            "try:\n"
            f"    main(['gate', {str(FIXTURES / 'pbmc_01.fcs')!r}, '-o', {str(tmp_path)!r},"
            " '--plots', 'none'])\n"
            "finally:\n"
            "    print('pandas' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
    own = [pd.read_csv(tmp_path / name / "populations.csv")
           for name in ("pbmc_01", "pbmc_02_shifted")]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "populations.csv"),
                                  pd.concat(own, ignore_index=True))
    own = [pd.read_parquet(tmp_path / name / "populations.parquet")
           for name in ("pbmc_01", "pbmc_02_shifted")]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "populations.parquet"),
                                  pd.concat(own, ignore_index=True))


def test_wide_statistics_keep_every_channel_and_marker():
    """One column per statistic and channel, population by population: two channels
    that carry one marker name keep a column each (pandas' pivot averaged them), and a
    marker with no value in any population keeps its column (the pivot dropped it),
    so every sample of a template has the same columns."""
    from immunomon.gating.run import _wide_statistics

    stats = {"population": ["A"] * 3 + ["B"] * 3,
             "marker": ["CD3", "CD3", "CD4"] * 2, "channel": ["PE-A", "FITC-A", "APC-A"] * 2,
             "median": np.array([1.0, 2.0, np.nan, 4.0, 5.0, np.nan]),
             "mean": np.arange(6.0), "geometric_mean": np.arange(6.0) + 10}
    wide = _wide_statistics(stats, 2)
    assert list(wide)[:3] == ["median CD3 (PE-A)", "median CD3 (FITC-A)", "median CD4"]
    assert len(wide) == 9
    assert wide["median CD3 (FITC-A)"].tolist() == [2.0, 5.0]
    assert np.isnan(wide["median CD4"]).all()
    assert wide["geometric_mean CD4"].tolist() == [12.0, 15.0]


def test_an_unreadable_earlier_table_is_one_line_and_loses_nothing(tmp_path):
    """A results folder whose earlier sample table was damaged: the new sample is
    gated and written, and the combined table stops with the file and the remedy."""
    from immunomon.cli import main as cli

    args = ["--plots", "none", "--no-anndata", "-o", str(tmp_path)]
    assert CliRunner().invoke(cli, ["gate", str(FIXTURES / "pbmc_01.fcs"), *args]).exit_code == 0
    (tmp_path / "pbmc_01" / "populations.parquet").write_bytes(b"not parquet")
    result = CliRunner().invoke(cli, ["gate", str(FIXTURES / "pbmc_02_shifted.fcs"), *args])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "pbmc_01/populations.parquet: cannot be read" in result.output
    assert "gate its file again" in result.output
    assert (tmp_path / "pbmc_02_shifted" / "populations.csv").is_file()
