"""The examples run as written: examples/inspect_latents.ipynb (nbclient) and the README's scatter, on a tiny run."""
import os

import nbclient
import nbformat
import pytest

from aejax.training.loop import train_and_evaluate
from experiments import beta_vae

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_the_inspect_latents_notebook_runs_on_a_trained_run(tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")
    train_and_evaluate(beta_vae.get_config("smoke"), workdir)
    notebook = nbformat.read(os.path.join(REPO, "examples", "inspect_latents.ipynb"), as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # stored clean
    monkeypatch.setenv("AEJAX_WORKDIR", workdir)
    monkeypatch.setenv("PYTHONPATH", REPO)  # the kernel imports this checkout's aejax
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "vae on digits, step 20: 359 test images" in text and "codes (359, 4)" in text
    figures = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert len(figures) == 2  # the scatter by class, the reconstructions and samples


def test_the_readme_scatter_example_runs_as_written(tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")
    train_and_evaluate(beta_vae.get_config("smoke"), workdir)
    readme = open(os.path.join(REPO, "README.md")).read()
    example = readme.split("From a run to a scatter of its test codes, coloured by class:\n\n```python\n")[1]
    example = example.split("```")[0]
    assert '"runs/beta_vae"' in example and '"codes.png"' in example
    monkeypatch.chdir(tmp_path)
    exec(example.replace('"runs/beta_vae"', repr(workdir)), {})  # noqa: S102
    assert (tmp_path / "codes.png").stat().st_size > 10_000
