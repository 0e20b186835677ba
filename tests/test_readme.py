"""The README's and the reports' result tables quote their results files (the layer examples: tests/portable)."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _section(text, heading):
    """From ``heading`` to the next heading of its level or above (a ``##`` section keeps its ``###`` ones);
    ``#`` lines inside code fences are code, not headings."""
    level, lines, fenced = len(heading.split(" ", 1)[0]), None, False
    for line in text.splitlines():
        fenced ^= line.startswith("```")
        marks = re.match(r"(#+) ", line) if not fenced else None
        if lines is None:
            lines = [line] if marks and line.startswith(heading) else None
        elif marks and len(marks.group(1)) <= level:
            break
        else:
            lines.append(line)
    assert lines is not None, f"README has no section {heading!r}"
    return "\n".join(lines)


# The README's and the reports' results tables are column subsets of the files the runs wrote: a number is
# quoted, never typed. Each entry: (page, section heading) -> the results files it quotes.
ROOT = README.parent
RESULT_SECTIONS = {
    ("README.md", "## The headline result"): ["results/fashion_mnist.md"],
    ("README.md", "## Soft VQ on a grid of codes"): [
        "results/conv_grid_fashion_mnist.md",
        "results/conv_grid_fashion_mnist_soft_to_hard_2.md",
    ],
    ("docs/reports/reproduction.md", "## Figure 4: t-SNE maps of the six latents"): [
        "results/figures/figure4_fashion_mnist.md"
    ],
    ("docs/reports/reproduction.md", "## The paper's protocol on Fashion-MNIST"): ["results/fashion_mnist.md"],
    ("docs/reports/reproduction.md", "## The earlier budget on today's path"): [
        "results/fashion_mnist_steps20000_batch64.md"
    ],
    ("docs/reports/reproduction.md", "## Earlier runs: full Fashion-MNIST"): [
        "results/fashion_mnist_steps20000_batch64_3seeds_no_xla.md"
    ],
    ("docs/reports/reproduction.md", "## Noise on the code (validation split)"): [
        "results/sweep_fashion_mnist_noise.md"
    ],
    ("docs/reports/codebook-collapse.md", "# Codebook collapse"): ["results/vq_remedies_fashion_mnist.md"],
    ("docs/reports/grid-of-codes.md", "## Results"): ["results/conv_grid_fashion_mnist.md"],
}


def _cells(row):
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def _markdown_tables(text):
    """Each table as (header, rows), a row as a list of stripped cells."""
    tables, lines = [], text.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.startswith("|") and lines[i + 1].startswith("|---") and (i == 0 or not lines[i - 1].startswith("|")):
            block = lines[i + 2 :]
            block = block[: next((j for j, row in enumerate(block) if not row.startswith("|")), len(block))]
            tables.append((_cells(line), [_cells(row) for row in block]))
    return tables


def _quoted(header, rows, source_tables):
    """The rows of a source table with these columns and row keys, in the README's columns; None if none has them."""
    # key: [data set,] model, or the first column; and the decoder input where a model has two rows
    keys = header[: header.index("model") + 1 if "model" in header else 1]
    keys += ["decoder input"] if "decoder input" in header else []
    for src_header, src_rows in source_tables:
        if not set(header) <= set(src_header):
            continue
        index = {tuple(row[src_header.index(key)] for key in keys): row for row in src_rows}
        found = [index.get(tuple(row[header.index(key)] for key in keys)) for row in rows]
        if all(row is not None for row in found):
            return [[row[src_header.index(col)] for col in header] for row in found]
    return None


@pytest.mark.parametrize("page, heading", RESULT_SECTIONS, ids=lambda key: str(key))
def test_result_tables_quote_their_files(page, heading):
    section = _section((ROOT / page).read_text(), heading)
    source_tables = []
    for name in RESULT_SECTIONS[page, heading]:
        assert name in section, f"the section should cite {name}"
        source_tables += _markdown_tables((ROOT / name).read_text())
    readme_tables = _markdown_tables(section)
    assert readme_tables, f"{heading!r} has no table"
    for header, rows in readme_tables:
        expected = _quoted(header, rows, source_tables)
        assert expected is not None, (
            f"no table in {RESULT_SECTIONS[page, heading]} has the columns and rows of {header}"
        )
        wrong = [(row, want) for row, want in zip(rows, expected) if row != want]
        assert not wrong, "README rows differ from the file they quote (README, file):\n" + "\n".join(map(str, wrong))


def test_the_readme_export_one_liner_loads_a_run_without_softvq_tf(digits_run, tmp_path):
    """The README's SavedModel line, run as written from a folder whose runs/ holds the quick start's run name."""
    import os
    import subprocess
    import sys

    block = _section(README.read_text(), "## Train, evaluate, export, several machines")
    (line,) = [line for line in block.splitlines() if line.startswith('python -c "import tensorflow')]
    (tmp_path / "runs").mkdir()
    os.symlink(digits_run, tmp_path / "runs" / "digits_soft_vq_d16_K32_seed0")
    code = line.split('python -c "', 1)[1].rsplit('"', 1)[0]
    code = "import sys; sys.modules['softvq_tf'] = None; " + code  # the SavedModel needs no softvq_tf
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("(4, 8)"), result.stdout  # the shared run's d = 8


def test_the_site_home_page_shows_the_readme_quick_start_lines():
    quick_start = re.search(r"## Quick start\n\n```\n(.*?)```", README.read_text(), flags=re.S).group(1)
    home = (ROOT / "docs" / "index.md").read_text()
    assert len(quick_start.strip().splitlines()) == 2 and quick_start in home


# Report sections whose tables gather rows from several results files under plain labels: every number in their
# tables is still a cell of a table in a results file the section links to.
GATHERED_SECTIONS = [("docs/reports/grid-of-codes.md", "## Soft to hard (0.4.0)")]


@pytest.mark.parametrize("page, heading", GATHERED_SECTIONS, ids=lambda key: str(key))
def test_gathered_tables_quote_numbers_from_the_files_they_link(page, heading):
    section = _section((ROOT / page).read_text(), heading)
    linked = sorted(set(re.findall(r"\.\./(results/[\w./-]+\.md)", section)))
    assert linked, f"{heading!r} links no results file"
    quoted = {
        cell
        for name in linked
        for _, rows in _markdown_tables((ROOT / name).read_text())
        for row in rows
        for cell in row
    }
    numbers = [
        cell.replace("**", "")
        for _, rows in _markdown_tables(section)
        for row in rows
        for cell in row[1:]
        if re.search(r"\d", cell)
    ]
    assert numbers, f"{heading!r} has no table"
    typed = sorted({cell for cell in numbers if cell not in quoted})
    assert not typed, f"numbers in {page} {heading!r} found in no table of {linked}: {typed}"
